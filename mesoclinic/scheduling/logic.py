"""Pure calendar arithmetic: how long a visit lasts, and whether a stretch of a day lies inside
a set of hours. Nothing here touches the database."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from functools import lru_cache

from mesoclinic.protocols.loader import shipped_protocols
from mesoclinic.protocols.schema import Protocol, Visits

# A stretch of one local day, [start, end).
Span = tuple[dt.time, dt.time]

# The appointment kinds (Appointment.Kind's values), kept as strings so this module needs no
# model.
ALLERGY_TEST = "allergy_test"
TEST_READING = "test_reading"
SESSION = "session"
REVIEW = "review"
MAINTENANCE = "maintenance"
CONSULTATION = "consultation"
# The kinds whose length a protocol gives; any other visit takes the clinic's own length.
PROTOCOL_KINDS = frozenset({ALLERGY_TEST, TEST_READING, SESSION, REVIEW, MAINTENANCE})


@lru_cache(maxsize=32)
def _shipped_visits(key: str) -> Visits | None:
    protocol = shipped_protocols().get(key)
    return protocol.visits if protocol is not None else None


def visits_of(spec: Protocol) -> Visits:
    """The protocol's visit lengths; a clinic copy saved before they existed takes those of
    the shipped file with the same key (package data, read once)."""
    visits = spec.visits or _shipped_visits(spec.key)
    if visits is None:
        raise ValueError(f"The protocol {spec.key!r} gives no visit lengths; add [visits].")
    return visits


def duration(kind: str, spec: Protocol, n_areas: int) -> dt.timedelta:
    """How long a visit of `kind` is booked for under the protocol. A session or a maintenance
    session grows with the number of areas treated (at least one)."""
    visits = visits_of(spec)
    if kind == ALLERGY_TEST:
        minutes = visits.allergy_test_minutes.v
    elif kind == TEST_READING:
        minutes = visits.test_reading_minutes.v
    elif kind in (SESSION, MAINTENANCE):
        minutes = visits.session_minutes.v + visits.extra_area_minutes.v * (max(n_areas, 1) - 1)
    elif kind == REVIEW:
        minutes = visits.review_minutes.v
    else:
        raise ValueError(f"unknown appointment kind {kind!r}")
    return dt.timedelta(minutes=minutes)


def merge(spans: Iterable[Span]) -> list[Span]:
    """Sorted spans with overlapping or touching ones joined: 9–12 and 12–17 make 9–17."""
    out: list[Span] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def subtract(spans: Iterable[Span], holes: Iterable[Span]) -> list[Span]:
    """The parts of `spans` outside every hole."""
    out = merge(spans)
    for h_start, h_end in merge(holes):
        kept: list[Span] = []
        for start, end in out:
            if h_end <= start or end <= h_start:
                kept.append((start, end))
                continue
            if start < h_start:
                kept.append((start, h_start))
            if h_end < end:
                kept.append((h_end, end))
        out = kept
    return out


def covers(spans: Iterable[Span], start: dt.time, end: dt.time) -> bool:
    """Whether [start, end) lies inside one of the (merged) spans."""
    return any(s <= start and end <= e for s, e in merge(spans))


def working_spans(
    template: Iterable[Span], extra: Iterable[Span], time_off: Iterable[Span], whole_day_off: bool
) -> list[Span]:
    """A practitioner's hours on one date: the weekly template plus extra hours, minus time
    off. A whole day off removes everything, extra hours included."""
    if whole_day_off:
        return []
    return subtract([*template, *extra], time_off)


def clock(moment: dt.datetime) -> str:
    return f"{moment:%H:%M}"


def day_words(moment: dt.datetime) -> str:
    """ "Tue 1 Dec", the way the front desk says a date."""
    return f"{moment:%a} {moment.day} {moment:%b}"


def spans_words(spans: list[Span]) -> str:
    return ", ".join(f"{s:%H:%M}–{e:%H:%M}" for s, e in spans) or "none"
