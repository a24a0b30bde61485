from django.urls import path

from mesoclinic.fhir import smart, views

# Mounted at /fhir/R4B/ (mesoclinic/urls.py). `metadata` and the bulk `$export` operations come
# first: they are not types. A Binary (a photo's image) is read by a view of its own.
urlpatterns = [
    path("metadata", views.metadata, name="fhir_metadata"),
    path(".well-known/smart-configuration", smart.configuration, name="smart_configuration"),
    path("$export", views.export_system, name="fhir_export"),
    path("Patient/$export", views.export_patients, name="fhir_export_patients"),
    path("Group/<str:group_id>/$export", views.export_group, name="fhir_export_group"),
    path("$export-status/<str:export_id>", views.export_status, name="fhir_export_status"),
    path(
        "$export-file/<str:export_id>/<str:file_name>",
        views.export_file,
        name="fhir_export_file",
    ),
    path("Binary/<str:binary_id>", views.binary, name="fhir_binary"),
    path("<str:resource_type>", views.search, name="fhir_search"),
    path("<str:resource_type>/<str:resource_id>", views.read, name="fhir_read"),
]
