"""What a signed-in patient sees of their own records: the portal's home page (next visits
with what to do before them, each course's plan and cost, each session's aftercare, their
documents, progress and clinical photos) and the PDFs and images it links to.

Everything is fetched through the access layer for the patient's own login (`OWN`), so
another patient's course, session, consent or photo is a 404 and every read is audited."""

from __future__ import annotations

from typing import Any

from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_safe

from mesoclinic.access import (
    OWN,
    access_consent,
    access_course,
    access_patient,
    access_photo,
    access_session,
    appointments_for,
    consents_for,
    courses_for,
    messages_for,
    notices_for,
    photos_for,
    sessions_for,
)
from mesoclinic.courses.models import Course, Session
from mesoclinic.outcomes import photo_actions
from mesoclinic.outcomes import progress as outcome_progress
from mesoclinic.portal.intake import booking_stop, latest_screening
from mesoclinic.portal.models import Message
from mesoclinic.portal.views import patient_caller, patient_page
from mesoclinic.reminders.logic import before_visit
from mesoclinic.scheduling.models import Appointment
from mesoclinic.web import documents
from mesoclinic.web.outcomes import panels
from mesoclinic.web.session import call_line


def _visits(caller: Any, clinic: Any) -> list[dict[str, Any]]:
    """The patient's coming visits, each with the protocol's before-session instructions and
    the time to arrive for the numbing cream, in the clinic's zone."""
    now = timezone.now()
    rows = []
    upcoming = (
        appointments_for(caller, OWN)
        .filter(ends_at__gt=now)
        .exclude(status__in=Appointment.INACTIVE)
        .select_related("course__protocol", "practitioner")
        .order_by("starts_at")[:10]
    )
    for a in upcoming:
        local = clinic.local(a.starts_at)
        rules = a.course.spec.before_session if a.course is not None else None
        rows.append(
            {"visit": a, "local": local, "before": before_visit(rules, a.kind, local, clinic)}
        )
    return rows


def _course_row(course: Course, sessions: list[Session], photos: list[Any]) -> dict[str, Any]:
    found = outcome_progress.course_progress(course, sessions=sessions)
    return {
        "course": course,
        "plan": course.plan(),
        "progress": course.progress(),
        "sessions": [
            {"session": s, "aftercare": s.aftercare()}
            for s in sorted(sessions, key=lambda s: s.performed_at, reverse=True)
        ],
        "panels": panels(course, found, "my-"),
        "photos": [p for p in photos if p.course_id == course.pk],
    }


@patient_page
@require_safe
def home(request: HttpRequest) -> HttpResponse:
    caller = patient_caller(request)
    # Reading the page is one audited view of the patient's own chart.
    patient = access_patient(caller, caller.patient.pk, OWN, view=True)  # type: ignore[union-attr]
    clinic = patient.clinic
    courses = list(
        courses_for(caller, OWN).select_related("protocol", "clinic").order_by("-created_at")
    )
    # Each session's aftercare names its areas, read from its injections: fetched at once.
    sessions = list(
        sessions_for(caller, OWN)
        .select_related("course__clinic", "course__protocol")
        .prefetch_related("injections")
    )
    photos = list(photos_for(caller, OWN).order_by("taken_at", "id"))
    screening = latest_screening(caller)
    rows = [_course_row(c, [s for s in sessions if s.course_id == c.pk], photos) for c in courses]
    return render(
        request,
        "portal/home.html",
        {
            "page": "home",
            "patient": patient,
            "clinic": clinic,
            "visits": _visits(caller, clinic),
            "courses": rows,
            "consents": list(
                consents_for(caller, OWN).select_related("template").order_by("-signed_at")
            ),
            "call_line": call_line(clinic),
            "stop": booking_stop(screening),
            "intake_due": screening is None,
            "unread_notices": notices_for(caller, OWN).filter(read_at__isnull=True).count(),
            "unread_messages": messages_for(caller, OWN)
            .filter(sender=Message.Sender.CLINIC, read_at__isnull=True)
            .count(),
        },
    )


# The documents and images the home page links to: the staff's renderers, given an object
# the access layer handed to the patient's own login.


@patient_page
@require_safe
def course_plan_pdf(request: HttpRequest, course_id: int) -> HttpResponse:
    course = access_course(patient_caller(request), course_id, OWN)
    return documents.course_plan_document(request, course)


@patient_page
@require_safe
def consent_pdf(request: HttpRequest, consent_id: int) -> HttpResponse:
    consent = access_consent(patient_caller(request), consent_id, OWN)
    return documents.consent_document(request, consent)


@patient_page
@require_safe
def aftercare_pdf(request: HttpRequest, session_id: int) -> HttpResponse:
    session = access_session(patient_caller(request), session_id, OWN)
    return documents.aftercare_document(request, session)


@patient_page
@require_safe
def photo(request: HttpRequest, photo_id: int) -> FileResponse:
    found = access_photo(patient_caller(request), photo_id, OWN)
    try:
        opened = photo_actions.open_image(found)
    except FileNotFoundError:
        raise Http404("The image file is missing.") from None
    photo_actions.audit_view(found, request.user, via="web")
    return photo_actions.image_response(found, opened)
