"""Pure rules for text messages and invitations: quiet hours, what a patient's reply means, and
the only words a text message may say. Nothing here touches the database.

A text message carries no health details: not the kind of visit, not a product, not a side
effect. Every text is built by one of the functions in TEXTS from the clinic's name, a day and
time, a phone number and a link; tests/test_notify.py renders each and scans the output.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable

# A claimed text not finished after this long is taken to belong to a worker that died.
LEASE = dt.timedelta(minutes=15)
MAX_ATTEMPTS = 6
# Plan visit texts this far ahead: the text is due 24 h before the visit, planned an hour early.
HORIZON = dt.timedelta(hours=25)
TEXT_BEFORE = dt.timedelta(hours=24)

# Replies the provider and carriers treat as opting out or back in (Twilio's documented
# default keywords). Matched on the whole message, case-insensitively.
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT"})
START_WORDS = frozenset({"START", "YES", "UNSTOP", "OPTIN"})

# Why a text or an email was not sent.
SKIP_NO_CONSENT = "no_consent"
SKIP_NO_PHONE = "no_phone"
SKIP_NO_EMAIL = "no_email"
SKIP_VISIT_CHANGED = "visit_changed"
SKIP_TOO_LATE = "too_late"
SKIP_NOT_CONFIGURED = "not_configured"


def keyword(body: str) -> str | None:
    """ "stop" or "start" when the reply is one of the opt-out or opt-in words, else None."""
    word = body.strip().strip(".!").upper()
    if word in STOP_WORDS:
        return "stop"
    if word in START_WORDS:
        return "start"
    return None


def in_quiet_hours(local: dt.time, quiet_from: dt.time, quiet_until: dt.time) -> bool:
    """Whether a local clock time falls in the quiet hours [quiet_from, quiet_until). Equal
    bounds mean no quiet hours at all."""
    if quiet_from == quiet_until:
        return False
    if quiet_from < quiet_until:
        return quiet_from <= local < quiet_until
    return local >= quiet_from or local < quiet_until


def after_quiet_hours(
    moment: dt.datetime, tz: zoneinfo.ZoneInfo, quiet_from: dt.time, quiet_until: dt.time
) -> dt.datetime:
    """`moment` itself when it is outside the quiet hours, else the moment they end, in the
    clinic's zone: the same evening's quiet ends the next morning. A quiet end that falls in a
    daylight-saving gap is taken at the first valid instant after it (zoneinfo's fold rules)."""
    local = moment.astimezone(tz)
    if not in_quiet_hours(local.timetz().replace(tzinfo=None), quiet_from, quiet_until):
        return moment
    day = local.date()
    if quiet_from > quiet_until and local.time() >= quiet_from:
        day += dt.timedelta(days=1)
    end = dt.datetime.combine(day, quiet_until, tzinfo=tz)
    # Normalise through UTC so a wall time in a gap becomes a real instant.
    return end.astimezone(dt.UTC)


# The fixed texts. Each takes only what it needs; none is given a course, a product or a note.


def visit_text(clinic: str, when: str, link: str) -> str:
    return (
        f"{clinic}: a reminder of your visit on {when}. "
        f"Confirm or ask to change it: {link} Reply STOP to opt out."
    )


def notice_text(clinic: str, phone: str, link: str) -> str:
    call = f" or call us on {phone}" if phone else ""
    return f"{clinic} has a message for you. Please read it at {link}{call}. Reply STOP to opt out."


TEXTS: dict[str, Callable[..., str]] = {"visit": visit_text, "notice": notice_text}
