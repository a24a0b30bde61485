from django.urls import path

from mesoclinic.fhir import views

# Mounted at /fhir/R4B/ (mesoclinic/urls.py). `metadata` comes first: it is not a type.
urlpatterns = [
    path("metadata", views.metadata, name="fhir_metadata"),
    path("<str:resource_type>", views.search, name="fhir_search"),
    path("<str:resource_type>/<str:resource_id>", views.read, name="fhir_read"),
]
