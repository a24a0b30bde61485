"""Proposing a whole course as a series of visits: a pure function over free time.

The allergy test visit comes first; session 1 at least the protocol's wait later; each
later session at the course's cadence, inside its tolerance window; with the same
practitioner where possible, and on the patient's preferred days and times where possible.
Nothing here touches the database: the caller passes each practitioner's free time (working
hours minus what is booked) and books what comes back in one transaction.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass, field

GRID = dt.timedelta(minutes=15)


@dataclass(frozen=True)
class Interval:
    start: dt.datetime
    end: dt.datetime


@dataclass(frozen=True)
class VisitSpec:
    kind: str  # "allergy_test", "session", ...
    duration: dt.timedelta


@dataclass(frozen=True)
class Preferences:
    weekdays: frozenset[int] = frozenset()  # Monday is 0; empty means any day
    earliest_time: dt.time | None = None  # the patient's preferred part of the day
    latest_time: dt.time | None = None


@dataclass(frozen=True)
class Rules:
    cadence: dt.timedelta  # between sessions
    tolerance: dt.timedelta  # a session may fall this much earlier or later
    test_wait: dt.timedelta  # from the allergy test to session 1 (at least)
    first_within: dt.timedelta = dt.timedelta(days=14)  # how far to look for session 1


@dataclass(frozen=True)
class Placed:
    spec: VisitSpec
    practitioner: int
    start: dt.datetime

    @property
    def end(self) -> dt.datetime:
        return self.start + self.spec.duration


@dataclass
class Proposal:
    visits: list[Placed] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.problems


def _in_utc(gap: Interval) -> Interval:
    return Interval(gap.start.astimezone(dt.UTC), gap.end.astimezone(dt.UTC))


def _ceil_to_grid(moment: dt.datetime) -> dt.datetime:
    floor = moment.replace(minute=moment.minute - moment.minute % 15, second=0, microsecond=0)
    return floor if floor == moment else floor + GRID


def _starts(
    free: Sequence[Interval], window: Interval, duration: dt.timedelta
) -> list[dt.datetime]:
    """Every start on the 15-minute grid inside `window` where `duration` fits in free time."""
    out = []
    for gap in free:
        start = _ceil_to_grid(max(gap.start, window.start))
        while start + duration <= gap.end and start <= window.end:
            out.append(start)
            start += GRID
    return out


def _preferred(start: dt.datetime, prefs: Preferences, tz: zoneinfo.ZoneInfo) -> bool:
    local = start.astimezone(tz)
    if prefs.weekdays and local.weekday() not in prefs.weekdays:
        return False
    if prefs.earliest_time and local.time() < prefs.earliest_time:
        return False
    return not (prefs.latest_time and local.time() > prefs.latest_time)


def _same_clock_later(
    moment: dt.datetime, later: dt.timedelta, tz: zoneinfo.ZoneInfo
) -> dt.datetime:
    """`later` after `moment` at the same wall-clock time, across daylight-saving changes."""
    local = moment.astimezone(tz).replace(tzinfo=None) + later
    return local.replace(tzinfo=tz).astimezone(dt.UTC)


def _take(free: list[Interval], start: dt.datetime, end: dt.datetime) -> list[Interval]:
    """The free time left once [start, end) is taken."""
    out = []
    for gap in free:
        if gap.end <= start or gap.start >= end:
            out.append(gap)
            continue
        if gap.start < start:
            out.append(Interval(gap.start, start))
        if end < gap.end:
            out.append(Interval(end, gap.end))
    return out


def _place(
    spec: VisitSpec,
    window: Interval,
    target: dt.datetime,
    practitioners: Sequence[int],
    free: dict[int, list[Interval]],
    prefs: Preferences,
    tz: zoneinfo.ZoneInfo,
) -> Placed | None:
    """The best start for one visit: the first practitioner who has room (in the order
    given), then the patient's preferred days and times, then closest to the target."""
    for who in practitioners:
        starts = _starts(free.get(who, []), window, spec.duration)
        if starts:
            best = min(starts, key=lambda s: (not _preferred(s, prefs, tz), abs(s - target), s))
            return Placed(spec, who, best)
    return None


def _words(moment: dt.datetime, tz: zoneinfo.ZoneInfo) -> str:
    local = moment.astimezone(tz)
    return f"{local:%a} {local.day} {local:%b %H:%M}"


def propose(
    visits: Sequence[VisitSpec],
    *,
    not_before: dt.datetime,
    rules: Rules,
    practitioners: Sequence[int],
    free: dict[int, list[Interval]],
    tz: zoneinfo.ZoneInfo,
    prefs: Preferences = Preferences(),
) -> Proposal:
    """Place `visits` in order: the first (the allergy test visit, or session 1 when the test
    is done) from `not_before`; a session after a test at least `rules.test_wait` later;
    each session after a session at `rules.cadence`, within `rules.tolerance`.

    `practitioners` is in order of preference, the patient's own practitioner first; a visit
    goes to the next one only when the first has no room in its window. Each practitioner's
    `free` intervals must already leave out what is booked. A visit that cannot be placed is
    named in `problems`, and the visits after it are not placed: the caller shows the
    conflict instead of booking part of a course."""
    # Everything in UTC inside: Python subtracts two times of the same zone by wall clock,
    # which is an hour off across a daylight-saving change.
    free = {
        who: sorted((_in_utc(g) for g in gaps), key=lambda g: g.start) for who, gaps in free.items()
    }
    not_before = not_before.astimezone(dt.UTC)
    proposal = Proposal()
    previous: Placed | None = None
    for n, spec in enumerate(visits, start=1):
        if previous is None:
            window = Interval(not_before, not_before + rules.first_within)
            target = not_before
        elif previous.spec.kind != "session":
            earliest = previous.start + rules.test_wait
            window = Interval(earliest, earliest + rules.first_within)
            target = earliest
        else:
            target = _same_clock_later(previous.start, rules.cadence, tz)
            window = Interval(target - rules.tolerance, target + rules.tolerance)
        placed = _place(spec, window, target, practitioners, free, prefs, tz)
        if placed is None:
            proposal.problems.append(
                f"Visit {n} ({spec.kind.replace('_', ' ')}) has no free time between "
                f"{_words(window.start, tz)} and {_words(window.end, tz)}."
            )
            return proposal
        proposal.visits.append(placed)
        free[placed.practitioner] = _take(free[placed.practitioner], placed.start, placed.end)
        previous = placed
    return proposal
