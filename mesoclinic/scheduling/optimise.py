"""Re-planning a clinic's open appointments: the pure core of `mesoclinic optimise`.

Nothing here touches the database or Django. optimise_db.py reads the calendar into an
`Instance` (whole minutes on one UTC time line, each practitioner's working intervals, the
visits and their courses' rules) and applies the plan that `optimise()` returns.

The method:

1. Derive the rules that tie the visits of one course together (`links`): the order is kept;
   a session falls inside its cadence window after the previous session, measured on the
   clinic's wall clock as the session gate measures it; a session or a test reading comes at
   least the allergy wait after the test, in real hours. A rule the calendar already breaks is
   not made worse (its bound is relaxed to where the calendar is), so one late session does not
   stop a whole practitioner's calendar from being improved.
2. Narrow each open visit's possible starts (`Context.domain`): on the 15-minute grid, inside
   its practitioner's working intervals, not before the release time, at most `max_shift` from
   where it is booked, inside the windows its neighbours allow. Staying put is always possible.
3. Split the open visits into independent components: visits that share a practitioner, a room
   or a patient, transitively. Nothing ties two components together.
4. Greedy first fit, per component, in time order: each visit at the first feasible grid start
   from its target (the cadence due time, the end of the allergy wait, or the earliest allowed
   start), or else the nearest feasible start before the target.
5. The incumbent of a component is the better of the calendar as booked and the greedy plan
   (each only if `check` finds nothing wrong with it).
6. CP-SAT improves the incumbent one block at a time, hinted with it (AddHint, a complete
   hint, so the solver starts from it): a small component whole, a large one as runs of four
   consecutive visits of one practitioner (a morning or a day of their calendar) with every
   other visit fixed where the incumbent has it. Pass after pass, the runs cut in different
   places, until the time is up or two passes change nothing. Small blocks won on the
   benchmark (docs/benchmarks.md): in the same time they improve far more than per-practitioner
   or per-week blocks, because each is solved, mostly to optimality, in a few hundredths of a
   second, and a visit's chain neighbours, fixed around it, pin its window to a few days.
7. A block's answer is kept only when `check` passes around it and the score is lower, so the
   result is never worse than greedy, nor than the calendar as booked.

Times are minutes since `Clock.origin`, which lies on the 15-minute grid. Every UTC offset in use
is a whole number of quarter hours, so the grid is the same on the clinic's wall clock.
"""

from __future__ import annotations

import bisect
import datetime as dt
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from ortools.sat.python import cp_model

GRID = 15  # minutes
MIN_SOLVE_SECONDS = 0.05
DAY = 24 * 60
HOUR = 60

# Appointment.Kind's values. Kept as strings so that this module imports no model (logic.py
# has the same constants, but importing it would import Django through the protocol schema).
ALLERGY_TEST = "allergy_test"
TEST_READING = "test_reading"
SESSION = "session"
REVIEW = "review"
MAINTENANCE = "maintenance"
TREATMENTS = (SESSION, MAINTENANCE)
# The visits at which the practitioner injects, and so needs a licence valid on the day (the
# booking path's rule, actions.INJECTING).
INJECTING = frozenset({ALLERGY_TEST, SESSION, MAINTENANCE})

# The kinds of link between two visits of a course.
ORDER = "order"
CADENCE = "cadence"
ALLERGY = "allergy"

Plan = dict[int, int]  # visit id -> start minute
Expr = cp_model.LinearExpr
Resource = tuple[str, int]  # ("practitioner" | "room" | "patient", id)


# The time line.


