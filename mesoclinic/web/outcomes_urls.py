"""Measurements and progress pages (see mesoclinic/web/outcomes.py), in the "web" namespace."""

from django.urls import path

from mesoclinic.web import outcomes

urlpatterns = [
    path(
        "courses/<int:course_id>/measurements/new/",
        outcomes.record_measurements,
        name="record_measurements",
    ),
    path("courses/<int:course_id>/progress/", outcomes.course_progress, name="course_progress"),
    path("courses/<int:course_id>/progress.pdf", outcomes.progress_pdf, name="progress_pdf"),
]
