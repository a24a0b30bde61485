"""A staff member's tablet PIN: set on their account page, stored hashed as a password is, and
asked for when they take a tablet back from a patient (web/kiosk.py).

Wrong tries are counted under a row lock, so tries made at once are all counted. At
KIOSK_PIN_ATTEMPTS wrong tries in a row the PIN is locked: it opens nothing until the staff
member signs in with their password, which unlocks it. Every wrong try, the lock and each
return are audited on the patient's chart."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.contrib.auth.signals import user_logged_in
from django.db import transaction
from django.dispatch import receiver
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent, Clinic, KioskPin, audit


class Outcome(enum.Enum):
    RIGHT = "right"
    WRONG = "wrong"
    LOCKED = "locked"


@dataclass(frozen=True)
class Check:
    outcome: Outcome
    tries_left: int = 0


def has_pin(user: Any) -> bool:
    return KioskPin.objects.filter(user=user).exists()


def is_locked(user: Any) -> bool:
    return KioskPin.objects.filter(user=user, locked_at__isnull=False).exists()


def do_set_pin(user: Any, pin: str, *, clinic: Clinic | None) -> KioskPin:
    """Set (or change) the PIN; a new PIN starts with no wrong tries and unlocked."""
    with transaction.atomic():
        found, _ = KioskPin.objects.update_or_create(
            user=user,
            defaults={
                "pin_hash": make_password(pin),
                "failures": 0,
                "locked_at": None,
                "set_at": timezone.now(),
            },
        )
        audit(
            clinic=clinic,
            user=user,
            action=AuditEvent.Action.UPDATE,
            obj=user,
            via="web",
            kiosk_pin="set",
        )
    return found


def do_check_pin(user: Any, pin: str, *, clinic: Clinic, patient_id: int) -> Check:
    """Check a PIN typed to take the tablet back from the patient `patient_id`."""
    limit = settings.KIOSK_PIN_ATTEMPTS
    with transaction.atomic():
        row = KioskPin.objects.select_for_update().filter(user=user).first()
        if row is None or row.locked_at is not None:
            return Check(Outcome.LOCKED)
        if check_password(pin, row.pin_hash):
            row.failures = 0
            row.save(update_fields=["failures"])
            audit(
                clinic=clinic,
                user=user,
                action=AuditEvent.Action.TAKEBACK,
                obj=row,
                patient_id=patient_id,
                via="kiosk",
            )
            return Check(Outcome.RIGHT)
        row.failures += 1
        if row.failures >= limit:
            row.locked_at = timezone.now()
        row.save(update_fields=["failures", "locked_at"])
        audit(
            clinic=clinic,
            user=user,
            action=(
                AuditEvent.Action.LOCKOUT
                if row.locked_at is not None
                else AuditEvent.Action.PIN_FAILED
            ),
            obj=row,
            patient_id=patient_id,
            via="kiosk",
            failures=row.failures,
        )
        if row.locked_at is not None:
            return Check(Outcome.LOCKED)
        return Check(Outcome.WRONG, tries_left=limit - row.failures)


@receiver(user_logged_in, dispatch_uid="kiosk-pin-unlock")
def unlock_on_sign_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """Signing in (with the password) unlocks a locked PIN."""
    KioskPin.objects.filter(user=user).exclude(failures=0, locked_at=None).update(
        failures=0, locked_at=None
    )
