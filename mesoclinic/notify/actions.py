"""Sending text messages, recall notices and maintenance invitations, and what the provider
tells us back (a patient's STOP or START, a delivery report).

Every kind goes through an outbox (lib/outbox.py): planned as a row, claimed by one worker at
a time, re-checked right before it goes, and recorded under the claim. The planning is made
idempotent by the models' unique constraints.

A text is checked, right before it goes, against the patient's consent (a STOP since planning
wins), the visit (cancelled or moved: not sent) and the clinic's quiet hours (a text due in them
is handed back, unclaimed and uncounted, to wait until they end).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Max
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent, audit
from mesoclinic.courses import logic as course_logic
from mesoclinic.courses.models import Course
from mesoclinic.courses.tracing import lot_exposures
from mesoclinic.formulary.models import Lot
from mesoclinic.lib import formats
from mesoclinic.lib.outbox import Outbox
from mesoclinic.notify import emails, links, logic, sms
from mesoclinic.notify.models import (
    MaintenanceInvitation,
    RecallNotice,
    SkipReason,
    Status,
    TextMessage,
)
from mesoclinic.patients.models import Patient
from mesoclinic.reminders import links as reminder_links
from mesoclinic.reminders import logic as reminder_logic
from mesoclinic.scheduling.models import Appointment

logger = logging.getLogger(__name__)

BATCH = 10
VIA = "worker"

TEXTS = Outbox(TextMessage, lease=logic.LEASE, max_attempts=logic.MAX_ATTEMPTS)
NOTICES = Outbox(RecallNotice, lease=logic.LEASE, max_attempts=logic.MAX_ATTEMPTS)
INVITATIONS = Outbox(MaintenanceInvitation, lease=logic.LEASE, max_attempts=logic.MAX_ATTEMPTS)


@dataclass(frozen=True)
class Outcome:
    """What happened to one claimed row; the worker logs one line of it."""

    what: str
    pk: int
    status: str
    detail: str = ""

    def __str__(self) -> str:
        detail = f": {self.detail}" if self.detail else ""
        return f"{self.what} {self.pk} {self.status}{detail}"


# Visit texts.


def do_plan_texts(now: dt.datetime | None = None) -> int:
    """A text for each active visit starting within logic.HORIZON whose patient agreed to
    texts, due logic.TEXT_BEFORE the visit. Planning twice makes nothing more."""
    now = now or timezone.now()
    visits = Appointment.objects.filter(
        status__in=reminder_logic.ACTIVE,
        starts_at__gt=now,
        starts_at__lte=now + logic.HORIZON,
        patient__sms_consent=True,
    ).exclude(texts__kind=TextMessage.Kind.VISIT, texts__planned_for=F("starts_at"))
    rows = [
        TextMessage(
            clinic_id=a.clinic_id,
            patient_id=a.patient_id,
            kind=TextMessage.Kind.VISIT,
            appointment=a,
            planned_for=a.starts_at,
            next_attempt_at=max(a.starts_at - logic.TEXT_BEFORE, now),
        )
        for a in visits
    ]
    TextMessage.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def _text_skip(text: TextMessage, now: dt.datetime) -> str | None:
    patient = text.patient
    if not patient.sms_consent:
        return SkipReason.NO_CONSENT
    if not patient.phone_e164:
        return SkipReason.NO_PHONE
    if text.kind == TextMessage.Kind.VISIT:
        visit = text.appointment
        assert visit is not None
        if visit.status not in reminder_logic.ACTIVE or visit.starts_at != text.planned_for:
            return SkipReason.VISIT_CHANGED
        if visit.starts_at <= now:
            return SkipReason.TOO_LATE
    if not sms.configured():
        return SkipReason.NOT_CONFIGURED
    return None


def text_body(text: TextMessage) -> str:
    """The words of a text: only ever one of logic.TEXTS, given no health details."""
    clinic = text.clinic
    if text.kind == TextMessage.Kind.VISIT:
        visit = text.appointment
        assert visit is not None
        when = reminder_logic.short_when(clinic.local(visit.starts_at), clinic)
        return logic.visit_text(
            clinic.name, when, reminder_links.absolute_url(visit, reminder_links.CONFIRM)
        )
    assert text.notice_id is not None
    return logic.notice_text(clinic.name, clinic.phone, links.notice_url(text.notice_id))


def deliver_text(claimed: TextMessage) -> Outcome:
    text = (
        TextMessage.objects.select_related("clinic", "patient", "appointment")
        .filter(pk=claimed.pk)
        .first()
    )
    if text is None:
        return Outcome("text", claimed.pk, "gone")
    now = timezone.now()
    reason = _text_skip(text, now)
    if reason:
        held = TEXTS.finish(claimed, status=Status.SKIPPED, skip_reason=reason)
        return Outcome("text", text.pk, "skipped" if held else "lost", reason)
    clinic = text.clinic
    resume = logic.after_quiet_hours(now, clinic.tz, clinic.quiet_from, clinic.quiet_until)
    if resume > now:
        held = TEXTS.finish(
            claimed, status=Status.PENDING, next_attempt_at=resume, attempts=F("attempts") - 1
        )
        return Outcome("text", text.pk, "waiting" if held else "lost", f"quiet until {resume}")
    if not TEXTS.held(claimed).exists():
        return Outcome("text", text.pk, "lost", "another worker took it over")
    body = text_body(text)
    to = text.patient.phone_e164
    try:
        sent = sms.send(to, body, status_callback=links.absolute("notify:sms_status"))
    except sms.SmsError as exc:
        if not exc.permanent:
            return Outcome("text", text.pk, *TEXTS.failed(claimed, exc))
        TEXTS.finish(
            claimed,
            status=Status.FAILED,
            skip_reason=SkipReason.REFUSED,
            last_error=str(exc)[:500],
            provider_error=str(exc.code or ""),
            body=body,
        )
        if exc.code == sms.UNSUBSCRIBED:
            # The provider holds a STOP we never heard: the patient's yes no longer stands.
            _set_consent(text.patient, False, via="sms-provider", why="refused as unsubscribed")
        return Outcome("text", text.pk, "failed", str(exc))
    held = TEXTS.finish(
        claimed,
        status=Status.SENT,
        sent_at=timezone.now(),
        sent_to=to,
        body=body,
        provider_sid=sent.sid,
        provider_status=sent.status,
        status_at=timezone.now(),
        last_error="",
    )
    return Outcome("text", text.pk, "sent" if held else "sent, claim lost", sent.sid)


# Recall notices.


def do_notify_exposed(lot: Lot, text: str, *, user: Any, via: str = "web") -> list[RecallNotice]:
    """A notice to every patient who received the recalled lot and has none yet; each is
    emailed, and texted if they agreed to texts, by the worker. The lot's row is locked, so two
    clicks at once make one set of notices (the unique constraint backs this up). Answers the
    notices made by this call."""
    text = text.strip()
    if not text:
        raise ValidationError({"text": "Write the notice the patients will read."})
    with transaction.atomic():
        locked = Lot.objects.select_for_update().select_related("product__clinic").get(pk=lot.pk)
        if not locked.recalled:
            raise ValidationError("Recall the lot before notifying its patients.")
        clinic = locked.product.clinic
        exposed = [row["id"] for row in lot_exposures(locked)]
        have = set(
            RecallNotice.objects.filter(lot=locked, patient_id__in=exposed).values_list(
                "patient_id", flat=True
            )
        )
        made = []
        for patient_id in exposed:
            if patient_id in have:
                continue
            notice = RecallNotice.objects.create(
                clinic=clinic, lot=locked, patient_id=patient_id, text=text, created_by=user
            )
            TextMessage.objects.create(
                clinic=clinic, patient_id=patient_id, kind=TextMessage.Kind.NOTICE, notice=notice
            )
            audit(
                clinic=clinic,
                user=user,
                action=AuditEvent.Action.CREATE,
                obj=notice,
                patient_id=patient_id,
                via=via,
                lot=locked.pk,
            )
            made.append(notice)
    return made


def deliver_notice(claimed: RecallNotice) -> Outcome:
    notice = RecallNotice.objects.select_related("clinic", "patient").filter(pk=claimed.pk).first()
    if notice is None:
        return Outcome("notice", claimed.pk, "gone")
    to = notice.patient.email
    status, detail = NOTICES.send(
        claimed,
        skip_reason=None if to.strip() else SkipReason.NO_EMAIL,
        to=to,
        message=lambda: emails.notice_email(
            notice.clinic, notice.patient.first_name, to, links.notice_url(notice.pk)
        ),
    )
    return Outcome("notice", notice.pk, status, detail)


def do_mark_read(notice: RecallNotice) -> bool:
    """The patient opened the notice. Only the first reading is recorded as its time."""
    done = RecallNotice.objects.filter(pk=notice.pk, read_at__isnull=True).update(
        read_at=timezone.now()
    )
    if done:
        notice.refresh_from_db(fields=["read_at"])
    return bool(done)


# Maintenance invitations.


def do_plan_invitations(now: dt.datetime | None = None) -> int:
    """An invitation for each completed course whose maintenance window (from its protocol's
    maintenance months after the last session) is open today in the clinic's zone. A course
    whose window is already past gets a skipped row instead: an invitation late by months
    would mislead, and the row keeps the course from being looked at again on every tick.
    Answers how many invitations are to be sent."""
    now = now or timezone.now()
    courses = (
        Course.objects.filter(status=Course.Status.COMPLETED, maintenance_invitation__isnull=True)
        .select_related("clinic", "protocol")
        .annotate(last_at=Max("sessions__performed_at"))
        .filter(last_at__isnull=False)
    )
    rows = []
    for course in courses:
        tz = course.clinic.tz
        window = course_logic.maintenance_window(course.last_at.astimezone(tz).date(), course.spec)
        start, end = dt.date.fromisoformat(window["from"]), dt.date.fromisoformat(window["to"])
        today = now.astimezone(tz).date()
        if today < start:
            continue
        late = today > end
        rows.append(
            MaintenanceInvitation(
                clinic_id=course.clinic_id,
                course=course,
                patient_id=course.patient_id,
                window_from=start,
                window_to=end,
                next_attempt_at=now,
                status=Status.SKIPPED if late else Status.PENDING,
                skip_reason=SkipReason.TOO_LATE if late else "",
            )
        )
    MaintenanceInvitation.objects.bulk_create(rows, ignore_conflicts=True)
    return sum(1 for r in rows if r.status == Status.PENDING)


def deliver_invitation(claimed: MaintenanceInvitation) -> Outcome:
    invitation = (
        MaintenanceInvitation.objects.select_related("clinic", "patient", "course")
        .filter(pk=claimed.pk)
        .first()
    )
    if invitation is None:
        return Outcome("invitation", claimed.pk, "gone")
    to = invitation.patient.email
    reason = None
    if invitation.course.status != Course.Status.COMPLETED:
        reason = SkipReason.NOT_DUE
    elif not to.strip():
        reason = SkipReason.NO_EMAIL
    clinic = invitation.clinic
    status, detail = INVITATIONS.send(
        claimed,
        skip_reason=reason,
        to=to,
        message=lambda: emails.invitation_email(
            clinic,
            invitation.patient.first_name,
            to,
            formats.date_text(invitation.window_from, clinic),
            formats.date_text(invitation.window_to, clinic),
        ),
    )
    if status.startswith("sent"):
        audit(
            clinic=clinic,
            user=None,
            action=AuditEvent.Action.CREATE,
            obj=invitation,
            patient_id=invitation.patient_id,
            via=VIA,
            sent_to=to,
        )
    return Outcome("invitation", invitation.pk, status, detail)


# The worker's tick.


def send_due(
    worker: str,
    *,
    limit: int = BATCH,
    report: Callable[[Outcome], None] | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> list[Outcome]:
    """Plan visit texts and maintenance invitations, then send every due text, recall notice
    and invitation."""
    outcomes: list[Outcome] = []
    do_plan_texts()
    do_plan_invitations()
    outcomes += TEXTS.drain(worker, deliver_text, limit=limit, report=report, stop=stop)
    outcomes += NOTICES.drain(worker, deliver_notice, limit=limit, report=report, stop=stop)
    outcomes += INVITATIONS.drain(worker, deliver_invitation, limit=limit, report=report, stop=stop)
    return outcomes


# From the provider.


def _set_consent(patient: Patient, agreed: bool, *, via: str, why: str) -> bool:
    """Record a patient's yes or no to texts; False when it was already so."""
    with transaction.atomic():
        changed = Patient.objects.filter(pk=patient.pk, sms_consent=not agreed).update(
            sms_consent=agreed, sms_consent_at=timezone.now() if agreed else None
        )
        if changed:
            audit(
                clinic=patient.clinic,
                user=None,
                action=AuditEvent.Action.UPDATE,
                obj=patient,
                patient_id=patient.pk,
                via=via,
                sms_consent=agreed,
                why=why,
            )
    return bool(changed)


def do_inbound(params: Mapping[str, str]) -> int:
    """A patient's reply. STOP and its synonyms withdraw the consent of every patient record
    with that number (the provider stops all texts to it from our number, whichever clinic);
    START gives it back. Anything else is ignored: the clinic's number is not a message
    service. Answers how many records changed."""
    word = logic.keyword(params.get("OptOutType", "") or params.get("Body", ""))
    sender = params.get("From", "").strip()
    if word is None or not sender:
        return 0
    changed = 0
    for patient in Patient.objects.filter(phone_e164=sender).select_related("clinic"):
        changed += _set_consent(patient, word == "start", via="sms", why=f"replied {word.upper()}")
    return changed


def do_status(params: Mapping[str, str]) -> bool:
    """A delivery report: the provider's status of a text we sent (queued, sent, delivered,
    undelivered, failed), with its error code when there is one."""
    sid = params.get("MessageSid", "") or params.get("SmsSid", "")
    status = (params.get("MessageStatus", "") or params.get("SmsStatus", ""))[:20]
    if not sid or not status:
        return False
    return bool(
        TextMessage.objects.filter(provider_sid=sid).update(
            provider_status=status,
            provider_error=params.get("ErrorCode", "")[:20],
            status_at=timezone.now(),
        )
    )
