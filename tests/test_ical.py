"""The iCalendar writer: folding, escaping, UTC times and stable event ids (RFC 5545)."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from mesoclinic.lib.ical import CRLF, Event, calendar, escape_text, fold, unfold, utc

NY = zoneinfo.ZoneInfo("America/New_York")
STAMP = dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.UTC)


def event(**changes: object) -> Event:
    fields: dict[str, object] = {
        "uid": "appointment-7@mesoclinic",
        "starts_at": dt.datetime(2026, 12, 1, 10, 0, tzinfo=NY),
        "ends_at": dt.datetime(2026, 12, 1, 10, 45, tzinfo=NY),
        "summary": "Session 3, thighs",
        **changes,
    }
    return Event(**fields)  # type: ignore[arg-type]


def test_text_escapes_backslash_semicolon_comma_and_newlines() -> None:
    assert escape_text("a\\b;c,d\ne\r\nf") == "a\\\\b\\;c\\,d\\ne\\nf"


def test_times_are_written_in_utc() -> None:
    # 10:00 in New York on 1 December is 15:00 UTC (EST, UTC-5).
    assert utc(dt.datetime(2026, 12, 1, 10, 0, tzinfo=NY)) == "20261201T150000Z"
    # In July it is EDT, UTC-4.
    assert utc(dt.datetime(2026, 7, 1, 10, 0, tzinfo=NY)) == "20260701T140000Z"
    with pytest.raises(ValueError):
        utc(dt.datetime(2026, 12, 1, 10, 0))


@pytest.mark.parametrize("text", ["x" * 200, "é" * 120, "Ana López — séance " * 12, "short"])
def test_folded_lines_fit_75_octets_and_unfold_to_the_original(text: str) -> None:
    folded = fold(f"DESCRIPTION:{text}")
    physical = folded.split(CRLF)
    assert all(len(line.encode("utf-8")) <= 75 for line in physical)
    assert all(line.startswith(" ") for line in physical[1:])
    # No UTF-8 character is cut: every physical line decodes on its own.
    assert all(line.encode("utf-8").decode("utf-8") == line for line in physical)
    assert unfold(folded + CRLF) == [f"DESCRIPTION:{text}"]


def test_a_feed_has_the_required_properties_and_crlf_lines() -> None:
    feed = calendar(
        "Dr Okafor, mesoclinic",
        [event(), event(uid="appointment-8@mesoclinic", status="CANCELLED", sequence=1)],
        prodid="-//mesoclinic//Calendar//EN",
        stamp=STAMP,
    )
    assert feed.endswith(CRLF) and "\n" not in feed.replace(CRLF, "")
    lines = unfold(feed)
    assert lines[:3] == ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//mesoclinic//Calendar//EN"]
    assert lines[-1] == "END:VCALENDAR"
    assert "X-WR-CALNAME:Dr Okafor\\, mesoclinic" in lines
    assert lines.count("BEGIN:VEVENT") == 2 == lines.count("END:VEVENT")
    assert "UID:appointment-7@mesoclinic" in lines
    assert "DTSTART:20261201T150000Z" in lines and "DTEND:20261201T154500Z" in lines
    assert lines.count("DTSTAMP:20261121T120000Z") == 2
    assert "STATUS:CANCELLED" in lines and "SEQUENCE:1" in lines


def test_optional_fields_appear_only_when_given() -> None:
    bare = unfold(calendar("x", [event()], prodid="p", stamp=STAMP))
    assert not any(line.startswith(("DESCRIPTION", "LOCATION")) for line in bare)
    full = unfold(
        calendar(
            "x",
            [event(description="Arrive 30 min early;\nno coffee", location="Room 2, 3rd floor")],
            prodid="p",
            stamp=STAMP,
        )
    )
    assert "DESCRIPTION:Arrive 30 min early\\;\\nno coffee" in full
    assert "LOCATION:Room 2\\, 3rd floor" in full
