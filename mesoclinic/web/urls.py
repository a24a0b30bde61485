from django.urls import include, path

from mesoclinic.web import (
    account,
    booking,
    chart,
    clinical,
    documents,
    effects,
    feeds,
    session,
    views,
)

app_name = "web"
urlpatterns = [
    path("today/", views.today, name="today"),
    path(
        "change-requests/<int:request_id>/handled/",
        views.handle_change_request,
        name="handle_change_request",
    ),
    path("clinic/", views.switch_clinic, name="switch_clinic"),
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
    path("courses/<int:course_id>/booking/", booking.book_course, name="book_course"),
    path("courses/<int:course_id>/maintenance/", booking.book_maintenance, name="book_maintenance"),
    path("courses/<int:course_id>/sessions/new/", session.chart_session, name="chart_session"),
    path("sessions/<int:session_id>/", session.session_detail, name="session"),
    path("sessions/<int:session_id>/email/", session.email_aftercare, name="email_aftercare"),
    path("courses/<int:course_id>/plan.pdf", documents.course_plan_pdf, name="course_plan_pdf"),
    path("consents/<int:consent_id>.pdf", documents.consent_pdf, name="consent_pdf"),
    path("sessions/<int:session_id>/aftercare.pdf", documents.aftercare_pdf, name="aftercare_pdf"),
    path(
        "sessions/<int:session_id>/side-effects/new/",
        effects.report_for_session,
        name="report_side_effect",
    ),
    path(
        "courses/<int:course_id>/side-effects/new/",
        effects.report_for_course,
        name="report_course_side_effect",
    ),
    path("side-effects/<int:effect_id>/resolve/", effects.resolve, name="resolve_side_effect"),
    path("follow-ups/<int:follow_up_id>/close/", effects.close_follow_up, name="close_follow_up"),
    path("courses/<int:course_id>/status/", clinical.course_status, name="course_status"),
    path("sessions/<int:session_id>/amend/", clinical.amend_session, name="amend_session"),
    path("my-calendar/", feeds.my_feed, name="my_feed"),
    path("account/tokens/", account.tokens, name="account_tokens"),
    path(
        "account/tokens/<int:token_id>/revoke/",
        account.revoke_token,
        name="account_revoke_token",
    ),
    path("account/feeds/<int:feed_id>/revoke/", account.revoke_feed, name="account_revoke_feed"),
    path("patients/<int:patient_id>/calendar-feed/", feeds.patient_feed, name="patient_feed"),
    path("feeds/<str:token>.ics", feeds.ics, name="calendar_feed"),
    path("manage/", include("mesoclinic.web.manage_urls")),
    path("calendar/", include("mesoclinic.web.calendar_urls")),
    path("", include("mesoclinic.web.outcomes_urls")),
    path("", include("mesoclinic.web.photos_urls")),
    path("", include("mesoclinic.web.safety_urls")),
    path("safety/alerts/", include("mesoclinic.web.surveillance_urls")),
    path("analytics/", include("mesoclinic.web.analytics_urls")),
]
