"""State changes for serious adverse events and for a patient's answer to an infection-watch
questionnaire. Each validates, writes in one transaction, and writes an audit row.

A serious adverse event is a report: once made, its facts (kind, grade, onset, session, lots)
stay as reported. What changes later is how it ends (outcome, outcome_at) and what was done
(actions_taken); each change is audited with the values it replaced.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent, audit
from mesoclinic.courses.actions import check_reaction, not_future
from mesoclinic.courses.models import FollowUp, Session, SideEffect
from mesoclinic.formulary.models import Lot
from mesoclinic.safety import logic
from mesoclinic.safety.models import AdverseEvent, WatchPrompt

Kind = AdverseEvent.Kind
Outcome = AdverseEvent.Outcome
VIA_PATIENT = "patient-link"


def injected_lots(session: Session) -> list[Lot]:
    """The lots injected in a session: the only ones an event after it may suspect."""
    return list(
        Lot.objects.filter(session_injections__session=session)
        .select_related("product")
        .distinct()
        .order_by("product__name", "lot_number")
    )


def _check_outcome(
    outcome: str, outcome_at: dt.datetime | None, onset_at: dt.datetime, grade: int
) -> None:
    if outcome not in Outcome.values:
        raise ValidationError({"outcome": f"must be one of {', '.join(Outcome.values)}."})
    if outcome == Outcome.FATAL and grade != 5:
        raise ValidationError({"outcome": "a fatal outcome is CTCAE grade 5."})
    if outcome in logic.ENDED_OUTCOMES:
        if outcome_at is None:
            raise ValidationError({"outcome_at": "say when it ended."})
        not_future(outcome_at, "outcome_at")
        if outcome_at < onset_at:
            raise ValidationError({"outcome_at": "cannot be before the onset."})
    elif outcome_at is not None:
        raise ValidationError(
            {
                "outcome_at": "only an event that has ended (recovered, with lasting effects, or "
                "fatal) has an end date."
            }
        )


def _open_urgent_follow_up(event: AdverseEvent) -> FollowUp:
    """An urgent follow-up for the event's session. When the event was escalated from a side
    effect whose follow-up is still open, that one becomes urgent rather than a second task."""
    reason = (
        f"Serious adverse event: {event.get_kind_display()}, CTCAE grade {event.ctcae_grade} "
        f"(session {event.session.number})"
    )
    if event.side_effect_id is not None:
        open_one = FollowUp.objects.filter(
            side_effect_id=event.side_effect_id, status=FollowUp.Status.OPEN
        ).first()
        if open_one is not None:
            open_one.priority, open_one.reason = FollowUp.Priority.URGENT, reason[:300]
            open_one.save(update_fields=["priority", "reason"])
            return open_one
    return FollowUp.objects.create(
        clinic=event.clinic,
        session=event.session,
        priority=FollowUp.Priority.URGENT,
        reason=reason[:300],
    )


def do_report_adverse_event(
    session: Session,
    *,
    kind: str,
    ctcae_grade: int,
    onset_at: dt.datetime,
    outcome: str = Outcome.ONGOING,
    outcome_at: dt.datetime | None = None,
    actions_taken: str = "",
    description: str = "",
    snomed_code: str = "",
    lots: list[Lot] | None = None,
    side_effect: SideEffect | None = None,
    user: Any,
    via: str = "api",
) -> AdverseEvent:
    """Record a serious adverse event after `session`. An infection, or a grade at or above
    the protocol's `urgent_from_grade` (3), opens an urgent follow-up (AdverseEvent.urgent)."""
    course = session.course
    if kind not in Kind.values:
        raise ValidationError({"kind": f"must be one of {', '.join(Kind.values)}."})
    if kind == Kind.OTHER and not description.strip():
        raise ValidationError({"description": "describe an event of kind other."})
    check_reaction(session, ctcae_grade, onset_at, grade_field="ctcae_grade")
    _check_outcome(outcome, outcome_at, onset_at, ctcae_grade)
    snomed_code = snomed_code.strip()
    if snomed_code and (problem := logic.sctid_problem(snomed_code)):
        raise ValidationError({"snomed_code": problem})
    allowed = {lot.pk: lot for lot in injected_lots(session)}
    stray = [lot for lot in lots or [] if lot.pk not in allowed]
    if stray:
        names = ", ".join(lot.lot_number for lot in stray)
        raise ValidationError({"lots": f"{names} was not injected in session {session.number}."})
    if side_effect is not None and side_effect.session_id != session.pk:
        raise ValidationError({"side_effect": f"is not a side effect of session {session.number}."})
    now = timezone.now()
    event = AdverseEvent(
        clinic=course.clinic,
        patient_id=course.patient_id,
        course=course,
        session=session,
        side_effect=side_effect,
        kind=kind,
        description=description.strip(),
        snomed_code=snomed_code,
        ctcae_grade=ctcae_grade,
        onset_at=onset_at,
        outcome=outcome,
        outcome_at=outcome_at,
        actions_taken=actions_taken.strip(),
        reported_by=user,
        reported_at=now,
        updated_at=now,
    )
    with transaction.atomic():
        event.save()
        suspected = sorted({lot.pk for lot in lots or []})
        event.suspected_lots.set(suspected)
        follow_up = (
            _open_urgent_follow_up(event)
            if logic.urgent(kind, ctcae_grade, course.spec.urgent_from_grade.v)
            else None
        )
        audit(
            clinic=course.clinic,
            user=user,
            action=AuditEvent.Action.CREATE,
            obj=event,
            patient_id=course.patient_id,
            via=via,
            kind=kind,
            ctcae_grade=ctcae_grade,
            lots=suspected,
            follow_up=follow_up.pk if follow_up else None,
        )
    return event


