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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from mesoclinic.courses.logic import next_window

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


ANY_TIME = Preferences()


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


@dataclass(frozen=True)
class Anchor:
    """The last visit of the course already held or booked: the series continues after it."""

    kind: str
    start: dt.datetime


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


def starts_in(
    free: Sequence[Interval], window: Interval, duration: dt.timedelta
) -> list[dt.datetime]:
    """Every start on the 15-minute grid inside `window` where `duration` fits in free time
    (`free` in time order)."""
    out = []
    for gap in free:
        if gap.end <= window.start:
            continue
        if gap.start > window.end:
            break
        start = _ceil_to_grid(max(gap.start, window.start))
        while start + duration <= gap.end and start <= window.end:
            out.append(start)
            start += GRID
    return out


def preferred(start: dt.datetime, prefs: Preferences, tz: zoneinfo.ZoneInfo) -> bool:
    if prefs == ANY_TIME:
        return True  # every start is; and a course has hundreds of candidate starts
    local = start.astimezone(tz)
    if prefs.weekdays and local.weekday() not in prefs.weekdays:
        return False
    if prefs.earliest_time and local.time() < prefs.earliest_time:
        return False
    return not (prefs.latest_time and local.time() > prefs.latest_time)


def without(free: Sequence[Interval], busy: Sequence[Interval]) -> list[Interval]:
    """The free time left once every busy interval is taken, in one pass over both sorted
    lists (a practitioner's months of bookings would make `take` one by one quadratic)."""
    out: list[Interval] = []
    busy = sorted(busy, key=lambda b: b.start)
    i = 0
    for gap in sorted(free, key=lambda g: g.start):
        start = gap.start
        while i < len(busy) and busy[i].end <= start:
            i += 1
        j = i
        while j < len(busy) and busy[j].start < gap.end:
            if busy[j].start > start:
                out.append(Interval(start, busy[j].start))
            start = max(start, busy[j].end)
            j += 1
        if start < gap.end:
            out.append(Interval(start, gap.end))
    return out


def take(free: list[Interval], start: dt.datetime, end: dt.datetime) -> list[Interval]:
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


def place(
    spec: VisitSpec,
    window: Interval,
    target: dt.datetime,
    practitioners: Sequence[int],
    free_of: Callable[[int], list[Interval]],
    prefs: Preferences,
    tz: zoneinfo.ZoneInfo,
) -> Placed | None:
    """The best start for one visit: the first practitioner who has room (in the order
    given), then the patient's preferred days and times, then closest to the target."""
    for who in practitioners:
        starts = starts_in(free_of(who), window, spec.duration)
        if starts:
            best = min(starts, key=lambda s: (not preferred(s, prefs, tz), abs(s - target), s))
            return Placed(spec, who, best)
    return None


def _words(moment: dt.datetime, tz: zoneinfo.ZoneInfo) -> str:
    local = moment.astimezone(tz)
    return f"{local:%a} {local.day} {local:%b %H:%M}"


def window_after(
    previous: Anchor, rules: Rules, tz: zoneinfo.ZoneInfo
) -> tuple[Interval, dt.datetime]:
    """Where the session after `previous` may go, and when it is due: at least the test wait
    after an allergy test; the cadence within the tolerance after a session, every edge at the
    same wall-clock time, as the session gate measures it (courses.logic.next_window)."""
    start = previous.start.astimezone(dt.UTC)
    if previous.kind != "session":
        earliest = start + rules.test_wait
        return Interval(earliest, earliest + rules.first_within), earliest
    # The same window the session gate reads (courses.logic), in UTC.
    w = next_window(start, rules.cadence.days, rules.tolerance.days, tz)
    return Interval(w.earliest.astimezone(dt.UTC), w.latest.astimezone(dt.UTC)), w.due.astimezone(
        dt.UTC
    )


def propose(
    visits: Sequence[VisitSpec],
    *,
    not_before: dt.datetime,
    rules: Rules,
    practitioners: Sequence[int],
    free: Mapping[int, Sequence[Interval]],
    tz: zoneinfo.ZoneInfo,
    prefs: Preferences = ANY_TIME,
    after: Anchor | None = None,
) -> Proposal:
    """Place `visits` in order: the first (the allergy test visit, or the next session) from
    `not_before`, or in its window after `after`, the course's last visit already held or
    booked; a session after a test at least `rules.test_wait` later; each session after a
    session at `rules.cadence`, within `rules.tolerance`. No visit goes before `not_before`;
    a window that has passed entirely (an overdue course) opens again from `not_before`.

    `practitioners` is in order of preference, the patient's own practitioner first; a visit
    goes to the next one only when the first has no room in its window. Each practitioner's
    `free` intervals must already leave out what is booked; `free` may compute them lazily,
    as it is read only for the practitioners it needs. A visit that cannot be placed is
    named in `problems`, and the visits after it are not placed: the caller shows the
    conflict instead of booking part of a course."""
    # Everything in UTC inside: Python subtracts two times of the same zone by wall clock,
    # which is an hour off across a daylight-saving change.
    taken: dict[int, list[Interval]] = {}

    def free_of(who: int) -> list[Interval]:
        if who not in taken:
            gaps = free.get(who, [])
            taken[who] = sorted((_in_utc(g) for g in gaps), key=lambda g: g.start)
        return taken[who]

    not_before = not_before.astimezone(dt.UTC)
    proposal = Proposal()
    previous = after
    for n, spec in enumerate(visits, start=1):
        if previous is None:
            window, target = Interval(not_before, not_before + rules.first_within), not_before
        else:
            window, target = window_after(previous, rules, tz)
            if window.end < not_before:
                window, target = Interval(not_before, not_before + rules.first_within), not_before
            elif window.start < not_before:
                window, target = Interval(not_before, window.end), max(target, not_before)
        placed = place(spec, window, target, practitioners, free_of, prefs, tz)
        if placed is None:
            proposal.problems.append(
                f"Visit {n} ({spec.kind.replace('_', ' ')}) has no free time between "
                f"{_words(window.start, tz)} and {_words(window.end, tz)}."
            )
            return proposal
        proposal.visits.append(placed)
        taken[placed.practitioner] = take(free_of(placed.practitioner), placed.start, placed.end)
        previous = Anchor(placed.spec.kind, placed.start)
    return proposal
