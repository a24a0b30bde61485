from django.contrib.auth import views as auth_views
from django.urls import path

from mesoclinic.fhir import everything
from mesoclinic.portal import (
    diary,
    home,
    intake,
    messages,
    notices,
    payments,
    views,
    visits,
    watch,
)

app_name = "portal"

urlpatterns = [
    path("", home.home, name="home"),
    path("login/", views.login, name="login"),
    path("login/link/", views.sign_in_link, name="sign_in_link"),
    path("logout/", auth_views.LogoutView.as_view(next_page="portal:login"), name="logout"),
    path("register/", views.register, name="register"),
    path("register/<int:clinic_id>/", views.register, name="register_at"),
    path("link/<str:token>/", views.use_link, name="use_link"),
    path("password/", views.password, name="password"),
    path("intake/", intake.intake, name="intake"),
    path("intake/details/", intake.details, name="intake_details"),
    path("intake/screening/", intake.screening, name="intake_screening"),
    path("intake/photos/", intake.photos, name="intake_photos"),
    path("intake/consent/<int:course_id>/", intake.consent, name="intake_consent"),
    path("visits/", visits.visits, name="visits"),
    path("visits/book/<int:course_id>/", visits.book, name="visit_book"),
    path("visits/<int:appointment_id>/move/", visits.move, name="visit_move"),
    path("visits/<int:appointment_id>/cancel/", visits.cancel, name="visit_cancel"),
    path("visits/waitlist/<int:course_id>/", visits.wait, name="waitlist"),
    path("offer/<str:token>/", visits.offer, name="offer"),
    path("courses/<int:course_id>/plan.pdf", home.course_plan_pdf, name="course_plan_pdf"),
    path("consents/<int:consent_id>.pdf", home.consent_pdf, name="consent_pdf"),
    path("sessions/<int:session_id>/aftercare.pdf", home.aftercare_pdf, name="aftercare_pdf"),
    path("photos/<int:photo_id>/", home.photo, name="photo"),
    path("copy.zip", everything.portal_copy, name="copy"),
    path("diary/", diary.diary, name="diary"),
    path("diary/<int:course_id>/report/", diary.report, name="diary_report"),
    path("diary/side-effects/<int:effect_id>/", diary.side_effect, name="side_effect"),
    path("messages/", messages.thread, name="messages"),
    path("notices/", notices.notices, name="notices"),
    path("payments/", payments.payments, name="payments"),
    path("payments/return/", payments.paid, name="paid"),
    path("quotes/<int:quote_id>/", payments.quote, name="quote"),
    path("quotes/<int:quote_id>.pdf", payments.quote_pdf, name="quote_pdf"),
    path("invoices/<int:invoice_id>/pay/", payments.pay, name="pay"),
    path("watch/", watch.questions, name="watch"),
    path("watch/<int:prompt_id>/", watch.answer, name="watch_answer"),
    path("notices/<int:notice_id>/", notices.notice, name="notice"),
    # Staff: invite a patient from the chart.
    path("invite/<int:patient_id>/", views.invite, name="invite"),
]
