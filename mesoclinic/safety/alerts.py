"""The manager's safety inbox: acknowledge an alert, close it with a note, recall the lot an
alert names, and email the clinic's managers when surveillance raises a new alert.

Every change is a do_* function that validates, writes in one transaction and writes an audit
row, so the web pages and the API refuse and record exactly the same things. A refusal is a
ValidationError naming the field and the reason.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent, Membership, User, audit
from mesoclinic.courses.models import Session
from mesoclinic.courses.tracing import lot_exposures
from mesoclinic.formulary.models import Lot
from mesoclinic.safety.models import AdverseEvent, SafetyAlert

logger = logging.getLogger(__name__)

# How many of a practitioner's sessions with an adverse event an alert lists.
RECENT_SESSIONS = 50

LIVE = (SafetyAlert.Status.OPEN, SafetyAlert.Status.ACKNOWLEDGED)


def do_acknowledge_alert(alert: SafetyAlert, user: User, via: str = "web") -> SafetyAlert:
    """Someone has seen the alert and is looking into it; it stays in the inbox until closed."""
    with transaction.atomic():
        alert = SafetyAlert.objects.select_for_update().get(pk=alert.pk)
        if alert.status != SafetyAlert.Status.OPEN:
            raise ValidationError(
                {"status": f"only an open alert can be acknowledged; this one is {alert.status}."}
            )
        alert.status = SafetyAlert.Status.ACKNOWLEDGED
        alert.handled_by = user
        alert.handled_at = timezone.now()
        alert.save(update_fields=["status", "handled_by", "handled_at"])
        audit(
            clinic=alert.clinic,
            user=user,
            action=AuditEvent.Action.UPDATE,
            obj=alert,
            via=via,
            status=alert.status,
        )
    return alert


def do_close_alert(alert: SafetyAlert, user: User, note: str, via: str = "web") -> SafetyAlert:
    """Close the alert with what was found and done. The subject's CUSUM restarts from the
    sessions after this moment, and a lot's MaxSPRT ends (see safety/surveil.py)."""
    note = (note or "").replace("\x00", "").strip()
    if not note:
        raise ValidationError({"note": "say what was found and done before closing the alert."})
    with transaction.atomic():
        alert = SafetyAlert.objects.select_for_update().get(pk=alert.pk)
        if alert.status == SafetyAlert.Status.CLOSED:
            raise ValidationError({"status": "this alert is already closed."})
        alert.status = SafetyAlert.Status.CLOSED
        alert.handled_by = user
        alert.handled_at = timezone.now()
        alert.note = note
        alert.save(update_fields=["status", "handled_by", "handled_at", "note"])
        audit(
            clinic=alert.clinic,
            user=user,
            action=AuditEvent.Action.UPDATE,
            obj=alert,
            via=via,
            status=alert.status,
            note=note,
        )
    return alert


def do_recall_from_alert(
    alert: SafetyAlert, user: User, reason: str, via: str = "web"
) -> list[dict[str, Any]]:
    """Recall the lot the alert names and answer every patient who received it.

    The recall is the formulary's own (Lot.do_recall), so the session gate refuses the lot from
    now on; an open alert becomes acknowledged, since someone acted on it. The patient list is
    courses.tracing.lot_exposures, the same list the lot's page and the API give.
    """
    reason = (reason or "").replace("\x00", "").strip()
    if alert.subject != SafetyAlert.Subject.LOT or alert.lot is None:
        raise ValidationError({"alert": "this alert is about a practitioner, not a lot."})
    if not reason:
        raise ValidationError({"reason": "a recall needs a reason."})
    with transaction.atomic():
        lot = Lot.objects.select_for_update().get(pk=alert.lot.pk)
        if lot.recalled:
            raise ValidationError({"lot": f"lot {lot.lot_number} is already recalled."})
        lot.do_recall(reason, user)
        audit(
            clinic=alert.clinic,
            user=user,
            action=AuditEvent.Action.UPDATE,
            obj=lot,
            via=via,
            recalled=True,
            reason=reason,
            alert=alert.pk,
        )
        if alert.status == SafetyAlert.Status.OPEN:
            SafetyAlert.objects.filter(pk=alert.pk).update(
                status=SafetyAlert.Status.ACKNOWLEDGED, handled_by=user, handled_at=timezone.now()
            )
            audit(
                clinic=alert.clinic,
                user=user,
                action=AuditEvent.Action.UPDATE,
                obj=alert,
                via=via,
                status=SafetyAlert.Status.ACKNOWLEDGED,
                recalled_lot=lot.pk,
            )
        alert.refresh_from_db()
    return lot_exposures(lot)


def practitioner_sessions(alert: SafetyAlert) -> list[dict[str, Any]]:
    """The practitioner's most recent sessions with an adverse event, newest first, each with
    its patient and its events: what a manager reviews first."""
    if alert.practitioner_id is None:
        return []
    sessions = (
        Session.objects.filter(
            course__clinic=alert.clinic,
            practitioner_id=alert.practitioner_id,
            adverse_events__isnull=False,
        )
        .distinct()
        .select_related("course__patient")
        .order_by("-performed_at", "-pk")[:RECENT_SESSIONS]
    )
    found: dict[int, list[AdverseEvent]] = {s.pk: [] for s in sessions}
    for event in AdverseEvent.objects.filter(session_id__in=found).order_by("onset_at", "pk"):
        found[event.session_id].append(event)
    return [{"session": s, "patient": s.course.patient, "events": found[s.pk]} for s in sessions]


def practitioner_totals(alert: SafetyAlert) -> dict[str, int]:
    """All the practitioner's sessions in the clinic, and those with an adverse event."""
    mine = Session.objects.filter(
        course__clinic=alert.clinic, practitioner_id=alert.practitioner_id
    )
    return {
        "sessions": mine.count(),
        "adverse_sessions": mine.filter(adverse_events__isnull=False).distinct().count(),
    }


def email_managers(alert: SafetyAlert) -> int:
    """Email each manager of the clinic who has an address about a new alert; answer how many
    were sent. The email carries the numbers and a link, never a patient's name: the names are
    behind the sign-in. A mail server that is down is logged, not raised: the alert is in the
    inbox either way."""
    managers = User.objects.filter(
        memberships__clinic=alert.clinic,
        memberships__role=Membership.Role.MANAGER,
        is_active=True,
    ).exclude(email="")
    link = settings.SITE_URL + reverse("web:safety_alert", args=[alert.pk])
    subject = f"Safety alert at {alert.clinic.name}: {alert.get_subject_display().lower()}"
    body = (
        f"Surveillance raised a safety alert ({alert.get_method_display()}).\n\n"
        f"{alert.message}\n\nOpen it, acknowledge it and act on it:\n{link}\n"
    )
    messages = [
        EmailMessage(
            subject=subject,
            body=body,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[m.email],
            headers={"Auto-Submitted": "auto-generated"},
        )
        for m in managers.distinct().order_by("pk")
    ]
    if not messages:
        return 0
    try:
        return get_connection().send_messages(messages) or 0
    except Exception:
        logger.exception("could not email the managers about safety alert %s", alert.pk)
        return 0
