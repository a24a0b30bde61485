"""The calendar optimiser on a synthetic clinic of 1,000 open courses, in memory.

1. Build a clinic in the pure model (no database): PRACTITIONERS practitioners on realistic
   working weeks (four or five days, a lunch break, a week off for some, a clinic holiday),
   rooms of their own or shared by two, and COURSES open courses at a weekly or fortnightly
   cadence, each with three to six sessions left (one in ten starting with its allergy test).
   The front desk booked each visit on a random day inside its window at a random free time,
   which leaves the gaps and the waits there are to improve. One visit in six is confirmed (so
   fixed), some sessions are given by a colleague, and the clocks go forward in week two.
2. Run `optimise()` with SECONDS for CP-SAT on 2 workers, and time greedy and CP-SAT.
3. Run it again without the hint, with the same time, to see what the hint is worth.
4. Print patient wait and idle time for the calendar as booked, greedy and CP-SAT, the ratios
   to greedy, and the times.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import random
import time
import zoneinfo
from collections import defaultdict

from mesoclinic.scheduling import optimise as opt

COURSES = 1000
PRACTITIONERS = 40
SECONDS = 45.0
TZ = zoneinfo.ZoneInfo("America/New_York")
# A Monday 07:00; the clocks go forward on Sunday 8 March 2026, in the second week.
NOW = dt.datetime(2026, 3, 2, 7, 0, tzinfo=TZ)
WEEKS = 8
HOLIDAY = dt.date(2026, 4, 3)


def _hours(clock: opt.Clock, rng: random.Random) -> tuple[tuple[int, int], ...]:
    """A working week repeated: four or five days of Monday to Saturday, two blocks a day
    with an hour for lunch, and for one practitioner in eight a week off."""
    days = sorted(rng.sample(range(6), rng.choice((4, 5, 5))))
    first = rng.choice((8, 9, 9, 10))
    off_week = rng.randrange(2, WEEKS) if rng.random() < 0.125 else None
    out = []
    for n in range(WEEKS * 7 + 14):
        day = NOW.date() + dt.timedelta(days=n)
        if day.weekday() not in days or day == HOLIDAY or (n // 7) == off_week:
            continue
        for begin, end in ((first, first + 4), (first + 5, first + 9)):
            start = dt.datetime.combine(day, dt.time(begin), tzinfo=TZ)
            stop = dt.datetime.combine(day, dt.time(end), tzinfo=TZ)
            out.append((clock.minute(start), clock.minute(stop)))
    return tuple(out)


class _Desk:
    """Books the way a busy front desk does: a random free slot on a random day in the window."""

    def __init__(self, hours: dict[int, tuple[tuple[int, int], ...]], rng: random.Random):
        self.hours = hours
        self.rng = rng
        self.busy: dict[tuple[str, int], list[tuple[int, int]]] = defaultdict(list)

    def free(self, keys: list[tuple[str, int]], start: int, duration: int) -> bool:
        return all(start + duration <= s or e <= start for key in keys for s, e in self.busy[key])

    def book(self, keys: list[tuple[str, int]], start: int, duration: int) -> None:
        for key in keys:
            self.busy[key].append((start, start + duration))

    def slot(
        self, who: int, keys: list[tuple[str, int]], first: int, last: int, duration: int
    ) -> int | None:
        """A random free start on the grid between `first` and `last`."""
        options = [
            s
            for begin, end in self.hours[who]
            if end > first and begin <= last
            for s in range(opt._ceil_grid(max(begin, first)), min(end - duration, last) + 1, 15)
        ]
        self.rng.shuffle(options)
        for start in options[:60]:
            if self.free(keys, start, duration):
                return start
        return None


def build(
    courses: int = COURSES, practitioners: int = PRACTITIONERS, seed: int = 7
) -> opt.Instance:
    """The synthetic clinic, with the calendar as the front desk booked it."""
    rng = random.Random(seed)
    clock = opt.Clock.starting(NOW, TZ, WEEKS * 7 + 21, back=30)
    release = clock.minute(NOW + dt.timedelta(hours=24))
    hours = {p: _hours(clock, rng) for p in range(1, practitioners + 1)}
    rooms = {p: p for p in hours}
    for a in range(1, practitioners // 5 + 1):  # Every fifth practitioner shares a room.
        rooms[a * 5] = a * 5 - 1
    clinic = _Clinic(clock, release, hours, rooms, rng)
    for course in range(1, courses + 1):
        clinic.book_course(course)
    return opt.Instance(
        clock=clock,
        visits=tuple(clinic.visits),
        courses=clinic.rules,
        hours=hours,
        release=release,
    )


class _Clinic:
    """The visits booked so far."""

    def __init__(
        self,
        clock: opt.Clock,
        release: int,
        hours: dict[int, tuple[tuple[int, int], ...]],
        rooms: dict[int, int],
        rng: random.Random,
    ):
        self.clock, self.release, self.rooms, self.rng = clock, release, rooms, rng
        self.practitioners = len(hours)
        self.desk = _Desk(hours, rng)
        self.visits: list[opt.Visit] = []
        self.rules: dict[int, opt.CourseRules] = {}

    def keys(self, course: int, by: int) -> list[tuple[str, int]]:
        return [("practitioner", by), ("room", self.rooms[by]), ("patient", course)]

    def add(self, course: int, kind: str, start: int, length: int, by: int) -> opt.Visit:
        """A visit in the calendar: fixed when it is before the release time, and one in six
        confirmed."""
        movable = start >= self.release and self.rng.random() >= 1 / 6
        v = opt.Visit(
            len(self.visits) + 1, kind, by, start, length, course, course, self.rooms[by], movable
        )
        self.desk.book(self.keys(course, by), start, length)
        self.visits.append(v)
        return v

    def book_course(self, course: int) -> None:
        """Three to six sessions left, each booked on a random day of its window at a random
        free time; one course in ten starts with its allergy test."""
        rng, clock = self.rng, self.clock
        who = rng.randrange(1, self.practitioners + 1)
        cadence = 7 if rng.random() < 0.7 else 14
        self.rules[course] = opt.CourseRules(cadence, 2, 24)
        duration = rng.choice((30, 30, 40, 50))
        if rng.random() < 0.1:
            day = self.release + rng.randrange(0, 10) * opt.DAY
            start = self.desk.slot(who, self.keys(course, who), day, day + 3 * opt.DAY, 20)
            if start is None:
                return
            test = self.add(course, opt.ALLERGY_TEST, start, 20, who)
            first, last = test.start + 24 * 60, test.start + 5 * opt.DAY
        else:
            # The last session was given some time in the past cadence.
            done = clock.minute(NOW) - rng.randrange(1, cadence) * opt.DAY + rng.randrange(0, 480)
            previous = opt.Visit(
                len(self.visits) + 1, opt.SESSION, who, done, duration, course, course, None, False
            )
            self.visits.append(previous)
            first, last = self._window(previous.start, cadence)
        for _ in range(rng.randint(3, 6)):
            by = who if rng.random() > 0.05 else rng.randrange(1, self.practitioners + 1)
            keys = self.keys(course, by)
            day = rng.randrange(first, last + 1, opt.DAY) if last > first else first
            start = self.desk.slot(by, keys, max(day, first), min(day + opt.DAY, last), duration)
            if start is None:
                start = self.desk.slot(by, keys, first, last, duration)
            if start is None:
                return
            session = self.add(course, opt.SESSION, start, duration, by)
            first, last = self._window(session.start, cadence)

    def _window(self, start: int, cadence: int) -> tuple[int, int]:
        """Cadence ± 2 days on the wall clock."""
        wall = self.clock.wall(start)
        return (
            self.clock.from_wall(wall + (cadence - 2) * opt.DAY),
            self.clock.from_wall(wall + (cadence + 2) * opt.DAY),
        )


def _hours_text(minutes: int) -> str:
    return f"{minutes / 60:,.0f} h"


def _line(name: str, s: opt.Score, greedy: opt.Score, w: opt.Weights, seconds: float | None) -> str:
    took = f"{seconds:6.1f} s" if seconds is not None else " " * 8
    return (
        f"  {name:18s} wait {_hours_text(s.wait):>9s} ({s.wait / greedy.wait:4.2f})  "
        f"idle {_hours_text(s.idle):>8s} ({s.idle / greedy.idle:4.2f})  "
        f"moves {s.moves:5d}  objective {s.total(w):>10,d} ({s.total(w) / greedy.total(w):4.2f})"
        f"  {took}"
    )


def run(
    courses: int = COURSES,
    practitioners: int = PRACTITIONERS,
    seconds: float = SECONDS,
    without_hint: bool = True,
) -> dict[str, float]:
    """Build, optimise (with and without the hint), print and return the figures."""
    started = time.perf_counter()
    instance = build(courses, practitioners)
    build_s = time.perf_counter() - started
    movable = sum(v.movable for v in instance.visits)
    started = time.perf_counter()
    hinted = opt.optimise(instance, seconds=seconds, workers=2)
    total_s = time.perf_counter() - started
    assert not opt.check(instance, hinted.plan), "the optimised plan breaks a rule"
    w = instance.weights
    figures = {
        "total_s": total_s,
        "greedy_s": hinted.greedy_seconds,
        "cpsat_s": hinted.cpsat_seconds,
        "wait_ratio": hinted.final.wait / hinted.greedy.wait,
        "idle_ratio": hinted.final.idle / hinted.greedy.idle,
        "objective_ratio": hinted.final.total(w) / hinted.greedy.total(w),
    }
    print(
        f"optimiser benchmark · {platform.machine()} · {os.cpu_count()} cores · "
        f"Python {platform.python_version()} · {dt.date.today().isoformat()}"
    )
    print(
        f"data: {courses} open courses, {practitioners} practitioners, {len(instance.visits)} "
        f"visits of which {movable} movable (built in {build_s:.1f} s); "
        f"{hinted.components} component(s), {hinted.blocks} CP-SAT solves "
        f"({hinted.optimal} optimal, {hinted.improved} improved, {hinted.unsolved} unsolved)"
    )
    print("  (ratios to greedy in brackets)")
    print(_line("as booked", hinted.current, hinted.greedy, w, None))
    print(_line("greedy first fit", hinted.greedy, hinted.greedy, w, hinted.greedy_seconds))
    print(_line("CP-SAT, hinted", hinted.final, hinted.greedy, w, hinted.cpsat_seconds))
    if without_hint:
        bare = opt.optimise(instance, seconds=seconds, workers=2, hint=False)
        assert not opt.check(instance, bare.plan)
        print(_line("CP-SAT, no hint", bare.final, hinted.greedy, w, bare.cpsat_seconds))
        print(
            f"  without the hint: {bare.unsolved} of {bare.blocks} solves found no plan in "
            f"their time, {bare.improved} improved on greedy"
        )
        figures["no_hint_objective_ratio"] = bare.final.total(w) / hinted.greedy.total(w)
        figures["no_hint_unsolved"] = bare.unsolved
    print(
        f"  objective = wait × {w.wait} + idle × {w.idle} + moves × {w.move} (minutes); "
        f"optimise() with the hint took {total_s:.1f} s in all"
    )
    return figures
