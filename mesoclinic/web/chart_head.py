"""What the chart's header shows at once, above every section, and the one action each course
card puts first. Everything comes from records the chart has already read for its course
cards (timeline.load_many), so the header costs one query of its own: the next visit."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.urls import reverse

from mesoclinic.courses.models import Course, FollowUp
from mesoclinic.courses.rules import Refusal
from mesoclinic.patients.models import Patient, Screening
from mesoclinic.protocols.vocab import RefusalCode as Code
from mesoclinic.safety.models import AdverseEvent
from mesoclinic.scheduling.models import Appointment
from mesoclinic.web.timeline import Records

# The kinds of serious adverse event that are an infection: the header names them apart.
INFECTIONS = frozenset(
    {
        AdverseEvent.Kind.INFECTION,
        AdverseEvent.Kind.MYCOBACTERIAL,
        AdverseEvent.Kind.ABSCESS,
    }
)
# An event is still open until it has recovered, or ended in a death.
CLOSED_OUTCOMES = frozenset(
    {
        AdverseEvent.Outcome.RECOVERED,
        AdverseEvent.Outcome.SEQUELAE,
        AdverseEvent.Outcome.FATAL,
    }
)


@dataclass(frozen=True)
class Action:
    """The button a course card puts first: what to do next, in words, and where."""

    label: str
    url: str
    # A gate may be lifted with a reason on the session form: the button then says so.
    secondary: bool = False


def screening_flags(screening: Screening | None) -> dict[str, list[str]]:
    """The latest screening's cautions and hard stops, each in the question's words."""
    return {
        "cautions": list(screening.cautions) if screening else [],
        "hard_stops": list(screening.hard_stops) if screening else [],
    }


def open_events(records: list[Records]) -> tuple[list[AdverseEvent], list[AdverseEvent]]:
    """Serious adverse events not yet recovered, split into (infections, the others)."""
    events = [e for r in records for e in r.adverse_events if e.outcome not in CLOSED_OUTCOMES]
    events.sort(key=lambda e: e.onset_at)
    return (
        [e for e in events if e.kind in INFECTIONS],
        [e for e in events if e.kind not in INFECTIONS],
    )


def open_follow_ups(records: list[Records]) -> list[FollowUp]:
    """Every open follow-up, whatever opened it (a side effect, a serious adverse event or an
    infection-watch answer): urgent first, then the longest open."""
    found = [f for r in records for f in r.other_follow_ups]
    found += [f for r in records for row in r.side_effects for f in row.follow_ups]
    return sorted(
        (f for f in found if f.status == FollowUp.Status.OPEN),
        key=lambda f: (f.priority != FollowUp.Priority.URGENT, f.opened_at, f.pk),
    )


def urgent_follow_ups(records: list[Records]) -> list[FollowUp]:
    """Every open urgent follow-up, the longest open first."""
    return [f for f in open_follow_ups(records) if f.priority == FollowUp.Priority.URGENT]


def next_visit(patient: Patient, now: dt.datetime) -> Appointment | None:
    return (
        Appointment.objects.filter(patient=patient, starts_at__gte=now)
        .exclude(status__in=Appointment.INACTIVE)
        .select_related("practitioner")
        .order_by("starts_at")
        .first()
    )


def header(
    patient: Patient,
    screening: Screening | None,
    records: list[Records],
    now: dt.datetime,
) -> dict[str, Any]:
    infections, events = open_events(records)
    return {
        **screening_flags(screening),
        "screened": screening is not None,
        "open_infections": infections,
        "open_events": events,
        "urgent_follow_ups": urgent_follow_ups(records),
        "next_visit": next_visit(patient, now),
    }


SCREENING = {Code.NO_SCREENING.value, Code.SCREENING_HARD_STOP.value}
CONSENT = {Code.NO_CONSENT.value, Code.CONSENT_OUTDATED.value}
TEST_READING = {Code.ALLERGY_TEST_UNREAD.value, Code.ALLERGY_READ_TOO_EARLY.value}


def needs_consent(course: Course, reasons: list[Refusal], records: Records) -> bool:
    """Whether "Take consent" still applies: an open course with no consent for it, or with
    one whose text has changed since."""
    if course.status in (Course.Status.STOPPED, Course.Status.COMPLETED):
        return False
    codes = {r.code for r in reasons}
    return bool(codes & CONSENT) or not records.consents


def primary_action(
    course: Course, reasons: list[Refusal], sessions_done: int, open_course: bool
) -> Action | None:
    """The one thing to do next on a course, from what blocks its next session, in the order
    a patient goes through them: screening, consent, the allergy test and its reading, the
    baseline measurement; then the session itself when nothing blocks it, or only gates that
    may be lifted with a reason."""
    if not open_course:
        return None
    codes = {r.code for r in reasons}
    patient_id = course.patient_id
    chart = reverse("web:chart", args=[patient_id])
    if Code.SCREENING_HARD_STOP.value in codes:
        return Action("Review the screening", reverse("web:screen", args=[patient_id]))
    if Code.NO_SCREENING.value in codes:
        return Action("Screen the patient", reverse("web:screen", args=[patient_id]))
    if codes & CONSENT:
        return Action("Take consent", reverse("web:consent", args=[patient_id, course.pk]))
    if Code.ALLERGY_TEST_MISSING.value in codes:
        return Action("Give the allergy test", f"{chart}#test-{course.pk}")
    if codes & TEST_READING:
        return Action("Read the allergy test", f"{chart}#test-{course.pk}")
    if Code.NO_BASELINE.value in codes:
        return Action(
            "Record the baseline measurement", reverse("web:record_measurements", args=[course.pk])
        )
    session = reverse("web:chart_session", args=[course.pk])
    if not reasons:
        return Action(f"Chart session {sessions_done + 1}", session)
    if all(r.overridable for r in reasons):
        return Action(f"Chart session {sessions_done + 1} with a reason", session, True)
    return None
