"""The signed links in a reminder: "Confirm" and "Ask to change".

A token names the appointment and the start time the email showed, signed with SECRET_KEY and a
salt per action, so a confirm link cannot be used to ask for a change or the other way round.
The link works until that start time; a visit moved since then is reported as moved, never
confirmed at its new time by a link that showed the old one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.urls import reverse

from mesoclinic.scheduling.models import Appointment

CONFIRM = "confirm"
CHANGE = "change"
ACTIONS = (CONFIRM, CHANGE)
# A backstop behind the start-time expiry: reminders go out at most about two days ahead.
MAX_AGE = dt.timedelta(days=7)


class BadLink(Exception):
    """The token was tampered with, is malformed, or is older than MAX_AGE."""

    def __init__(self, expired: bool = False):
        super().__init__("expired" if expired else "invalid")
        self.expired = expired


@dataclass(frozen=True)
class Link:
    appointment_id: int
    planned_for: dt.datetime


def _salt(action: str) -> str:
    if action not in ACTIONS:
        raise ValueError(f"unknown link action {action!r}")
    return f"mesoclinic.reminders.{action}"


def make_token(appointment: Appointment, action: str) -> str:
    payload = {"a": appointment.pk, "s": appointment.starts_at.astimezone(dt.UTC).isoformat()}
    return signing.dumps(payload, salt=_salt(action))


def read_token(token: str, action: str) -> Link:
    """The appointment and start time a token names, or BadLink."""
    try:
        payload = signing.loads(token, salt=_salt(action), max_age=MAX_AGE)
    except signing.SignatureExpired:
        raise BadLink(expired=True) from None
    except signing.BadSignature:
        raise BadLink() from None
    try:
        return Link(int(payload["a"]), dt.datetime.fromisoformat(payload["s"]))
    except (TypeError, KeyError, ValueError):
        raise BadLink() from None


def absolute_url(appointment: Appointment, action: str) -> str:
    path = reverse(f"reminders:{action}", args=[make_token(appointment, action)])
    return f"{settings.SITE_URL.rstrip('/')}{path}"
