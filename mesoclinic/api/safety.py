"""Serious adverse events and the infection watch in the JSON API.

Registered on the NinjaAPI of views.py by ApiConfig.ready. Every change goes through
safety.actions, so the API refuses exactly what the web refuses: bad input is 422
`application/problem+json` naming the field.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Field, Schema, Status

from mesoclinic.access import (
    access_course,
    access_event,
    access_session,
    events_for,
    lots_for,
    side_effects_for,
)
from mesoclinic.accounts.models import AuditEvent, audit, audit_many
from mesoclinic.api.auth import CLINICAL, caller
from mesoclinic.api.schemas import Id, When
from mesoclinic.api.views import api
from mesoclinic.courses.models import SideEffect
from mesoclinic.formulary.models import Lot
from mesoclinic.lib import limits
from mesoclinic.safety import actions
from mesoclinic.safety.models import AdverseEvent, WatchPrompt

TAGS = ["safety"]


class AdverseEventIn(Schema):
    session: Id = Field(description="The session the event followed.")
    kind: str = Field(
        max_length=limits.KEY, description="One of: " + ", ".join(AdverseEvent.Kind.values) + "."
    )
    ctcae_grade: int = Field(ge=1, le=5, description="CTCAE injection site reaction grade.")
    onset_at: When
    outcome: str = Field(
        default="ongoing",
        max_length=limits.KEY,
        description="FHIR adverse-event-outcome: " + ", ".join(AdverseEvent.Outcome.values),
    )
    outcome_at: When | None = None
    actions_taken: str = Field(default="", max_length=5000)
    description: str = Field(default="", max_length=5000)
    snomed_code: str = Field(
        default="", max_length=18, description="Optional SNOMED CT concept id."
    )
    lots: list[Id] = Field(default=[], max_length=50, description="Lots injected in the session.")
    side_effect: Id | None = Field(default=None, description="The side effect it escalates.")


class AdverseEventPatch(Schema):
    outcome: str | None = Field(default=None, max_length=limits.KEY)
    outcome_at: When | None = None
    actions_taken: str | None = Field(default=None, max_length=5000)


def _event_out(e: AdverseEvent) -> dict[str, Any]:
    return {
        "id": e.pk,
        "patient": e.patient_id,
        "course": e.course_id,
        "session": e.session_id,
        "side_effect": e.side_effect_id,
        "kind": e.kind,
        "description": e.description,
        "ctcae_grade": e.ctcae_grade,
        "snomed_code": e.snomed_code,
        "onset_at": e.onset_at,
        "outcome": e.outcome,
        "outcome_at": e.outcome_at,
        "actions_taken": e.actions_taken,
        "lots": [{"id": lot.pk, "lot_number": lot.lot_number} for lot in e.suspected_lots.all()],
        "reported_by": e.reported_by_id,
        "reported_at": e.reported_at,
        "updated_at": e.updated_at,
        "urgent": e.urgent,
    }


@api.post("/adverse-events", response={201: dict}, tags=TAGS)
def report_adverse_event(request: HttpRequest, payload: AdverseEventIn) -> Status[dict[str, Any]]:
    session = access_session(caller(request), payload.session, CLINICAL)
    # Lots of another clinic are not found here, and are refused as not injected.
    lots = list(lots_for(caller(request), CLINICAL).filter(pk__in=payload.lots))
    missing = set(payload.lots) - {lot.pk for lot in lots}
    lots += [Lot(pk=pk, lot_number=f"#{pk}") for pk in sorted(missing)]
    side_effect = None
    if payload.side_effect is not None:
        side_effect = side_effects_for(caller(request), CLINICAL).filter(
            pk=payload.side_effect
        ).first() or SideEffect(pk=payload.side_effect, session_id=0)
    event = actions.do_report_adverse_event(
        session,
        kind=payload.kind,
        ctcae_grade=payload.ctcae_grade,
        onset_at=payload.onset_at,
        outcome=payload.outcome,
        outcome_at=payload.outcome_at,
        actions_taken=payload.actions_taken,
        description=payload.description,
        snomed_code=payload.snomed_code,
        lots=lots,
        side_effect=side_effect,
        user=caller(request).user,
    )
    return Status(201, _event_out(event))


@api.get("/adverse-events", tags=TAGS)
def list_adverse_events(
    request: HttpRequest, patient: Id | None = None, course: Id | None = None
) -> list[dict[str, Any]]:
    """The clinic's serious adverse events, newest onset first; filter by patient or course."""
    who = caller(request)
    who.require(CLINICAL)
    qs = (
        events_for(who, CLINICAL)
        .select_related("course__protocol")
        .prefetch_related("suspected_lots")
    )
    if patient is not None:
        qs = qs.filter(patient_id=patient)
    if course is not None:
        qs = qs.filter(course_id=course)
    events = list(qs)
    audit_many(
        clinic=who.clinic,
        user=who.user,
        action=AuditEvent.Action.VIEW,
        via="api",
        entries=[(e, e.patient_id, {}) for e in events],
    )
    return [_event_out(e) for e in events]


@api.get("/adverse-events/{event_id}", tags=TAGS)
def get_adverse_event(request: HttpRequest, event_id: int) -> dict[str, Any]:
    event = access_event(caller(request), event_id)
    audit(
        clinic=event.clinic,
        user=caller(request).user,
        action=AuditEvent.Action.VIEW,
        obj=event,
        patient_id=event.patient_id,
        via="api",
    )
    return _event_out(event)


@api.patch("/adverse-events/{event_id}", tags=TAGS)
def update_adverse_event(
    request: HttpRequest, event_id: int, payload: AdverseEventPatch
) -> dict[str, Any]:
    """Change the outcome (with outcome_at when it has ended) or the actions taken. The report
    itself is never rewritten."""
    event = access_event(caller(request), event_id)
    actions.do_update_adverse_event(
        event,
        outcome=payload.outcome,
        outcome_at=payload.outcome_at,
        actions_taken=payload.actions_taken,
        user=caller(request).user,
    )
    return _event_out(event)


@api.get("/courses/{course_id}/watch", tags=TAGS)
def course_watch(request: HttpRequest, course_id: int) -> list[dict[str, Any]]:
    """The course's infection-watch prompts, with the patient's answers."""
    course = access_course(caller(request), course_id, CLINICAL)
    audit(
        clinic=course.clinic,
        user=caller(request).user,
        action=AuditEvent.Action.VIEW,
        obj=course,
        patient_id=course.patient_id,
        via="api",
        watch=True,
    )
    prompts = WatchPrompt.objects.filter(session__course=course).select_related("session")
    return [
        {
            "id": p.pk,
            "session": p.session_id,
            "session_number": p.session.number,
            "week": p.week,
            "due_at": p.due_at,
            "status": p.status,
            "skip_reason": p.skip_reason,
            "sent_at": p.sent_at,
            "answered_at": p.answered_at,
            "answers": p.answers,
            "warning_signs": p.warning_signs,
            "follow_up": p.follow_up_id,
        }
        for p in prompts.order_by("session__number", "week")
    ]
