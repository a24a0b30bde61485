"""When a reminder is due, whether it should still go out, how long to wait before trying again,
and the words an email uses for a visit. Pure functions over plain values; nothing here touches
the database."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from mesoclinic.lib.formats import time_text
from mesoclinic.lib.outbox import backoff as backoff
from mesoclinic.protocols.schema import BeforeSession

# Plan an hour before the first reminder falls due, so a short pause of the worker loses nothing.
HORIZON = dt.timedelta(hours=49)
# A 48 h reminder first planned more than this after its time is not sent: the visit was booked
# (or moved) less than 48 h ahead, and the 24 h reminder alone is right.
PLAN_GRACE = dt.timedelta(hours=1)
# A worker that claimed a reminder and has not finished it after this long is taken to have
# died; another may claim the reminder again. Much longer than an SMTP timeout.
LEASE = dt.timedelta(minutes=15)
# Attempts at sending, then the reminder is marked failed. 2, 4, 8, 16 and 32 minutes apart
# (lib/outbox.backoff, shared with the infection watch).
MAX_ATTEMPTS = 6

# Appointment statuses and kinds, as strings, so this module needs no model.
ACTIVE = ("booked", "confirmed")
CANCELLED = "cancelled"
NO_SHOW = "no_show"
SESSION_KINDS = ("session", "maintenance")

# Why a reminder was not sent.
SKIP_CANCELLED = "cancelled"
SKIP_NO_SHOW = "no_show"
SKIP_MOVED = "moved"
SKIP_NO_EMAIL = "no_email"
SKIP_BOOKED_LATE = "booked_late"
SKIP_TOO_LATE = "too_late"
# Reasons that may stop holding (the visit is reopened or moved back, an email is added); a
# reminder skipped for one of them goes back to pending when it no longer holds.
REVIVABLE = (SKIP_CANCELLED, SKIP_MOVED, SKIP_NO_EMAIL)


@dataclass(frozen=True)
class Kind:
    key: str
    before: dt.timedelta  # due this long before the visit
    until: dt.timedelta  # not sent once less than this remains: the next reminder takes over


FIRST = Kind("48h", before=dt.timedelta(hours=48), until=dt.timedelta(hours=24))
LAST = Kind("24h", before=dt.timedelta(hours=24), until=dt.timedelta(0))
KINDS = {k.key: k for k in (FIRST, LAST)}


def due_at(kind: str, starts_at: dt.datetime) -> dt.datetime:
    return starts_at - KINDS[kind].before


def skip_reason(
    kind: str,
    planned_for: dt.datetime,
    *,
    status: str,
    starts_at: dt.datetime,
    email: str,
    now: dt.datetime,
) -> str | None:
    """Why the reminder planned for a visit at `planned_for` must not go out at `now`, or None
    when it should. The worker asks again right before sending, with the appointment as it is
    then, so a visit cancelled or moved after planning never gets a stale reminder."""
    if status == CANCELLED:
        return SKIP_CANCELLED
    if status == NO_SHOW:
        return SKIP_NO_SHOW
    if starts_at != planned_for:
        return SKIP_MOVED
    if status not in ACTIVE or starts_at - now <= KINDS[kind].until:
        return SKIP_TOO_LATE
    if not email.strip():
        return SKIP_NO_EMAIL
    return None


def planned_late(kind: str, starts_at: dt.datetime, now: dt.datetime) -> bool:
    """True for an earlier reminder first planned well after its time. Sending it now would put
    two emails a few hours apart; the last reminder is enough."""
    return kind != LAST.key and now - due_at(kind, starts_at) > PLAN_GRACE


def when_words(local: dt.datetime, clinic: Any = None) -> str:
    """ "Tuesday 1 December 2026 at 10:00 (EST)", in the clinic's own time and on its clock
    (10:00 am for a clinic that writes times on the 12-hour clock)."""
    at = time_text(local.time(), clinic)
    return f"{local:%A} {local.day} {local:%B %Y} at {at} ({local.tzname()})"


def short_when(local: dt.datetime, clinic: Any = None) -> str:
    """ "Tue 1 Dec at 10:00", for a subject line, on the clinic's clock."""
    return f"{local:%a} {local.day} {local:%b} at {time_text(local.time(), clinic)}"


def before_visit(
    rules: BeforeSession | None, kind: str, local_start: dt.datetime, clinic: Any = None
) -> list[str]:
    """What the patient should do before the visit, in the protocol's own words. The protocol's
    `before_session` applies to sessions (and maintenance sessions) only; the numbing cream's
    minutes become a time to arrive by, on the clinic's clock."""
    if rules is None or kind not in SESSION_KINDS:
        return []
    lines = [i.text for i in rules.instructions]
    minutes = rules.numbing_cream_minutes.v
    if minutes:
        arrive = local_start - dt.timedelta(minutes=minutes)
        lines.append(
            f"Arrive by {time_text(arrive.time(), clinic)}, {minutes} minutes before your "
            "appointment, for the numbing cream."
        )
    return lines