def do_update_adverse_event(
    event: AdverseEvent,
    *,
    outcome: str | None = None,
    outcome_at: dt.datetime | None = None,
    actions_taken: str | None = None,
    user: Any,
    via: str = "api",
) -> AdverseEvent:
    """Change how the event ended and what was done. The report itself is never rewritten;
    the audit row keeps the values replaced. `outcome_at` goes with `outcome`: an outcome that
    has not ended clears it."""
    new_outcome = event.outcome if outcome is None else outcome
    new_at = outcome_at if outcome is not None else event.outcome_at
    if outcome is None and outcome_at is not None:
        raise ValidationError({"outcome_at": "give it with the outcome it dates."})
    _check_outcome(new_outcome, new_at, event.onset_at, event.ctcae_grade)
    changes: dict[str, Any] = {}
    if new_outcome != event.outcome:
        changes["outcome"] = (event.outcome, new_outcome)
    if new_at != event.outcome_at:
        changes["outcome_at"] = (
            event.outcome_at.isoformat() if event.outcome_at else None,
            new_at.isoformat() if new_at else None,
        )
    if actions_taken is not None and actions_taken.strip() != event.actions_taken:
        changes["actions_taken"] = (event.actions_taken, actions_taken.strip())
    if not changes:
        raise ValidationError("Nothing to change: the event already says this.")
    with transaction.atomic():
        event.outcome, event.outcome_at = new_outcome, new_at
        if actions_taken is not None:
            event.actions_taken = actions_taken.strip()
        event.updated_at = timezone.now()
        event.save(update_fields=["outcome", "outcome_at", "actions_taken", "updated_at"])
        audit(
            clinic=event.clinic,
            user=user,
            action=AuditEvent.Action.UPDATE,
            obj=event,
            patient_id=event.patient_id,
            via=via,
            changes={field: {"from": old, "to": new} for field, (old, new) in changes.items()},
        )
    return event


class AlreadyAnswered(Exception):
    """The questionnaire was answered before; its answer stands."""


def do_answer_watch(
    prompt_id: int, answers: dict[str, Any], *, user: Any = None, via: str = VIA_PATIENT
) -> WatchPrompt:
    """Record a patient's answers to a watch questionnaire, once. A reported lump, discharge or
    non-healing wound opens an urgent follow-up for the session and links it to the prompt.
    A second answer raises AlreadyAnswered and changes nothing. `user` is the patient's own
    login when they answer in the portal (`via` "portal"); the signed link has none."""
    clean: dict[str, object] = {key: answers.get(key) is True for key in logic.QUESTION_KEYS}
    clean["notes"] = str(answers.get("notes") or "").strip()[: logic.NOTES_MAX]
    with transaction.atomic():
        prompt = (
            WatchPrompt.objects.select_for_update()
            .select_related("clinic", "session__course")
            .get(pk=prompt_id)
        )
        if prompt.answered_at is not None:
            raise AlreadyAnswered()
        signs = logic.warning_signs(clean)
        # One moment for both, so the timeline shows the answer, then the follow-up it opened.
        now = timezone.now()
        follow_up = None
        if signs:
            follow_up = FollowUp.objects.create(
                clinic=prompt.clinic,
                session=prompt.session,
                priority=FollowUp.Priority.URGENT,
                reason=logic.follow_up_reason(prompt.week, signs)[:300],
                opened_at=now,
            )
        prompt.answers = clean
        prompt.warning_signs = signs
        prompt.answered_at = now
        prompt.status = WatchPrompt.Status.ANSWERED
        prompt.follow_up = follow_up
        prompt.save(
            update_fields=["answers", "warning_signs", "answered_at", "status", "follow_up"]
        )
        audit(
            clinic=prompt.clinic,
            user=user,
            action=AuditEvent.Action.UPDATE,
            obj=prompt,
            patient_id=prompt.session.course.patient_id,
            via=via,
            answered=True,
            warning_signs=signs,
            follow_up=follow_up.pk if follow_up else None,
        )
    return prompt
