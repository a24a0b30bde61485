"""Serious adverse events in the web app: recording one after a session (or escalating a side
effect), updating how it ended and what was done, and the clinic's list of them. Each change
goes through the same actions as the API (safety.actions), which validate and audit."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from mesoclinic.access import access_course, access_event, access_session, events_for
from mesoclinic.accounts.models import AuditEvent, audit_many
from mesoclinic.formulary.models import Lot
from mesoclinic.safety import actions
from mesoclinic.web.chart import chart_url, flash_errors
from mesoclinic.web.context import ALL_STAFF, CLINICAL, caller, reading, require
from mesoclinic.web.forms import put_errors
from mesoclinic.web.safety_card import GRADE_WORDS, watch_rows, watch_summary
from mesoclinic.web.safety_forms import AdverseEventForm, UpdateAdverseEventForm


def _lot_label(lot: Lot) -> str:
    return f"{lot.product.name}, lot {lot.lot_number}"


@login_required
def report_for_course(request: HttpRequest, course_id: int) -> HttpResponse:
    """From the course card: choose the session, then the form for it."""
    course = access_course(caller(request), course_id, CLINICAL, view=reading(request))
    chosen = request.GET.get("session", "")
    session = course.sessions.filter(pk=int(chosen)).first() if chosen.isdigit() else None
    if session is not None:
        return redirect("web:report_adverse_event", session_id=session.pk)
    tz = course.clinic.tz
    sessions = [
        (s.pk, f"Session {s.number} · {s.performed_at.astimezone(tz):%a %d %b %Y, %H:%M}")
        for s in course.sessions.order_by("-number")
    ]
    return render(
        request,
        "web/safety/choose_session.html",
        {"page": "patients", "patient": course.patient, "course": course, "sessions": sessions},
    )


@login_required
def report_for_session(request: HttpRequest, session_id: int) -> HttpResponse:
    session = access_session(caller(request), session_id, CLINICAL, view=reading(request))
    course = session.course
    lots = actions.injected_lots(session)
    effects = list(session.side_effects.order_by("onset_at"))
    chosen = request.GET.get("side_effect", "")
    escalated = next((e for e in effects if str(e.pk) == chosen), None)
    initial: dict[str, object] = {"onset_at": timezone.now(), "outcome": "ongoing"}
    if escalated is not None:
        initial.update(
            side_effect=escalated.pk,
            onset_at=escalated.onset_at,
            ctcae_grade=escalated.grade,
            description=escalated.description,
        )
    form = AdverseEventForm(
        [(lot.pk, _lot_label(lot)) for lot in lots],
        [(e.pk, f"{e.kind.replace('_', ' ')}, grade {e.grade}") for e in effects],
        course.clinic.timezone,
        request.POST or None,
        initial=initial,
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        by_id = {lot.pk: lot for lot in lots}
        try:
            event = actions.do_report_adverse_event(
                session,
                kind=data["kind"],
                ctcae_grade=data["ctcae_grade"],
                onset_at=data["onset_at"],
                outcome=data["outcome"],
                outcome_at=data["outcome_at"],
                actions_taken=data["actions_taken"],
                description=data["description"],
                snomed_code=data["snomed_code"],
                lots=[by_id[i] for i in data["lots"]],
                side_effect=next((e for e in effects if e.pk == data["side_effect"]), None),
                user=request.user,
                via="web",
            )
        except ValidationError as exc:
            put_errors(form, exc)
        else:
            urgent = event.urgent
            messages.success(
                request,
                f"Serious adverse event recorded after session {session.number}: "
                f"{event.get_kind_display()}, CTCAE grade {event.ctcae_grade}."
                + (
                    " An urgent follow-up was opened; it heads the follow-ups on Today."
                    if urgent
                    else ""
                ),
            )
            return redirect(chart_url(course))
    return render(
        request,
        "web/safety/report_adverse_event.html",
        {
            "page": "patients",
            "patient": course.patient,
            "course": course,
            "session": session,
            "form": form,
            "has_lots": bool(lots),
        },
    )


@login_required
@require_POST
def update(request: HttpRequest, event_id: int) -> HttpResponse:
    event = access_event(caller(request), event_id)
    form = UpdateAdverseEventForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            actions.do_update_adverse_event(
                event,
                outcome=data["outcome"],
                outcome_at=data["outcome_at"],
                actions_taken=data["actions_taken"],
                user=request.user,
                via="web",
            )
        except ValidationError as exc:
            put_errors(form, exc)
        else:
            messages.success(request, f"Adverse event updated: {event.get_outcome_display()}.")
    flash_errors(request, form, "Adverse event")
    return redirect(chart_url(event.course))


@login_required
def adverse_events(request: HttpRequest) -> HttpResponse:
    """Every serious adverse event of the clinic, newest onset first."""
    found = require(request, CLINICAL)
    events = list(
        events_for(caller(request), CLINICAL)
        .select_related("patient", "session__practitioner")
        .prefetch_related("suspected_lots")
    )
    for e in events:
        e.grade_words = GRADE_WORDS.get(e.ctcae_grade, "")  # type: ignore[attr-defined]
    audit_many(
        clinic=found.clinic,
        user=request.user,
        action=AuditEvent.Action.VIEW,
        via="web",
        entries=[(e, e.patient_id, {"list": "adverse_events"}) for e in events],
    )
    return render(
        request,
        "web/safety/adverse_events.html",
        {"page": "safety", "events": events, "list_url": reverse("web:adverse_events")},
    )


@login_required
def watch_schedule(request: HttpRequest, course_id: int) -> HttpResponse:
    """Every infection-watch prompt of a course, by session and week, with its status and the
    patient's answer: the whole schedule, which the chart's safety card sums up as counts, the
    answers and the next prompt (four prompts a session would make the chart long)."""
    course = access_course(caller(request), course_id, ALL_STAFF, view=reading(request))
    rows = watch_rows(course)
    return render(
        request,
        "web/safety/watch_schedule.html",
        {
            "page": "patients",
            "patient": course.patient,
            "course": course,
            "watch": rows,
            "watch_summary": watch_summary(rows),
        },
    )
