from django.urls import include, path

from mesoclinic.web import views

app_name = "web"
urlpatterns = [
    path("today/", views.today, name="today"),
    path("patients/", views.patients, name="patients"),
    path("patients/new/", views.register_patient, name="register_patient"),
    path("patients/<int:patient_id>/", views.chart, name="chart"),
    path("manage/", include("mesoclinic.web.manage_urls")),
]