@dataclass(frozen=True)
class Clock:
    """Whole minutes since `origin` (UTC, on the grid), and the clinic's wall clock.

    `changes` lists each UTC offset in force from a minute on, so that the wall clock can be
    read without a time zone lookup in the inner loops: (minute, offset in minutes), the first
    one from the beginning of time."""

    origin: dt.datetime
    tz: dt.tzinfo
    changes: tuple[tuple[int, int], ...]
    _from: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_from", tuple(m for m, _ in self.changes))

    @classmethod
    def starting(cls, moment: dt.datetime, tz: dt.tzinfo, days: int, back: int = 1) -> Clock:
        """A clock whose minute 0 is `moment` rounded down to the grid, knowing every change of
        UTC offset in `tz` from `back` days before it to `days` days after."""
        utc = moment.astimezone(dt.UTC).replace(second=0, microsecond=0)
        origin = utc - dt.timedelta(minutes=utc.minute % GRID)

        def offset(minute: int) -> int:
            delta = (origin + dt.timedelta(minutes=minute)).astimezone(tz).utcoffset()
            assert delta is not None
            return int(delta.total_seconds()) // 60

        changes = [(-(10**12), offset(-back * DAY))]
        for day in range(-back, days + 1):
            lo, hi = day * DAY, (day + 1) * DAY
            if offset(hi) == offset(lo):
                continue
            # One change a day at most: find its first minute by bisection.
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if offset(mid) == offset(lo) else (lo, mid)
            changes.append((hi, offset(hi)))
        return cls(origin, tz, tuple(changes))

    def minute(self, moment: dt.datetime) -> int:
        """The minute of `moment`, rounded down."""
        return int((moment - self.origin).total_seconds() // 60)

    def moment(self, minute: int) -> dt.datetime:
        return self.origin + dt.timedelta(minutes=minute)

    def local(self, minute: int) -> dt.datetime:
        return self.moment(minute).astimezone(self.tz)

    def offset(self, minute: int) -> int:
        return self.changes[bisect.bisect_right(self._from, minute) - 1][1]

    def wall(self, minute: int) -> int:
        """The minute as the clinic's wall clock reads it, so that a weekly 10:00 session is
        due at 10:00 across a daylight-saving change."""
        return minute + self.offset(minute)

    def from_wall(self, wall: int) -> int:
        """The first real minute at which the wall clock reads `wall`; in the hour skipped when
        the clocks go forward, the same wall time in the new offset (as Python does)."""
        offsets = {o for _, o in self.changes}
        found = [wall - o for o in offsets if self.offset(wall - o) == o]
        return min(found) if found else max(wall - o for o in offsets)

    def shifts_between(self, first: int, last: int) -> list[tuple[int, int]]:
        """The offset in force at `first` and each change up to `last`, as (minute, offset)."""
        out = [(first, self.offset(first))]
        out += [(m, o) for m, o in self.changes if first < m <= last]
        return out

    @property
    def largest_shift(self) -> int:
        """How far the wall clock moves at most against real time, in minutes."""
        offsets = [o for _, o in self.changes]
        return max(offsets) - min(offsets)

    def words(self, minute: int) -> str:
        """ "Tue 1 Dec 10:00", the way the front desk says a time."""
        local = self.local(minute)
        return f"{local:%a} {local.day} {local:%b %H:%M}"


# The instance.


@dataclass(frozen=True)
class Visit:
    """One appointment. A visit that is not `movable` (past, in progress, confirmed, charted,
    or of another clinic) stays where it is and only constrains the others. A visit of duration
    0 is a point in a course's history (a charted session without an appointment) that takes no
    time in anyone's calendar."""

    id: int
    kind: str
    practitioner: int
    start: int
    duration: int
    course: int | None = None
    patient: int | None = None
    room: int | None = None
    movable: bool = True

    @property
    def end(self) -> int:
        return self.start + self.duration


@dataclass(frozen=True)
class CourseRules:
    cadence_days: int
    tolerance_days: int
    wait_hours: int  # from the allergy test to session 1 or the reading

    @property
    def earliest(self) -> int:
        return (self.cadence_days - self.tolerance_days) * DAY

    @property
    def latest(self) -> int:
        return (self.cadence_days + self.tolerance_days) * DAY


@dataclass(frozen=True)
class Weights:
    """What one minute of each objective costs. The defaults value a practitioner's idle minute
    ten times a patient's minute of waiting (a day's wait for a patient is worth 2.4 h of idle
    time), and a move like an hour's wait, so nothing is moved for a trifle."""

    wait: int = 1
    idle: int = 10
    move: int = 60


@dataclass(frozen=True)
class Instance:
    clock: Clock
    visits: tuple[Visit, ...]
    courses: Mapping[int, CourseRules]
    hours: Mapping[int, tuple[tuple[int, int], ...]]  # practitioner -> working intervals
    release: int  # no visit is moved to start before this minute
    max_shift: int = 7 * DAY  # nor further than this from where it is booked
    weights: Weights = Weights()
    # Practitioner -> the minute their licence ends (local midnight after its last day): no
    # injecting visit of theirs is moved to start at or after it. Not listed: no limit.
    licence_ends: Mapping[int, int] = field(default_factory=dict)

    def current(self) -> Plan:
        return {v.id: v.start for v in self.visits}

    @cached_property
    def sharing(self) -> dict[tuple[str, int], list[Visit]]:
        """The visits of each practitioner, room, patient and course (an index that `check`
        reads around a few visits without scanning the whole calendar)."""
        out: dict[tuple[str, int], list[Visit]] = defaultdict(list)
        for v in self.visits:
            for key in _resources_of(v):
                out[key].append(v)
            if v.course is not None:
                out[("course", v.course)].append(v)
        return out


@dataclass(frozen=True)
class Score:
    wait: int  # minutes: patients' waits (see `_wait`)
    idle: int  # minutes: gaps between visits inside practitioners' working intervals
    moves: int

    def total(self, weights: Weights) -> int:
        return self.wait * weights.wait + self.idle * weights.idle + self.moves * weights.move


@dataclass(frozen=True)
class Problem:
    code: str
    message: str
    visits: tuple[int, ...]


# The rules between the visits of a course.


@dataclass(frozen=True)
class Link:
    """`after` starts at least `floor` and at most `ceiling` minutes after `before` (on the wall
    clock when `wall`). `low` and `high` are the rule; `floor` and `ceiling` are what the
    optimiser enforces: the rule, widened to where the calendar already is when it breaks it.
    `due` is the gap the cadence aims at, which the patient-wait objective measures against."""

    kind: str
    before: int
    after: int
    low: int
    high: int | None
    floor: int
    ceiling: int | None
    wall: bool = False
    due: int | None = None

    def gap(self, clock: Clock, before: int, after: int) -> int:
        if self.wall:
            return clock.wall(after) - clock.wall(before)
        return after - before

    def allows(self, clock: Clock, before: int, after: int) -> bool:
        gap = self.gap(clock, before, after)
        return gap >= self.floor and (self.ceiling is None or gap <= self.ceiling)


def _course_chains(visits: Iterable[Visit]) -> dict[int, list[Visit]]:
    """Each course's visits in the order they are booked."""
    chains: dict[int, list[Visit]] = defaultdict(list)
    for v in visits:
        if v.course is not None:
            chains[v.course].append(v)
    for chain in chains.values():
        chain.sort(key=lambda v: (v.start, v.id))
    return chains


def links(instance: Instance) -> list[Link]:
    """Every rule between two visits of one course of which at least one is movable.

    1. Each visit starts once the one booked before it has ended.
    2. Each session or maintenance session keeps at least the protocol's shortest interval
       after the previous one on the wall clock; a session after a session also at most the
       cadence plus the tolerance, and aims at the cadence.
    3. After an allergy test, each test reading and the first session wait the test's hours.
    """
    clock = instance.clock
    out: list[Link] = []

    def add(
        kind: str,
        a: Visit,
        b: Visit,
        low: int,
        high: int | None,
        wall: bool = False,
        due: int | None = None,
    ) -> None:
        if not (a.movable or b.movable):
            return
        gap = clock.wall(b.start) - clock.wall(a.start) if wall else b.start - a.start
        floor = min(low, gap)
        ceiling = None if high is None else max(high, gap)
        out.append(Link(kind, a.id, b.id, low, high, floor, ceiling, wall, due))

    for course, chain in _course_chains(instance.visits).items():
        rules = instance.courses[course]
        for a, b in zip(chain, chain[1:], strict=False):
            add(ORDER, a, b, a.duration, None)
        last_treatment: Visit | None = None
        last_test: Visit | None = None
        for v in chain:
            if v.kind == ALLERGY_TEST:
                last_test = v
                continue
            if last_test is not None and v.kind in (SESSION, TEST_READING):
                add(ALLERGY, last_test, v, rules.wait_hours * HOUR, None)
                if v.kind == SESSION:
                    last_test = None
            if v.kind in TREATMENTS:
                if last_treatment is not None:
                    both = v.kind == SESSION and last_treatment.kind == SESSION
                    add(
                        CADENCE,
                        last_treatment,
                        v,
                        rules.earliest,
                        rules.latest if both else None,
                        wall=True,
                        due=rules.cadence_days * DAY if both else None,
                    )
                last_treatment = v
    return out


# The context: everything derived from an instance once.


@dataclass
class Context:
    instance: Instance
    by_id: dict[int, Visit]
    links: list[Link]
    links_of: dict[int, list[Link]]
    anchor: dict[int, Link]  # the link a visit's wait is measured from
    anchored_by: dict[int, list[int]]  # visit -> the visits whose wait it anchors
    earliest: dict[int, int]  # for a visit without an anchor
    domain: dict[int, list[int]]  # movable visit -> its possible starts, sorted
    hours: dict[int, tuple[list[int], list[int]]]  # practitioner -> interval starts, ends
    resources: dict[Resource, list[int]]  # every visit that takes time, per resource
    overlapping_patients: set[int] = field(default_factory=set)  # held still (see _domains)

    @classmethod
    def of(cls, instance: Instance) -> Context:
        by_id = {v.id: v for v in instance.visits}
        if len(by_id) != len(instance.visits):
            raise ValueError("Two visits share an id.")
        found = links(instance)
        links_of: dict[int, list[Link]] = defaultdict(list)
        for link in found:
            links_of[link.before].append(link)
            links_of[link.after].append(link)
        # Only a movable visit's wait is counted: a fixed one's is no one's to change.
        anchor: dict[int, Link] = {}
        for link in found:
            if link.kind == CADENCE and link.due is not None and by_id[link.after].movable:
                anchor[link.after] = link
        for link in found:
            if link.kind == ALLERGY and link.after not in anchor and by_id[link.after].movable:
                anchor[link.after] = link
        anchored_by: dict[int, list[int]] = defaultdict(list)
        for after, link in anchor.items():
            anchored_by[link.before].append(after)
        hours = {
            who: ([s for s, _ in spans], [e for _, e in spans])
            for who, spans in ((w, sorted(s)) for w, s in instance.hours.items())
        }
        resources: dict[Resource, list[int]] = defaultdict(list)
        for v in instance.visits:
            for key in _resources_of(v):
                resources[key].append(v.id)
        ctx = cls(
            instance=instance,
            by_id=by_id,
            links=found,
            links_of=links_of,
            anchor=anchor,
            anchored_by=anchored_by,
            earliest={
                v.id: max(instance.release, v.start - instance.max_shift)
                for v in instance.visits
                if v.movable
            },
            domain={},
            hours=hours,
            resources=resources,
        )
        ctx.overlapping_patients = _patients_overlapping_now(ctx)
        ctx.domain = _domains(ctx)
        return ctx

    @property
    def movable(self) -> list[int]:
        return [v.id for v in self.instance.visits if v.movable]

    def interval_of(self, practitioner: int, start: int, duration: int) -> int | None:
        """The index of the working interval that holds [start, start + duration), if any."""
        starts, ends = self.hours.get(practitioner, ([], []))
        i = bisect.bisect_right(starts, start) - 1
        if i >= 0 and start + duration <= ends[i]:
            return i
        return None


def _resources_of(v: Visit) -> list[Resource]:
    if v.duration <= 0:
        return []
    out: list[Resource] = [("practitioner", v.practitioner)]
    if v.room is not None:
        out.append(("room", v.room))
    if v.patient is not None:
        out.append(("patient", v.patient))
    return out


def _ceil_grid(minute: int) -> int:
    return -(-minute // GRID) * GRID


def _domains(ctx: Context) -> dict[int, list[int]]:
    """Each movable visit's possible starts.

    1. Start from [release or booked start minus max_shift, booked start plus max_shift].
    2. Tighten by the links, a few passes both ways (wall-clock links widened by the largest
       daylight-saving shift, so that this only ever drops starts no plan could use).
    3. Keep the grid starts whose visit fits inside one working interval, and the booked start.
    A patient whose visits already overlap keeps all of them where they are: which of two
    visits booked at once should give way is not this module's choice.
    """
    instance = ctx.instance
    slack = instance.clock.largest_shift
    lo: dict[int, int] = {}
    hi: dict[int, int] = {}
    for v in instance.visits:
        if v.movable:
            lo[v.id] = ctx.earliest[v.id]
            hi[v.id] = v.start + instance.max_shift
        else:
            lo[v.id] = hi[v.id] = v.start
    for patient in ctx.overlapping_patients:
        for vid in ctx.resources[("patient", patient)]:
            lo[vid] = hi[vid] = ctx.by_id[vid].start
    for _ in range(8):
        changed = False
        for link in ctx.links:
            a, b = link.before, link.after
            floor = link.floor - (slack if link.wall else 0)
            new = {("lo", b): lo[a] + floor, ("hi", a): hi[b] - floor}
            if link.ceiling is not None:
                ceiling = link.ceiling + (slack if link.wall else 0)
                new[("hi", b)] = hi[a] + ceiling
                new[("lo", a)] = lo[b] - ceiling
            for (side, vid), value in new.items():
                if side == "lo" and value > lo[vid]:
                    lo[vid], changed = value, True
                elif side == "hi" and value < hi[vid]:
                    hi[vid], changed = value, True
        if not changed:
            break
    out: dict[int, list[int]] = {}
    for v in instance.visits:
        if not v.movable:
            continue
        first, last = lo[v.id], hi[v.id]
        if v.kind in INJECTING and v.practitioner in instance.licence_ends:
            last = min(last, instance.licence_ends[v.practitioner] - 1)
        values: set[int] = set()
        starts, ends = ctx.hours.get(v.practitioner, ([], []))
        i = max(bisect.bisect_right(starts, first) - 1, 0)
        while i < len(starts) and starts[i] <= last:
            begin = _ceil_grid(max(starts[i], first))
            values.update(range(begin, min(ends[i] - v.duration, last) + 1, GRID))
            i += 1
        if lo[v.id] <= v.start <= hi[v.id]:
            values.add(v.start)  # Staying is always allowed, even past a lapsed licence.
        out[v.id] = sorted(values)
    return out


def _patients_overlapping_now(ctx: Context) -> set[int]:
    """The patients whose visits already overlap one another (with two practitioners, say)."""
    out: set[int] = set()
    for (kind, patient), ids in ctx.resources.items():
        if kind != "patient":
            continue
        visits = sorted((ctx.by_id[i] for i in ids), key=lambda v: v.start)
        if any(b.start < a.end for a, b in zip(visits, visits[1:], strict=False)):
            out.add(patient)
    return out


# The score.


def _wait(ctx: Context, vid: int, plan: Mapping[int, int]) -> int:
    """A patient's wait for one movable visit, in minutes.

    - A session after a session: how far it is from its due time (the previous session's wall
      clock time plus the cadence), early or late, so that the cadence and the hour are kept.
    - A session or a reading after an allergy test: how long after the wait is over.
    - Anything else: how long after the earliest start allowed (the release time, or
      `max_shift` before where it is booked).
    """
    link = ctx.anchor.get(vid)
    if link is None:
        return max(0, plan[vid] - ctx.earliest[vid])
    gap = link.gap(ctx.instance.clock, plan[link.before], plan[vid])
    if link.due is not None:
        return abs(gap - link.due)
    return max(0, gap - link.low)


def score(
    ctx: Context,
    plan: Mapping[int, int],
    visits: Iterable[int] | None = None,
    practitioners: Iterable[int] | None = None,
) -> Score:
    """Patient wait and moves over the movable `visits` (all by default), idle time over the
    `practitioners`' working intervals (all by default)."""
    instance = ctx.instance
    chosen = ctx.movable if visits is None else [v for v in visits if ctx.by_id[v].movable]
    wait = sum(_wait(ctx, vid, plan) for vid in chosen)
    moves = sum(1 for vid in chosen if plan[vid] != ctx.by_id[vid].start)
    whose = set(instance.hours) if practitioners is None else set(practitioners)
    return Score(wait, _idle(ctx, plan, whose), moves)


def _idle(ctx: Context, plan: Mapping[int, int], practitioners: set[int]) -> int:
    """Minutes between the first visit's start and the last visit's end inside each working
    interval, less the minutes booked: the gaps a practitioner waits through. A lunch break
    between two intervals is not idle time."""
    total = 0
    for who in practitioners:
        spans: dict[int, list[int]] = {}
        for vid in ctx.resources.get(("practitioner", who), []):
            v = ctx.by_id[vid]
            start = plan[vid]
            i = ctx.interval_of(who, start, v.duration)
            if i is None:
                continue
            span = spans.setdefault(i, [start, start + v.duration, 0])
            span[0] = min(span[0], start)
            span[1] = max(span[1], start + v.duration)
            span[2] += v.duration
        total += sum(last - first - busy for first, last, busy in spans.values())
    return total


# Verifying a plan, independently of how it was made.


def check(
    instance: Instance,
    plan: Mapping[int, int],
    *,
    only: Iterable[int] | None = None,
    strict: bool = False,
) -> list[Problem]:
    """Every rule the plan breaks, among visits of which at least one is movable.

    This re-reads the rules from the instance itself (it uses neither `links` nor the domains),
    so that a mistake in the model or in the search cannot hide here. A rule the calendar as
    booked already breaks is reported only if the plan makes it worse, and a visit left where
    it is booked is not judged on its working hours: moving nothing is never wrong. With
    `strict`, every broken rule is reported, which is how the calendar as booked is judged.
    With `only`, just the problems that involve those visits are looked for.
    """
    by_id = {v.id: v for v in instance.visits}
    mine: Sequence[Visit] = instance.visits
    visits: Sequence[Visit] = instance.visits
    if only is not None:
        mine = [by_id[i] for i in set(only)]
        visits = _neighbourhood(instance, set(mine))

    def at(v: Visit) -> int:
        return plan.get(v.id, v.start)

    out: list[Problem] = []
    for v in mine:
        out += _visit_problems(instance, v, at(v), strict)
    out += _overlaps(instance.clock, visits, at, strict)
    courses = {v.course for v in mine}
    for course, chain in _course_chains(visits).items():
        if course in courses:
            out += _course_problems(instance.clock, instance.courses[course], chain, at, strict)
    # A rule broken among fixed visits only is no plan's doing (a fixed visit that moved is).
    out = [p for p in out if p.code == "moved_fixed" or any(by_id[i].movable for i in p.visits)]
    if only is not None:
        wanted = set(only)
        out = [p for p in out if wanted.intersection(p.visits)]
    return out


def _neighbourhood(instance: Instance, visits: set[Visit]) -> list[Visit]:
    """The visits that share a practitioner, a room, a patient or a course with `visits`."""
    keys = {key for v in visits for key in _resources_of(v)}
    keys |= {("course", v.course) for v in visits if v.course is not None}
    found = {v.id: v for v in visits}
    for key in keys:
        found.update((v.id, v) for v in instance.sharing[key])
    return list(found.values())


def _visit_problems(instance: Instance, v: Visit, start: int, strict: bool) -> list[Problem]:
    clock = instance.clock
    if start == v.start:
        if not (strict and v.movable and v.duration > 0):
            return []
        if not any(s <= start and start + v.duration <= e for s, e in _hours_of(instance, v)):
            what = f"{_kind_words(v.kind)} at {clock.words(start)}"
            return [Problem("outside_hours", f"{what} is outside working hours.", (v.id,))]
        return []
    broken = []
    if not v.movable:
        broken.append(("moved_fixed", "may not be moved"))
    else:
        if start % GRID:
            broken.append(("off_grid", f"is off the {GRID}-minute grid"))
        if start < instance.release:
            broken.append(("too_soon", f"is before {clock.words(instance.release)}"))
        if abs(start - v.start) > instance.max_shift:
            broken.append(("too_far", f"is too far from {clock.words(v.start)}"))
        if not any(s <= start and start + v.duration <= e for s, e in _hours_of(instance, v)):
            broken.append(("outside_hours", "is outside working hours"))
        licence_ends = instance.licence_ends.get(v.practitioner)
        if v.kind in INJECTING and licence_ends is not None and start >= licence_ends:
            broken.append(("unlicensed", "is after the practitioner's licence ends"))
    what = f"{_kind_words(v.kind)} moved to {clock.words(start)}" if broken else ""
    return [Problem(code, f"{what} {words}.", (v.id,)) for code, words in broken]


def _hours_of(instance: Instance, v: Visit) -> Sequence[tuple[int, int]]:
    return instance.hours.get(v.practitioner, ())


def _overlaps(
    clock: Clock, visits: Sequence[Visit], at: Callable[[Visit], int], strict: bool
) -> list[Problem]:
    """Two visits of one practitioner, one room or one patient at once, one of them moved."""
    on: dict[Resource, list[Visit]] = defaultdict(list)
    for v in visits:
        for key in _resources_of(v):
            on[key].append(v)
    out = []
    for (kind, _), mine in on.items():
        mine.sort(key=at)
        # A sweep: `latest` is the visit seen so far that ends last.
        latest = mine[0]
        for v in mine[1:]:
            moved = at(v) != v.start or at(latest) != latest.start
            if at(v) < at(latest) + latest.duration and (strict or moved):
                out.append(
                    Problem(
                        f"overlap_{kind}",
                        f"Two visits of one {kind} overlap at {clock.words(at(v))}.",
                        (latest.id, v.id),
                    )
                )
            if at(v) + v.duration > at(latest) + latest.duration:
                latest = v
    return out


def _course_problems(
    clock: Clock,
    rules: CourseRules,
    chain: Sequence[Visit],
    at: Callable[[Visit], int],
    strict: bool,
) -> list[Problem]:
    """The order of a course's visits, the cadence between its sessions and the allergy wait,
    each judged against how far the calendar as booked already breaks it (unless `strict`)."""
    out: list[Problem] = []

    def judge(code: str, a: Visit, b: Visit, wall: bool, low: int, high: int | None) -> None:
        def gap(sa: int, sb: int) -> int:
            return clock.wall(sb) - clock.wall(sa) if wall else sb - sa

        now, then = gap(a.start, b.start), gap(at(a), at(b))
        short, long = max(0, low - then), 0 if high is None else max(0, then - high)
        if not strict:
            short = short if short > max(0, low - now) else 0
            long = long if high is not None and long > max(0, now - high) else 0
        if short or long:
            rule = {
                "order": "the order of the course",
                "allergy_wait": f"the {rules.wait_hours} h allergy wait",
                "cadence": f"the cadence of {rules.cadence_days} ± {rules.tolerance_days} days",
            }[code]
            out.append(
                Problem(
                    code,
                    f"{_kind_words(b.kind)} at {clock.words(at(b))} breaks {rule} after the "
                    f"{_kind_words(a.kind).lower()} at {clock.words(at(a))}.",
                    (a.id, b.id),
                )
            )

    for a, b in zip(chain, chain[1:], strict=False):
        judge("order", a, b, False, a.duration, None)
    previous: Visit | None = None
    test: Visit | None = None
    for v in chain:
        if v.kind == ALLERGY_TEST:
            test = v
            continue
        if test is not None and v.kind in (SESSION, TEST_READING):
            judge("allergy_wait", test, v, False, rules.wait_hours * HOUR, None)
            if v.kind == SESSION:
                test = None
        if v.kind not in TREATMENTS:
            continue
        if previous is not None:
            both = previous.kind == SESSION and v.kind == SESSION
            low = (rules.cadence_days - rules.tolerance_days) * DAY
            high = (rules.cadence_days + rules.tolerance_days) * DAY if both else None
            judge("cadence", previous, v, True, low, high)
        previous = v
    return out


def _kind_words(kind: str) -> str:
    return kind.replace("_", " ").capitalize()


# Greedy first fit.


class _Calendar:
    """Who is busy when, for the greedy pass: per resource, sorted (start, end) pairs."""

    def __init__(self) -> None:
        self.busy: dict[Resource, list[tuple[int, int]]] = defaultdict(list)

    def take(self, v: Visit, start: int) -> None:
        for key in _resources_of(v):
            self.take_on(key, start, start + v.duration)

    def take_on(self, key: Resource, start: int, end: int) -> None:
        bisect.insort(self.busy[key], (start, end))

    def free(self, v: Visit, start: int) -> bool:
        end = start + v.duration
        for key in _resources_of(v):
            taken = self.busy.get(key)
            if not taken:
                continue
            i = bisect.bisect_left(taken, (end,))
            # A practitioner's or a room's visits never overlap, so the one that starts last
            # before `end` is the only one that could; a patient's few visits are all read.
            earlier = taken[max(i - 1, 0) : i] if key[0] != "patient" else taken[:i]
            if any(e > start for _, e in earlier):
                return False
        return True


def _target(ctx: Context, vid: int, plan: Mapping[int, int]) -> int:
    """Where the greedy pass aims a visit: its due time, the end of the allergy wait, or the
    earliest start allowed."""
    link = ctx.anchor.get(vid)
    if link is None:
        return ctx.earliest[vid]
    if link.due is not None:
        clock = ctx.instance.clock
        return clock.from_wall(clock.wall(plan[link.before]) + link.due)
    return plan[link.before] + link.low


def greedy(ctx: Context, component: Sequence[int], base: Mapping[int, int]) -> Plan | None:
    """First fit: place the component's visits one by one in the order they are booked, each
    at the first feasible grid start from its target, or else the nearest feasible start before
    it; every other visit stays where `base` has it.

    A visit that finds no start leaves its whole course where it is booked: the pass goes on
    without that course, then starts again with every such course held still. A course held
    still was feasible as booked, so this ends; None only if even that fails."""
    pinned = {v for v in component if ctx.domain[v] == [ctx.by_id[v].start]}
    while True:
        plan, stuck = _first_fit(ctx, component, base, pinned)
        if not stuck:
            return plan
        courses = {ctx.by_id[v].course for v in stuck} - {None}
        held = stuck | {v for v in component if ctx.by_id[v].course in courses}
        if held <= pinned:
            return None
        pinned |= held


def _first_fit(
    ctx: Context, component: Sequence[int], base: Mapping[int, int], pinned: set[int]
) -> tuple[Plan, set[int]]:
    """One greedy pass. Returns the plan and the visits that found no start (the rest of
    their courses is skipped)."""
    plan = dict(base)
    mine = set(component) - pinned
    calendar = _Calendar()
    keys = {key for vid in component for key in _resources_of(ctx.by_id[vid])}
    for key in keys:
        for other in ctx.resources[key]:
            if other not in mine:
                calendar.take_on(key, plan[other], plan[other] + ctx.by_id[other].duration)
    placed = set(plan) - mine
    stuck: set[int] = set()
    given_up: set[int] = set()  # courses
    for vid in sorted(mine, key=lambda i: (ctx.by_id[i].start, i)):
        v = ctx.by_id[vid]
        if v.course in given_up:
            continue
        options = ctx.domain[vid]
        split = bisect.bisect_left(options, _target(ctx, vid, plan))
        for start in [*options[split:], *reversed(options[:split])]:
            if calendar.free(v, start) and _links_allow(ctx, vid, start, plan, placed):
                plan[vid] = start
                placed.add(vid)
                calendar.take(v, start)
                break
        else:
            stuck.add(vid)
            if v.course is not None:
                given_up.add(v.course)
    return plan, stuck


def _links_allow(
    ctx: Context, vid: int, start: int, plan: Mapping[int, int], placed: set[int]
) -> bool:
    clock = ctx.instance.clock
    for link in ctx.links_of.get(vid, []):
        other = link.before if link.after == vid else link.after
        if other not in placed:
            continue
        before, after = (plan[other], start) if link.after == vid else (start, plan[other])
        if not link.allows(clock, before, after):
            return False
    return True


# CP-SAT.


@dataclass
class Solved:
    plan: Plan | None
    status: str
    seconds: float


class _Model:
    """The CP-SAT model of one block: the `free` visits move, every other visit stays where
    `incumbent` has it.

    Variables, for each free visit: its start (its domain), a literal per working interval it
    may fall in, whether it moved, and for the wall clock a literal per change of UTC offset it
    may fall either side of. Per working interval a free visit may use: the first start and the
    last end of the visits inside it. Constraints: no overlap per practitioner, room and patient
    (the other visits as fixed intervals), the links. Objective: the weighted patient wait, idle
    minutes and moves, as `score` computes them (up to a constant).
    """

    def __init__(self, ctx: Context, free: Sequence[int], incumbent: Mapping[int, int]):
        self.ctx = ctx
        self.free = set(free)
        self.incumbent = incumbent
        self.model = cp_model.CpModel()
        self.start: dict[int, cp_model.IntVar] = {}
        self.hints: list[tuple[cp_model.IntVar, int]] = []
        self._walls: dict[int, Expr] = {}
        self.options = {vid: self._options(vid) for vid in self.free}
        for vid in sorted(self.free):
            var = self.model.new_int_var_from_domain(
                cp_model.Domain.from_values(self.options[vid]), f"start_{vid}"
            )
            self.start[vid] = var
            self.hints.append((var, incumbent[vid]))
        self._no_overlap()
        self._links()
        w = ctx.instance.weights
        self.model.minimize(w.wait * self._wait() + w.idle * self._idle() + w.move * self._moves())

    def _options(self, vid: int) -> list[int]:
        """The visit's domain, less the starts that a link to a visit held still in this block
        rules out (the incumbent's start always stays in)."""
        clock = self.ctx.instance.clock
        fixed = [
            link
            for link in self.ctx.links_of.get(vid, [])
            if (link.before if link.after == vid else link.after) not in self.free
        ]
        options = self.ctx.domain[vid]
        slack = clock.largest_shift
        for link in fixed:
            # Cut by bisection in real minutes (widened by any daylight-saving shift), then
            # test what is left exactly.
            after = link.after == vid
            other = self.incumbent[link.before if after else link.after]
            sign = 1 if after else -1
            ends = [other + sign * link.floor]
            if link.ceiling is not None:
                ends.append(other + sign * link.ceiling)
            lo = min(ends) - slack if link.ceiling is not None or after else -(10**12)
            hi = max(ends) + slack if link.ceiling is not None or not after else 10**12
            options = options[bisect.bisect_left(options, lo) : bisect.bisect_right(options, hi)]
            if after:
                options = [t for t in options if link.allows(clock, other, t)]
            else:
                options = [t for t in options if link.allows(clock, t, other)]
        return options

    def at(self, vid: int) -> Expr:
        if vid in self.free:
            return self.start[vid]
        return Expr.constant(self.incumbent[vid])

    def _new_bool(self, name: str, hint: bool) -> cp_model.IntVar:
        var = self.model.new_bool_var(name)
        self.hints.append((var, int(hint)))
        return var

    def _new_int(self, lo: int, hi: int, name: str, hint: int) -> cp_model.IntVar:
        var = self.model.new_int_var(lo, hi, name)
        self.hints.append((var, hint))
        return var

    def wall(self, vid: int) -> Expr:
        """The start on the wall clock. A literal per change of UTC offset inside the visit's
        domain says which side of it the visit falls."""
        clock = self.ctx.instance.clock
        if vid not in self.free:
            return Expr.constant(clock.wall(self.incumbent[vid]))
        if vid in self._walls:
            return self._walls[vid]
        options = self.options[vid]
        shifts = clock.shifts_between(options[0], options[-1])
        expr: Expr = self.start[vid] + shifts[0][1]
        for (_, previous), (minute, offset) in zip(shifts, shifts[1:], strict=False):
            after = self._new_bool(f"after_{vid}_{minute}", self.incumbent[vid] >= minute)
            self.model.add(self.start[vid] >= minute).only_enforce_if(after)
            self.model.add(self.start[vid] < minute).only_enforce_if(~after)
            expr = expr + (offset - previous) * after
        self._walls[vid] = expr
        return expr

    def _no_overlap(self) -> None:
        ctx = self.ctx
        keys: dict[Resource, list[int]] = defaultdict(list)
        for vid in self.free:
            for key in _resources_of(ctx.by_id[vid]):
                # Already overlapping as booked, and held still: no constraint to add.
                if key[0] != "patient" or key[1] not in ctx.overlapping_patients:
                    keys[key].append(vid)
        for key, mine in keys.items():
            first = min(self.options[v][0] for v in mine)
            last = max(self.options[v][-1] + ctx.by_id[v].duration for v in mine)
            intervals = [
                self.model.new_fixed_size_interval_var(
                    self.start[v], ctx.by_id[v].duration, f"{key[0]}_{v}"
                )
                for v in mine
            ]
            others = []
            for other in ctx.resources[key]:
                if other in self.free:
                    continue
                o, begin = ctx.by_id[other], self.incumbent[other]
                if begin < last and begin + o.duration > first:
                    others.append(other)
                    intervals.append(
                        self.model.new_fixed_size_interval_var(
                            begin, o.duration, f"{key[0]}_fixed_{other}"
                        )
                    )
            if len(intervals) > 1 and not self._implied(key, mine + others):
                self.model.add_no_overlap(intervals)

    def _implied(self, key: Resource, visits: list[int]) -> bool:
        """Whether another constraint already keeps these visits apart: a room used by one
        practitioner only, or a patient's visits of one course (kept in order by the links)."""
        by_id = self.ctx.by_id
        if key[0] == "room":
            return len({by_id[v].practitioner for v in visits}) == 1
        if key[0] == "patient":
            return len({by_id[v].course for v in visits}) == 1 and None not in {
                by_id[v].course for v in visits
            }
        return False

    def _links(self) -> None:
        for link in self._touching():
            if link.wall:
                gap = self.wall(link.after) - self.wall(link.before)
            else:
                gap = self.at(link.after) - self.at(link.before)
            self.model.add(gap >= link.floor)
            if link.ceiling is not None:
                self.model.add(gap <= link.ceiling)

    def _touching(self) -> list[Link]:
        seen: dict[int, Link] = {}
        for vid in self.free:
            for link in self.ctx.links_of.get(vid, []):
                seen[id(link)] = link
        return list(seen.values())

    def _wait(self) -> Expr:
        ctx = self.ctx
        clock = ctx.instance.clock
        waiting = set(self.free)
        for vid in self.free:
            waiting.update(ctx.anchored_by.get(vid, []))
        terms: list[Expr] = []
        for vid in sorted(waiting):
            link = ctx.anchor.get(vid)
            if link is None:
                terms.append(self.at(vid) - ctx.earliest[vid])
            elif link.due is not None:
                gap = self.wall(vid) - self.wall(link.before)
                now = link.gap(clock, self.incumbent[link.before], self.incumbent[vid])
                assert link.ceiling is not None  # Only a session after a session is due.
                span = max(link.ceiling - link.due, link.due - link.floor)
                off = self._new_int(0, span, f"off_due_{vid}", abs(now - link.due))
                self.model.add(off >= gap - link.due)
                self.model.add(off >= link.due - gap)
                terms.append(off)
            elif link.floor >= link.low:
                terms.append(self.at(vid) - self.at(link.before) - link.low)
            else:  # Already short of the wait: the shortfall is no reward.
                late = self.at(vid) - self.at(link.before) - link.low
                now = self.incumbent[vid] - self.incumbent[link.before] - link.low
                span = 2 * ctx.instance.max_shift + link.low
                over = self._new_int(0, span, f"over_wait_{vid}", max(0, now))
                self.model.add(over >= late)
                terms.append(over)
        return _total(terms)

    def _moves(self) -> Expr:
        terms: list[Expr] = []
        for vid in sorted(self.free):
            booked = self.ctx.by_id[vid].start
            moved = self._new_bool(f"moved_{vid}", self.incumbent[vid] != booked)
            self.model.add(self.start[vid] == booked).only_enforce_if(~moved)
            terms.append(moved)
        return _total(terms)

    def _idle(self) -> Expr:
        """Per working interval a free visit may fall in: the interval's first start `lo` and
        last end `hi`, over the visits inside it. The idle minutes are the sum of hi - lo less
        the minutes booked inside, and a free visit's minutes count once wherever it goes, so
        only the literals of a visit that may fall outside every interval change that sum."""
        ctx = self.ctx
        members: dict[tuple[int, int], list[tuple[int, cp_model.IntVar | None]]] = defaultdict(list)
        terms: list[Expr] = []
        for vid in sorted(self.free):
            v = ctx.by_id[vid]
            where = _by_interval(ctx, v, self.options[vid])
            if len(where) == 1:
                (only,) = where
                if only is not None:
                    members[(v.practitioner, only)].append((vid, None))
                continue
            here = ctx.interval_of(v.practitioner, self.incumbent[vid], v.duration)
            literals = []
            for i, (first, last) in where.items():
                inside = self._new_bool(f"in_{vid}_{i}", here == i)
                literals.append(inside)
                self.model.add(self.start[vid] >= first).only_enforce_if(inside)
                self.model.add(self.start[vid] <= last).only_enforce_if(inside)
                if i is None:
                    terms.append(v.duration * inside)  # Outside hours: not busy time.
                else:
                    members[(v.practitioner, i)].append((vid, inside))
            self.model.add_exactly_one(literals)
        fixed = self._fixed_inside({who for who, _ in members})
        for (who, i), free in members.items():
            terms.append(self._span(who, i, free, fixed.get((who, i), [])))
        return _total(terms)

    def _fixed_inside(self, whom: set[int]) -> dict[tuple[int, int], list[tuple[int, int]]]:
        """The visits that stay put, as (start, end), per practitioner and working interval."""
        ctx = self.ctx
        out: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
        for who in whom:
            for o in ctx.resources[("practitioner", who)]:
                if o in self.free:
                    continue
                start, duration = self.incumbent[o], ctx.by_id[o].duration
                i = ctx.interval_of(who, start, duration)
                if i is not None:
                    out[(who, i)].append((start, start + duration))
        return out

    def _span(
        self,
        who: int,
        i: int,
        free: list[tuple[int, cp_model.IntVar | None]],
        fixed: list[tuple[int, int]],
    ) -> Expr:
        ctx = self.ctx
        starts, ends = ctx.hours[who]
        begin, finish = starts[i], ends[i]
        inside = fixed + [
            (self.incumbent[v], self.incumbent[v] + ctx.by_id[v].duration)
            for v, _ in free
            if ctx.interval_of(who, self.incumbent[v], ctx.by_id[v].duration) == i
        ]
        lo_hint = min((s for s, _ in inside), default=begin)
        hi_hint = max((e for _, e in inside), default=lo_hint)
        lo = self._new_int(
            begin, min((s for s, _ in fixed), default=finish), f"lo_{who}_{i}", lo_hint
        )
        hi = self._new_int(
            max((e for _, e in fixed), default=begin), finish, f"hi_{who}_{i}", hi_hint
        )
        self.model.add(hi >= lo)
        for vid, literal in free:
            duration = ctx.by_id[vid].duration
            low = self.model.add(lo <= self.start[vid])
            high = self.model.add(hi >= self.start[vid] + duration)
            if literal is not None:
                low.only_enforce_if(literal)
                high.only_enforce_if(literal)
        return hi - lo

    def solve(self, seconds: float, workers: int, hint: bool) -> Solved:
        if hint:
            for var, value in self.hints:
                self.model.add_hint(var, value)
        solver = cp_model.CpSolver()
        solver.parameters.num_workers = workers
        solver.parameters.max_time_in_seconds = max(seconds, 0.01)
        # Presolve took most of a block's time on the benchmark (0.3-0.6 s for a practitioner's
        # week), while a block is small and the complete hint is its first solution at once:
        # the time is better spent searching.
        solver.parameters.cp_model_presolve = False
        started = time.perf_counter()
        status = solver.solve(self.model)
        took = time.perf_counter() - started
        name = solver.status_name(status)
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            return Solved(None, name, took)
        plan = dict(self.incumbent)
        for vid, var in self.start.items():
            plan[vid] = int(solver.value(var))
        return Solved(plan, name, took)


def _by_interval(ctx: Context, v: Visit, options: list[int]) -> dict[int | None, tuple[int, int]]:
    """The first and last of the sorted `options` inside each working interval of the visit's
    practitioner (None: outside every one), walking both lists once."""
    starts, ends = ctx.hours.get(v.practitioner, ([], []))
    out: dict[int | None, tuple[int, int]] = {}
    i = bisect.bisect_left(ends, options[0] + v.duration) if options else 0
    for value in options:
        while i < len(starts) and ends[i] < value + v.duration:
            i += 1
        inside = i < len(starts) and starts[i] <= value
        key = i if inside else None
        first, _ = out.get(key, (value, value))
        out[key] = (first, value)
    return out


def _total(terms: Sequence[Expr]) -> Expr:
    return Expr.sum(list(terms)) if terms else Expr.constant(0)


def solve_block(
    ctx: Context,
    free: Sequence[int],
    incumbent: Mapping[int, int],
    *,
    seconds: float,
    workers: int = 2,
    hint: bool = True,
) -> Solved:
    """CP-SAT over the `free` visits with everything else where `incumbent` has it; the
    incumbent (which must be feasible) is the hint unless `hint` is False."""
    if any(not ctx.domain[v] for v in free):
        return Solved(None, "INFEASIBLE", 0.0)
    return _Model(ctx, free, incumbent).solve(seconds, workers, hint)


# The whole optimisation.


@dataclass
class Result:
    plan: Plan  # every visit's start
    current: Score
    greedy: Score  # the greedy plan, with the calendar as booked where greedy found none
    final: Score
    greedy_plan: Plan
    components: int = 0
    greedy_failed: int = 0  # components where greedy found no plan
    greedy_seconds: float = 0.0
    cpsat_seconds: float = 0.0
    blocks: int = 0  # CP-SAT solves
    improved: int = 0  # solves whose answer was better and kept
    optimal: int = 0  # solves that proved their answer optimal
    unsolved: int = 0  # solves that found no plan in their time

    def changes(self, instance: Instance) -> list[tuple[Visit, int]]:
        """Each moved visit with its new start, in the order of the new starts."""
        moved = [(v, self.plan[v.id]) for v in instance.visits if self.plan[v.id] != v.start]
        return sorted(moved, key=lambda pair: (pair[1], pair[0].id))


def components(ctx: Context) -> list[list[int]]:
    """The movable visits split into groups that nothing ties together: two visits of one
    practitioner, room, patient or course are in the same group, and so (transitively) are the
    visits of theirs."""
    parent: dict[int, int] = {v: v for v in ctx.movable}

    def root(v: int) -> int:
        while parent[v] != v:
            parent[v] = parent[parent[v]]
            v = parent[v]
        return v

    first: dict[tuple[str, int], int] = {}
    for vid in ctx.movable:
        v = ctx.by_id[vid]
        keys: list[tuple[str, int]] = list(_resources_of(v))
        keys += [("course", v.course)] if v.course is not None else []
        for key in keys:
            if key in first:
                parent[root(vid)] = root(first[key])
            else:
                first[key] = vid
    groups: dict[int, list[int]] = defaultdict(list)
    for vid in ctx.movable:
        groups[root(vid)].append(vid)
    return sorted(groups.values(), key=lambda g: min(ctx.by_id[v].start for v in g))


def blocks(
    ctx: Context, component: Sequence[int], size: int, whole: int, offset: int = 0
) -> list[list[int]]:
    """The component itself when it has at most `whole` visits; otherwise each practitioner's
    visits in runs of `size` consecutive ones (a morning or a day of their calendar), the first run
    `offset` long so that another pass cuts the days elsewhere."""
    if len(component) <= whole:
        return [list(component)]
    by_whom: dict[int, list[int]] = defaultdict(list)
    for vid in component:
        by_whom[ctx.by_id[vid].practitioner].append(vid)
    out = []
    for mine in by_whom.values():
        mine.sort(key=lambda v: (ctx.by_id[v].start, v))
        cuts = [0, *range(offset or size, len(mine), size), len(mine)]
        out += [mine[a:b] for a, b in zip(cuts, cuts[1:], strict=False) if b > a]
    return out


def _sound(ctx: Context, plan: Mapping[int, int], visits: Iterable[int]) -> bool:
    """Whether `check` finds nothing wrong with the plan around these visits."""
    return not check(ctx.instance, plan, only=visits)


def _block_score(ctx: Context, plan: Mapping[int, int], free: Iterable[int]) -> int:
    """The part of the weighted score that moving the `free` visits can change."""
    visits = set(free)
    for vid in list(visits):
        visits.update(ctx.anchored_by.get(vid, []))
    whom = {ctx.by_id[v].practitioner for v in visits}
    return score(ctx, plan, visits, whom).total(ctx.instance.weights)


def optimise(
    instance: Instance,
    *,
    seconds: float = 30.0,
    workers: int = 2,
    hint: bool = True,
    block_size: int = 4,
    whole: int = 60,
    passes: int = 100,
) -> Result:
    """Re-plan the movable visits: greedy first, then CP-SAT within about `seconds` in all (see
    the module's docstring). `hint=False` leaves the hint out, to measure what it is worth.

    The calendar as booked always passes `check` (a rule it breaks is only judged on getting
    worse), so every component starts with a sound plan and never ends with a worse one.
    """
    ctx = Context.of(instance)
    current = instance.current()
    began = time.perf_counter()
    groups = components(ctx)
    greedy_plan = dict(current)
    incumbent = dict(current)
    failed = 0
    for group in groups:
        found = greedy(ctx, group, current)
        if found is None or not _sound(ctx, found, group):
            failed += 1
            continue
        greedy_plan.update({v: found[v] for v in group})
        if _block_score(ctx, found, group) < _block_score(ctx, current, group):
            incumbent.update({v: found[v] for v in group})
    result = Result(
        plan=incumbent,
        current=score(ctx, current),
        greedy=score(ctx, greedy_plan),
        final=score(ctx, current),
        greedy_plan=greedy_plan,
        components=len(groups),
        greedy_failed=failed,
        greedy_seconds=time.perf_counter() - began,
    )

    began = time.perf_counter()
    deadline = began + seconds
    settled: set[int] = set()  # components solved whole and proved optimal
    idle_passes = 0
    for round_ in range(passes):
        offset = block_size // 2 if round_ % 2 else 0
        todo = [
            (n, block)
            for n, group in enumerate(groups)
            if n not in settled
            for block in blocks(ctx, group, block_size, whole, offset)
        ]
        if not todo or time.perf_counter() >= deadline:
            break
        improved = result.improved
        left = sum(len(b) for _, b in todo)
        for n, block in todo:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            # A share of what is left by size: at least a moment, never past the deadline.
            share = min(remaining, max(remaining * len(block) / left, MIN_SOLVE_SECONDS))
            left -= len(block)
            status = _improve(ctx, result, block, incumbent, share, workers, hint)
            if status == "OPTIMAL" and len(block) == len(groups[n]):
                settled.add(n)
        # Two passes in a row (cut in different places) that changed nothing: done.
        idle_passes = idle_passes + 1 if result.improved == improved else 0
        if idle_passes == 2:
            break
    result.cpsat_seconds = time.perf_counter() - began
    result.final = score(ctx, incumbent)
    return result


def _improve(
    ctx: Context,
    result: Result,
    block: Sequence[int],
    incumbent: Plan,
    seconds: float,
    workers: int,
    hint: bool,
) -> str:
    """Solve one block and keep its answer when `check` passes and the score is lower.
    Returns CP-SAT's status."""
    result.blocks += 1
    solved = solve_block(ctx, block, incumbent, seconds=seconds, workers=workers, hint=hint)
    if solved.status == "OPTIMAL":
        result.optimal += 1
    if solved.plan is None:
        result.unsolved += 1
        return solved.status
    if _sound(ctx, solved.plan, block) and _block_score(ctx, solved.plan, block) < _block_score(
        ctx, incumbent, block
    ):
        incumbent.update({v: solved.plan[v] for v in block})
        result.improved += 1
    return solved.status
