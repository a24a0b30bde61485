"""iCalendar (RFC 5545) feeds, written by hand: the app needs one component (VEVENT) and a
handful of properties, and a feed must be exactly right for phones and calendar apps to
subscribe to it.

What matters here:
- lines end in CRLF and are folded at 75 octets, never inside a UTF-8 character (§3.1);
- TEXT values escape backslash, semicolon, comma and newlines (§3.3.11);
- times are written in UTC with a trailing Z, so no VTIMEZONE is needed (§3.3.5);
- every event has a UID that stays the same across downloads, and a DTSTAMP (§3.6.1).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

CRLF = "\r\n"
MAX_OCTETS = 75


@dataclass(frozen=True)
class Event:
    uid: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    summary: str
    description: str = ""
    location: str = ""
    status: str = "CONFIRMED"  # CONFIRMED, TENTATIVE or CANCELLED (§3.8.1.11)
    sequence: int = 0


def escape_text(value: str) -> str:
    """A TEXT value: backslash first, then ; and , and every kind of newline as \\n."""
    value = value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
    return value.replace("\r\n", "\\n").replace("\r", "\\n").replace("\n", "\\n")


def utc(moment: dt.datetime) -> str:
    """An aware datetime as an iCalendar UTC DATE-TIME: 20261201T150000Z."""
    if moment.tzinfo is None:
        raise ValueError("iCalendar times must be aware datetimes")
    return moment.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def fold(line: str) -> str:
    """Fold one content line into physical lines of at most 75 octets each, the leading
    space of a continuation line included, without splitting a UTF-8 character."""
    pieces: list[str] = []
    current: list[str] = []
    size, limit = 0, MAX_OCTETS
    for char in line:
        width = len(char.encode("utf-8"))
        if size + width > limit:
            pieces.append("".join(current))
            current, size, limit = [], 0, MAX_OCTETS - 1  # the leading space is one octet
        current.append(char)
        size += width
    pieces.append("".join(current))
    return (CRLF + " ").join(pieces)


def unfold(text: str) -> list[str]:
    """The logical lines of a feed: the reverse of `fold`, for reading a feed back."""
    return [line for line in text.replace(CRLF + " ", "").split(CRLF) if line]


def calendar(name: str, events: Iterable[Event], *, prodid: str, stamp: dt.datetime) -> str:
    """A whole VCALENDAR with one VEVENT per event. `stamp` is when the feed was made
    (DTSTAMP); `name` is what calendar apps show for the subscription."""
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{prodid}",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        f"X-WR-CALNAME:{escape_text(name)}",
    ]
    for event in events:
        lines += [
            "BEGIN:VEVENT",
            f"UID:{event.uid}",
            f"DTSTAMP:{utc(stamp)}",
            f"DTSTART:{utc(event.starts_at)}",
            f"DTEND:{utc(event.ends_at)}",
            f"SUMMARY:{escape_text(event.summary)}",
            f"STATUS:{event.status}",
            f"SEQUENCE:{event.sequence}",
        ]
        if event.description:
            lines.append(f"DESCRIPTION:{escape_text(event.description)}")
        if event.location:
            lines.append(f"LOCATION:{escape_text(event.location)}")
        lines.append("END:VEVENT")
    lines.append("END:VCALENDAR")
    return "".join(fold(line) + CRLF for line in lines)
