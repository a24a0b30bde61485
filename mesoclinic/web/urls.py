from django.urls import include, path

from mesoclinic.web import chart, session, views

app_name = "web"
urlpatterns = [
    path("today/", views.today, name="today"),
    path("patients/", views.patients, name="patients"),
    path("patients/new/", views.register_patient, name="register_patient"),
    path("patients/<int:patient_id>/", chart.chart, name="chart"),
    path("patients/<int:patient_id>/screening/", chart.screen, name="screen"),
    path("patients/<int:patient_id>/courses/new/", chart.plan_course, name="plan_course"),
    path(
        "patients/<int:patient_id>/courses/<int:course_id>/consent/", chart.consent, name="consent"
    ),
    path("courses/<int:course_id>/allergy-tests/", chart.give_allergy_test, name="give_test"),
    path("allergy-tests/<int:test_id>/reading/", chart.read_allergy_test, name="read_test"),
    path("courses/<int:course_id>/sessions/new/", session.chart_session, name="chart_session"),
    path("sessions/<int:session_id>/", session.session_detail, name="session"),
    path("sessions/<int:session_id>/email/", session.email_aftercare, name="email_aftercare"),
    path("manage/", include("mesoclinic.web.manage_urls")),
]
