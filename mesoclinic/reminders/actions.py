"""Planning and sending reminders, and what a patient does from a reminder's links.

A reminder goes out once, however many workers run:

1. `do_plan_reminders` creates the rows a visit needs. The unique constraint on (appointment,
   kind, planned_for) and `ignore_conflicts` make planning twice, or by two workers at once,
   create nothing more.
2. `claim` takes due rows for one worker at a time (lib/outbox.py, shared with the infection
   watch, says how).
3. `deliver` re-reads the appointment, skips what must not go out, checks that it still holds
   the claim (its token is still on the row), sends, and records the outcome under the same
   condition.

A worker that dies after the SMTP server accepted a message but before recording it leaves the
row in `sending`; after the lease another worker sends it again. That is the one way a patient
can get a reminder twice, and it is preferred to never getting it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent, acting, audit
from mesoclinic.lib.outbox import Outbox
from mesoclinic.reminders import logic
from mesoclinic.reminders.emails import reminder_message
from mesoclinic.reminders.models import ChangeRequest, Reminder
from mesoclinic.scheduling.models import Appointment

VIA = "patient-link"
BATCH = 10
Status = Reminder.Status


# Planning.


def do_plan_reminders(now: dt.datetime | None = None) -> int:
    """Create the missing reminders of every active visit starting within logic.HORIZON, bring
    back skipped ones whose reason no longer holds, and skip pending ones that went stale.
    Returns how many rows this call created, skipped ones included."""
    now = now or timezone.now()
    appointments = {
        a.pk: a
        for a in Appointment.objects.filter(
            status__in=logic.ACTIVE, starts_at__gt=now, starts_at__lte=now + logic.HORIZON
        ).select_related("patient")
    }
    have = set(
        Reminder.objects.filter(appointment_id__in=list(appointments)).values_list(
            "appointment_id", "kind", "planned_for"
        )
    )
    rows = [
        _planned(a, kind, now)
        for a in appointments.values()
        for kind in Reminder.Kind.values
        if (a.pk, kind, a.starts_at) not in have
    ]
    Reminder.objects.bulk_create(rows, ignore_conflicts=True)
    _revive(appointments, now)
    _skip_stale()
    return len(rows)


def _reason(appointment: Appointment, kind: str, now: dt.datetime) -> str | None:
    reason = logic.skip_reason(
        kind,
        appointment.starts_at,
        status=appointment.status,
        starts_at=appointment.starts_at,
        email=appointment.patient.email,
        now=now,
    )
    if reason is None and logic.planned_late(kind, appointment.starts_at, now):
        return logic.SKIP_BOOKED_LATE
    return reason


def _planned(appointment: Appointment, kind: str, now: dt.datetime) -> Reminder:
    reason = _reason(appointment, kind, now)
    due = logic.due_at(kind, appointment.starts_at)
    return Reminder(
        clinic_id=appointment.clinic_id,
        appointment=appointment,
        kind=kind,
        planned_for=appointment.starts_at,
        due_at=due,
        next_attempt_at=due,
        status=Status.SKIPPED if reason else Status.PENDING,
        skip_reason=reason or "",
    )


def _revive(appointments: dict[int, Appointment], now: dt.datetime) -> None:
    """A visit moved back to its old time, reopened, or whose patient now has an email gets
    its skipped reminders back, rather than none: the unique constraint would refuse new ones."""
    skipped = Reminder.objects.filter(
        appointment_id__in=list(appointments),
        status=Status.SKIPPED,
        skip_reason__in=logic.REVIVABLE,
        planned_for=F("appointment__starts_at"),
    )
    for reminder in skipped:
        if _reason(appointments[reminder.appointment_id], reminder.kind, now) is None:
            Reminder.objects.filter(pk=reminder.pk, status=Status.SKIPPED).update(
                status=Status.PENDING,
                skip_reason="",
                attempts=0,
                next_attempt_at=reminder.due_at,
                last_error="",
            )


def _skip_stale() -> None:
    """Pending reminders of visits since cancelled, missed or moved are skipped at once, so the
    outbox shows the truth before they fall due. (deliver() checks again in any case.)"""
    stale = {
        logic.SKIP_CANCELLED: Q(appointment__status=logic.CANCELLED),
        logic.SKIP_NO_SHOW: Q(appointment__status=logic.NO_SHOW),
        logic.SKIP_MOVED: ~Q(planned_for=F("appointment__starts_at")),
    }
    for reason, condition in stale.items():
        Reminder.objects.filter(condition, status=Status.PENDING).update(
            status=Status.SKIPPED, skip_reason=reason
        )


# Sending.


@dataclass(frozen=True)
class Outcome:
    """What happened to one claimed reminder; the worker logs one line of it."""

    reminder: int
    appointment: int
    kind: str
    status: str
    detail: str = ""

    @classmethod
    def of(cls, reminder: Reminder, status: str, detail: str = "") -> Outcome:
        return cls(reminder.pk, reminder.appointment_id, reminder.kind, status, detail)

    def __str__(self) -> str:
        detail = f": {self.detail}" if self.detail else ""
        return (
            f"reminder {self.reminder} ({self.kind}, appointment {self.appointment}) "
            f"{self.status}{detail}"
        )


# The outbox: claiming, holding, retrying and draining, shared with the infection watch.
OUTBOX = Outbox(Reminder, lease=logic.LEASE, max_attempts=logic.MAX_ATTEMPTS)


def claim(worker: str, limit: int = BATCH) -> list[Reminder]:
    """Take up to `limit` due reminders for `worker`; none is ever held by two workers at once.
    A row left in `sending` by a worker that died is due again after logic.LEASE."""
    return OUTBOX.claim(worker, limit)


def deliver(reminder: Reminder) -> Outcome:
    """Send one claimed reminder, unless the appointment, read afresh, says it must not go out.
    A failure to send is retried after logic.backoff() until logic.MAX_ATTEMPTS."""
    appointment = (
        Appointment.objects.select_related("clinic", "patient", "practitioner", "course__protocol")
        .filter(pk=reminder.appointment_id)
        .first()
    )
    if appointment is None:  # Deleted: its reminders went with it.
        return Outcome.of(reminder, "gone")
    now = timezone.now()
    reason = logic.skip_reason(
        reminder.kind,
        reminder.planned_for,
        status=appointment.status,
        starts_at=appointment.starts_at,
        email=appointment.patient.email,
        now=now,
    )
    to = appointment.patient.email
    return Outcome.of(
        reminder,
        *OUTBOX.send(
            reminder, skip_reason=reason, to=to, message=lambda: reminder_message(appointment, to)
        ),
    )


def send_due(
    worker: str,
    *,
    limit: int = BATCH,
    report: Callable[[Outcome], None] | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> list[Outcome]:
    """Claim and deliver batches until nothing is due, reporting each outcome as it happens.
    Once `stop()` is true, the rest of the batch is handed back for another worker at once."""
    return OUTBOX.drain(worker, deliver, limit=limit, report=report, stop=stop)


# From a reminder's links.


def _lock_open_visit(appointment_id: int, planned_for: dt.datetime) -> Appointment:
    """The appointment, locked, if the patient may still act on it from a link shown for
    `planned_for`; ValidationError otherwise. The views check first to say why; this check
    under the lock is the one that counts."""
    fresh = Appointment.objects.select_for_update().select_related("clinic").get(pk=appointment_id)
    if fresh.status not in logic.ACTIVE:
        raise ValidationError(f"This visit is {fresh.get_status_display().lower()}.")
    if fresh.starts_at != planned_for:
        raise ValidationError("This visit has moved since the link was sent.")
    if fresh.starts_at <= timezone.now():
        raise ValidationError("This visit has begun.")
    return fresh


def do_confirm_by_link(appointment_id: int, planned_for: dt.datetime) -> Appointment:
    """The patient confirms from a reminder's link: booked becomes confirmed. Confirming
    again changes nothing and writes no second audit row."""
    with transaction.atomic():
        fresh = _lock_open_visit(appointment_id, planned_for)
        if fresh.status == Appointment.Status.BOOKED:
            fresh.status = Appointment.Status.CONFIRMED
            # Not save(): its overlap re-check is about times, and confirming changes none.
            Appointment.objects.filter(pk=fresh.pk).update(status=fresh.status)
            audit(
                clinic=fresh.clinic,
                user=None,
                action=AuditEvent.Action.UPDATE,
                obj=fresh,
                patient_id=fresh.patient_id,
                via=VIA,
                status=fresh.status,
                previous=Appointment.Status.BOOKED,
            )
    return fresh


def do_request_change(
    appointment_id: int, planned_for: dt.datetime, message: str = ""
) -> ChangeRequest:
    """The patient asks to change a visit. One open request per visit time: asking again
    replaces its message, so a patient who adds a detail does not file a second request."""
    message = message.strip()[:1000]
    with transaction.atomic():
        fresh = _lock_open_visit(appointment_id, planned_for)
        request = ChangeRequest.objects.filter(
            appointment=fresh, planned_for=planned_for, handled_at__isnull=True
        ).first()
        if request is None:
            request = ChangeRequest.objects.create(
                clinic=fresh.clinic, appointment=fresh, planned_for=planned_for, message=message
            )
            action = AuditEvent.Action.CREATE
        else:
            request.message = message or request.message
            request.updated_at = timezone.now()
            request.save(update_fields=["message", "updated_at"])
            action = AuditEvent.Action.UPDATE
        audit(
            clinic=fresh.clinic,
            user=None,
            action=action,
            obj=request,
            patient_id=fresh.patient_id,
            via=VIA,
            appointment=fresh.pk,
        )
    return request


def do_handle_change_request(request: ChangeRequest, *, user: Any, via: str = "web") -> bool:
    """The front desk has dealt with a patient's request to change a visit. False when it was
    handled already (by someone else, a moment ago)."""
    with transaction.atomic():
        done = ChangeRequest.objects.filter(pk=request.pk, handled_at__isnull=True).update(
            handled_at=timezone.now(), handled_by=acting(user)
        )
        if done:
            audit(
                clinic=request.clinic,
                user=user,
                action=AuditEvent.Action.UPDATE,
                obj=request,
                patient_id=request.appointment.patient_id,
                via=via,
                handled=True,
            )
    return bool(done)
