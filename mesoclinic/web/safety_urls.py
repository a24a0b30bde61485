"""Pages under /safety/ (see mesoclinic/web/safety.py)."""

from django.urls import path

from mesoclinic.web import safety

urlpatterns = [
    path("safety/adverse-events/", safety.adverse_events, name="adverse_events"),
    path(
        "safety/courses/<int:course_id>/adverse-events/new/",
        safety.report_for_course,
        name="report_course_adverse_event",
    ),
    path(
        "safety/sessions/<int:session_id>/adverse-events/new/",
        safety.report_for_session,
        name="report_adverse_event",
    ),
    path("safety/adverse-events/<int:event_id>/", safety.update, name="update_adverse_event"),
    path(
        "safety/courses/<int:course_id>/infection-watch/",
        safety.watch_schedule,
        name="watch_schedule",
    ),
]
