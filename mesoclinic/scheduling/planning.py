"""Planning against the calendar: free time, booking a whole course, moving a visit with the
visits after it, the maintenance visit, and courses whose cadence is broken.

series.py places visits in free time without a database; this module reads the calendar
(working hours, opening hours, holidays, rooms and what is booked), asks series.py, and books
through actions.py, so every booking passes the same checks whatever page or endpoint made it.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent, Clinic, Membership, User, audit
from mesoclinic.courses import logic as course_logic
from mesoclinic.courses.models import AllergyTest, Course, Session
from mesoclinic.patients.models import Patient
from mesoclinic.protocols.models import ClinicProtocol
from mesoclinic.protocols.schema import Protocol
from mesoclinic.scheduling import actions, logic, series
from mesoclinic.scheduling.actions import BookingRefused, BookingRequest, Refusal
from mesoclinic.scheduling.hours import Hours
from mesoclinic.scheduling.models import (
    Appointment,
    AppointmentOverlap,
    Room,
)
from mesoclinic.scheduling.series import ANY_TIME, Anchor, Interval, Placed, Preferences, VisitSpec

OPEN = (Appointment.Status.BOOKED, Appointment.Status.CONFIRMED)
ALREADY_BOOKED = "Every visit of this course is already booked or done."
MAINTENANCE_BOOKED = "A maintenance visit is already booked."
SESSION_KINDS = (Appointment.Kind.SESSION,)


# Free time.


def _local_span(day: dt.date, span: logic.Span, tz: dt.tzinfo) -> Interval:
    return Interval(
        dt.datetime.combine(day, span[0], tzinfo=tz).astimezone(dt.UTC),
        dt.datetime.combine(day, span[1], tzinfo=tz).astimezone(dt.UTC),
    )


def _days(start: dt.datetime, end: dt.datetime, tz: dt.tzinfo) -> Iterator[dt.date]:
    day, last = start.astimezone(tz).date(), end.astimezone(tz).date()
    while day <= last:
        yield day
        day += dt.timedelta(days=1)


def _minus(free: list[Interval], busy: Iterable[tuple[dt.datetime, dt.datetime]]) -> list[Interval]:
    return series.without(
        free, [Interval(s.astimezone(dt.UTC), e.astimezone(dt.UTC)) for s, e in busy]
    )


def _intersect(a: list[Interval], b: list[Interval]) -> list[Interval]:
    out = []
    for x in a:
        for y in b:
            start, end = max(x.start, y.start), min(x.end, y.end)
            if start < end:
                out.append(Interval(start, end))
    return sorted(out, key=lambda i: i.start)


@dataclass
class Calendar:
    """The clinic's hours between two moments, read once: opening hours, holidays, and each
    practitioner's template and exceptions. `free(user)` is their working time inside the
    clinic's opening hours, minus holidays and active appointments (except `ignore`)."""

    clinic: Clinic
    start: dt.datetime
    end: dt.datetime
    ignore: frozenset[int] = frozenset()
    patient_id: int | None = None  # whose other visits are not free time either
    _rooms: list[int] | None = None
    _hours: Hours | None = None
    _room_free: dict[int, list[Interval]] | None = None

    @property
    def hours(self) -> Hours:
        if self._hours is None:
            tz = self.clinic.tz
            first, last = self.start.astimezone(tz).date(), self.end.astimezone(tz).date()
            self._hours = Hours.load(self.clinic, (), first, last)
        return self._hours

    def _open_days(self) -> Iterator[dt.date]:
        for day in _days(self.start, self.end, self.clinic.tz):
            if self.hours.open_on(day):
                yield day

    def working(self, user_id: int) -> list[Interval]:
        """The practitioner's working intervals inside opening hours, in UTC."""
        self.hours.add_users([user_id])
        tz = self.clinic.tz
        return self._clip(
            [
                _local_span(day, span, tz)
                for day in self._open_days()
                for span in self.hours.available(user_id, day)
            ]
        )

    def _clip(self, intervals: list[Interval]) -> list[Interval]:
        start, end = self.start.astimezone(dt.UTC), self.end.astimezone(dt.UTC)
        return [
            Interval(max(i.start, start), min(i.end, end))
            for i in intervals
            if i.end > start and i.start < end
        ]

    def _busy(self, q: Q) -> list[tuple[dt.datetime, dt.datetime]]:
        return list(
            Appointment.objects.filter(q, starts_at__lt=self.end, ends_at__gt=self.start)
            .exclude(status__in=Appointment.INACTIVE)
            .exclude(pk__in=self.ignore)
            .values_list("starts_at", "ends_at")
        )

    def free(self, user_id: int) -> list[Interval]:
        busy = Q(practitioner_id=user_id)
        if self.patient_id is not None:
            busy |= Q(patient_id=self.patient_id)
        free = _minus(self.working(user_id), self._busy(busy))
        rooms = self.room_ids()
        if rooms:
            free = _intersect(free, self.any_room_free())
        return free

    def room_ids(self) -> list[int]:
        if self._rooms is None:
            self._rooms = list(
                Room.objects.filter(clinic=self.clinic, active=True).values_list("pk", flat=True)
            )
        return self._rooms

    def _open_hours(self) -> list[Interval]:
        tz = self.clinic.tz
        return self._clip(
            [
                _local_span(day, span, tz)
                for day in self._open_days()
                for span in self.hours.open_on(day)
            ]
        )

    def room_free(self, room_id: int) -> list[Interval]:
        """The room's free time inside opening hours. The active rooms' are worked out
        together the first time one is asked for (one query for all their visits), then
        kept: each room's free time is asked for when proposing and again when assigning."""
        rooms = self.room_ids()
        if room_id not in rooms:
            return _minus(self._open_hours(), self._busy(Q(room_id=room_id)))
        if self._room_free is None:
            busy: dict[int, list[tuple[dt.datetime, dt.datetime]]] = defaultdict(list)
            for room, starts_at, ends_at in (
                Appointment.objects.filter(
                    room_id__in=rooms, starts_at__lt=self.end, ends_at__gt=self.start
                )
                .exclude(status__in=Appointment.INACTIVE)
                .exclude(pk__in=self.ignore)
                .values_list("room_id", "starts_at", "ends_at")
            ):
                busy[room].append((starts_at, ends_at))
            hours = self._open_hours()
            self._room_free = {room: _minus(hours, busy[room]) for room in rooms}
        return list(self._room_free[room_id])

    def any_room_free(self) -> list[Interval]:
        """When at least one room is free (merged across rooms; a visit that only fits by
        changing rooms halfway is caught when a room is assigned)."""
        spans = sorted(
            (i for room in self.room_ids() for i in self.room_free(room)), key=lambda i: i.start
        )
        merged: list[Interval] = []
        for i in spans:
            if merged and i.start <= merged[-1].end:
                merged[-1] = Interval(merged[-1].start, max(merged[-1].end, i.end))
            else:
                merged.append(i)
        return merged


class FreeTime(Mapping[int, list[Interval]]):
    """Each practitioner's free time, computed the first time it is asked for: booking a
    course usually needs only the patient's own practitioner, not the whole clinic."""

    def __init__(self, calendar: Calendar, practitioners: Sequence[int]):
        self.calendar = calendar
        self.practitioners = list(practitioners)
        self._cache: dict[int, list[Interval]] = {}

    def __getitem__(self, user_id: int) -> list[Interval]:
        if user_id not in self.practitioners:
            raise KeyError(user_id)
        if user_id not in self._cache:
            self._cache[user_id] = self.calendar.free(user_id)
        return self._cache[user_id]

    def __iter__(self) -> Iterator[int]:
        return iter(self.practitioners)

    def __len__(self) -> int:
        return len(self.practitioners)


def practitioners_of(clinic: Clinic) -> list[User]:
    return list(
        User.objects.filter(
            memberships__clinic=clinic,
            memberships__role__in=[Membership.Role.MANAGER, Membership.Role.PRACTITIONER],
            is_active=True,
        )
        .distinct()
        .order_by("first_name", "last_name", "username")
    )


def assign_rooms(
    calendar: Calendar, visits: Sequence[Placed]
) -> tuple[list[int | None], list[str]]:
    """A room for each visit: the first active room free for the whole visit, counting the
    visits before it. None for every visit when the clinic keeps no rooms."""
    rooms = calendar.room_ids()
    if not rooms:
        return [None] * len(visits), []
    free = {room: calendar.room_free(room) for room in rooms}
    out: list[int | None] = []
    problems: list[str] = []
    tz = calendar.clinic.tz
    for visit in visits:
        room = next(
            (
                r
                for r in rooms
                if any(g.start <= visit.start and visit.end <= g.end for g in free[r])
            ),
            None,
        )
        if room is None:
            problems.append(f"No room is free for the {_visit_words(visit, tz)}.")
        else:
            free[room] = series.take(free[room], visit.start, visit.end)
        out.append(room)
    return out, problems


def _visit_words(visit: Placed, tz: dt.tzinfo) -> str:
    local = visit.start.astimezone(tz)
    return (
        f"{visit.spec.kind.replace('_', ' ')} at {logic.clock(local)} on {logic.day_words(local)}"
    )


# Booking a course.


def rules_of(course: Course) -> series.Rules:
    return _rules(course.spec, course.cadence_days)


def _rules(spec: Protocol, cadence_days: int) -> series.Rules:
    return series.Rules(
        cadence=dt.timedelta(days=cadence_days),
        tolerance=dt.timedelta(days=spec.cadence.tolerance_days.v),
        test_wait=dt.timedelta(hours=spec.allergy_test.wait_hours.v),
    )


@dataclass(frozen=True)
class Remaining:
    """What a course still needs booked: the visits, and the last visit already held or
    booked that they follow."""

    visits: list[VisitSpec]
    after: Anchor | None
    readable_from: dt.datetime | None = None


def remaining(course: Course) -> Remaining:
    """The allergy test visit when no test has been given or booked, then every planned
    session neither done nor booked."""
    return remaining_from(
        course,
        Session.objects.filter(course=course, kind=Session.Kind.COURSE),
        list(AllergyTest.objects.filter(course=course).order_by("given_at")),
        Appointment.objects.filter(
            course=course,
            status__in=OPEN,
            kind__in=[Appointment.Kind.ALLERGY_TEST, Appointment.Kind.SESSION],
        ),
    )


def remaining_from(
    course: Course,
    sessions: Iterable[Session],
    tests: list[AllergyTest],
    appointments: Iterable[Appointment],
) -> Remaining:
    """`remaining` from the course's records already read: its sessions by time, its allergy
    tests by time given and its appointments by start, of every kind and status (the chart
    reads them once for all of a patient's courses); no query."""
    spec = course.spec
    n_areas = len(course.areas or [])
    held: list[Anchor] = [
        Anchor(logic.SESSION, s.performed_at) for s in sessions if s.kind == Session.Kind.COURSE
    ]
    held += [Anchor(logic.ALLERGY_TEST, t.given_at) for t in tests]
    bookable = (Appointment.Kind.ALLERGY_TEST, Appointment.Kind.SESSION)
    booked = [a for a in appointments if a.status in OPEN and a.kind in bookable]
    held += [Anchor(a.kind, a.starts_at) for a in booked]
    visits: list[VisitSpec] = []
    if not tests and not any(a.kind == logic.ALLERGY_TEST for a in booked):
        visits.append(
            VisitSpec(logic.ALLERGY_TEST, logic.duration(logic.ALLERGY_TEST, spec, n_areas))
        )
    sessions_held = sum(1 for h in held if h.kind == logic.SESSION)
    session = VisitSpec(logic.SESSION, logic.duration(logic.SESSION, spec, n_areas))
    visits += [session] * max(course.planned_sessions - sessions_held, 0)
    after = max(held, key=lambda h: h.start) if held else None
    readable = (
        tests[-1].given_at + dt.timedelta(hours=spec.allergy_test.wait_hours.v) if tests else None
    )
    return Remaining(visits, after, readable)


@dataclass
class CoursePlan:
    course: Course
    visits: list[Placed]
    rooms: list[int | None]
    problems: list[str]
    practitioners: dict[int, User]
    # Each visit that could not keep the practitioner or the preferred days and times asked
    # for, and why, in words: shown before booking, and booked only once accepted.
    changes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.problems

    def rows(self) -> list[dict[str, Any]]:
        tz = self.course.clinic.tz
        return [
            {
                "kind": v.spec.kind,
                "starts_at": v.start.astimezone(tz),
                "ends_at": v.end.astimezone(tz),
                "practitioner": self.practitioners[v.practitioner],
                "room_id": room,
            }
            for v, room in zip(self.visits, self.rooms, strict=True)
        ]


def propose_course(
    course: Course,
    *,
    practitioner: User | None = None,
    not_before: dt.datetime | None = None,
    prefs: Preferences = ANY_TIME,
) -> CoursePlan:
    """Every visit the course still needs, placed in free time: the chosen practitioner
    (else whoever gave its last session, else the course's creator) first, then the
    clinic's others only where the first has no room."""
    clinic = course.clinic
    now = timezone.now()
    not_before = max(not_before or now, now)
    todo = remaining(course)
    if todo.readable_from is not None and not any(
        v.kind == logic.ALLERGY_TEST for v in todo.visits
    ):
        not_before = max(not_before, todo.readable_from)
    staff = practitioners_of(clinic)
    by_id = {u.pk: u for u in staff}
    first = practitioner or _usual_practitioner(course, by_id)
    order = [first.pk] if first is not None and first.pk in by_id else []
    order += [u.pk for u in staff if u.pk not in order]
    order = _licensed(clinic, order, not_before)
    if not todo.visits:
        return CoursePlan(course, [], [], [ALREADY_BOOKED], by_id)
    rules = rules_of(course)
    # Far enough for the whole series, from the later of now and the last visit held.
    start = max(not_before, todo.after.start) if todo.after else not_before
    horizon = start + rules.first_within + (rules.cadence + rules.tolerance) * len(todo.visits)
    calendar = Calendar(clinic, not_before, horizon, patient_id=course.patient_id)
    proposal = series.propose(
        todo.visits,
        not_before=not_before,
        rules=rules,
        practitioners=order,
        free=FreeTime(calendar, order),
        tz=clinic.tz,
        prefs=prefs,
        after=todo.after,
    )
    rooms, room_problems = assign_rooms(calendar, proposal.visits)
    changes = course_changes(
        proposal.visits,
        chosen=practitioner,
        allowed=set(order),
        prefs=prefs,
        tz=clinic.tz,
        first_session=course.planned_sessions
        - sum(1 for v in todo.visits if v.kind == logic.SESSION)
        + 1,
        names=by_id,
    )
    return CoursePlan(
        course, proposal.visits, rooms, proposal.problems + room_problems, by_id, changes
    )


def course_changes(
    visits: Sequence[Placed],
    *,
    chosen: User | None,
    allowed: set[int],
    prefs: Preferences,
    tz: Any,
    first_session: int,
    names: Mapping[int, User],
) -> list[str]:
    """Each proposed visit that does not keep what was asked for: another practitioner than
    the one chosen, or a time outside the preferred days and times, with the reason."""
    out: list[str] = []
    number = first_session
    for v in visits:
        local = v.start.astimezone(tz)
        if v.spec.kind == logic.SESSION:
            what = f"Session {number} ({logic.day_words(local)} at {logic.clock(local)})"
            number += 1
        else:
            what = f"The allergy test visit ({logic.day_words(local)} at {logic.clock(local)})"
        if chosen is not None and v.practitioner != chosen.pk:
            other = names[v.practitioner].display_name
            why = (
                "has no free time that fits this visit's window"
                if chosen.pk in allowed
                else "has no valid licence for it"
            )
            out.append(f"{what} is with {other}, because {chosen.display_name} {why}.")
        if not series.preferred(v.start, prefs, tz):
            out.append(
                f"{what} is outside the preferred {prefs_words(prefs)}, because no preferred "
                "time is free in this visit's window."
            )
    return out


def prefs_words(prefs: Preferences) -> str:
    """ "days and times (Thursdays, not before 16:00)"."""
    parts = []
    if prefs.weekdays:
        parts.append(", ".join(f"{dt.date(2024, 1, 1 + d):%A}s" for d in sorted(prefs.weekdays)))
    if prefs.earliest_time:
        parts.append(f"not before {prefs.earliest_time:%H:%M}")
    if prefs.latest_time:
        parts.append(f"not after {prefs.latest_time:%H:%M}")
    return f"days and times ({'; '.join(parts)})"


def _licensed(clinic: Clinic, order: list[int], day: dt.datetime) -> list[int]:
    """Those of `order` whose licence is valid on `day`: a course is not proposed with a
    practitioner who could not give its sessions. (A licence that lapses mid-course is caught
    by the booking path, visit by visit.)"""
    until = actions.licensed_until(clinic, set(order))
    local = day.astimezone(clinic.tz).date()
    return [pk for pk in order if actions.may_give(logic.SESSION, until.get(pk), local)]


def _usual_practitioner(course: Course, by_id: dict[int, User]) -> User | None:
    last = Session.objects.filter(course=course).order_by("-performed_at").first()
    if last is not None and last.practitioner_id in by_id:
        return by_id[last.practitioner_id]
    booked = (
        Appointment.objects.filter(course=course, status__in=OPEN).order_by("-starts_at").first()
    )
    if booked is not None and booked.practitioner_id in by_id:
        return by_id[booked.practitioner_id]
    return by_id.get(course.created_by_id) if course.created_by_id else None


def do_book_course(
    course: Course,
    *,
    user: Any,
    practitioner: User | None = None,
    not_before: dt.datetime | None = None,
    prefs: Preferences = ANY_TIME,
    accept_changes: bool = False,
    seen_changes: Sequence[str] | None = None,
    via: str = "api",
) -> list[Appointment]:
    """Propose the rest of the course and book it in one transaction, all or nothing. A
    course that cannot be placed whole is refused with the reason; nothing is booked. A
    proposal that does not keep the chosen practitioner or the preferred days and times is
    refused with each change (code "changed"), unless `accept_changes` says the user saw
    and accepted them; with `seen_changes` (what the page showed), only those very changes:
    a proposal that has changed since is refused with its new changes.

    The course's row is locked first, and what is left to book is read after the lock: two
    requests booking the same course (a double click, two screens) take turns, and the second
    finds the first one's visits and is refused as already booked. Without the lock both read
    an empty course and, with different practitioners or first days, both series fit."""
    with transaction.atomic():
        course = actions.lock_courses([course.pk])[course.pk]
        if course.status not in (Course.Status.PLANNED, Course.Status.ACTIVE):
            raise BookingRefused(
                [
                    Refusal(
                        "invalid",
                        f"A {course.get_status_display().lower()} course takes no bookings.",
                    )
                ]
            )
        plan = propose_course(course, practitioner=practitioner, not_before=not_before, prefs=prefs)
        if not plan.visits and plan.problems == [ALREADY_BOOKED]:
            raise BookingRefused([Refusal("already_booked", ALREADY_BOOKED)])
        if not plan.complete:
            raise BookingRefused([Refusal("no_free_time", p) for p in plan.problems])
        unseen = seen_changes is not None and list(seen_changes) != plan.changes
        if plan.changes and (not accept_changes or unseen):
            raise BookingRefused([Refusal("changed", c) for c in plan.changes])
        rooms = {r.pk: r for r in Room.objects.filter(pk__in=[r for r in plan.rooms if r])}
        requests = [
            BookingRequest(
                patient=course.patient,
                kind=v.spec.kind,
                practitioner=plan.practitioners[v.practitioner],
                starts_at=v.start,
                ends_at=v.end,
                course=course,
                room=rooms.get(room) if room else None,
            )
            for v, room in zip(plan.visits, plan.rooms, strict=True)
        ]
        return actions.do_book_many(requests, user=user, via=via)


# Numbering a course's session visits.


def session_labels(appointments: Iterable[Appointment]) -> dict[int, str]:
    """ "Session 3 of 15" for each active session visit of a course among `appointments`
    (see number_sessions). Three queries whatever the number of courses."""
    wanted = [
        a for a in appointments if a.kind == Appointment.Kind.SESSION and a.course_id and a.active
    ]
    course_ids = {a.course_id for a in wanted if a.course_id is not None}
    if not course_ids:
        return {}
    planned = dict(Course.objects.filter(pk__in=course_ids).values_list("pk", "planned_sessions"))
    visits: dict[int, list[Appointment]] = defaultdict(list)
    for a in Appointment.objects.filter(
        course_id__in=course_ids, kind=Appointment.Kind.SESSION
    ).only("pk", "course_id", "kind", "status", "starts_at", "session_id"):
        visits[a.course_id].append(a)  # type: ignore[index]
    sessions: dict[int, list[Session]] = defaultdict(list)
    for session in Session.objects.filter(course_id__in=course_ids).only(
        "pk", "course_id", "kind", "performed_at"
    ):
        sessions[session.course_id].append(session)
    out: dict[int, str] = {}
    for course_id in course_ids:
        out |= number_sessions(visits[course_id], sessions[course_id], planned[course_id])
    wanted_ids = {a.pk for a in wanted}
    return {pk: label for pk, label in out.items() if pk in wanted_ids}


def number_sessions(
    visits: Iterable[Appointment], sessions: Iterable[Session], planned: int
) -> dict[int, str]:
    """ "Session 3 of 15" for each active session visit of one course, by the order of time
    of its sessions: those charted without a visit, and its active session visits (charted or
    still to come). A cancelled or missed visit gets no number. No query: the chart passes
    what it has read."""
    visits = [v for v in visits if v.kind == Appointment.Kind.SESSION]
    linked = {v.session_id for v in visits if v.session_id}
    timeline: list[tuple[dt.datetime, int | None]] = [
        (v.starts_at, v.pk) for v in visits if v.active
    ]
    timeline += [
        (s.performed_at, None)
        for s in sessions
        if s.kind == Session.Kind.COURSE and s.pk not in linked
    ]
    timeline.sort(key=lambda v: (v[0], v[1] or 0))
    return {
        visit_id: f"Session {n} of {planned}"
        for n, (_, visit_id) in enumerate(timeline, start=1)
        if visit_id is not None
    }


def booked_visits(course: Course) -> list[dict[str, Any]]:
    """The course's visits booked and not yet held (booked, confirmed or arrived), by time,
    each with its words ("Session 3 of 15", "Allergy test visit"), its local start and the
    practitioner's name: what the plan the patient takes home lists as booked."""
    tz = course.clinic.tz
    visits = list(
        Appointment.objects.filter(
            course=course,
            status__in=(*OPEN, Appointment.Status.ARRIVED),
        )
        .select_related("practitioner")
        .order_by("starts_at")
    )
    labels = session_labels(visits)
    return [
        {
            "label": labels.get(a.pk) or str(a.get_kind_display()),
            "starts_at": a.starts_at.astimezone(tz),
            "ends_at": a.ends_at.astimezone(tz),
            "practitioner": a.practitioner.display_name,
        }
        for a in visits
    ]


# Moving a visit.


@dataclass(frozen=True)
class Change:
    appointment: Appointment
    starts_at: dt.datetime
    ends_at: dt.datetime
    practitioner_id: int

    @property
    def moved(self) -> bool:
        return (
            self.starts_at != self.appointment.starts_at
            or self.practitioner_id != self.appointment.practitioner_id
        )


@dataclass
class MovePlan:
    changes: list[Change]
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def _chain(appointment: Appointment) -> tuple[Anchor | None, list[Appointment]]:
    """The course's visit before this one (held or booked), and its open visits after it."""
    if appointment.course_id is None:
        return None, []
    course_visits = [
        Appointment.Kind.ALLERGY_TEST,
        Appointment.Kind.SESSION,
    ]
    later = list(
        Appointment.objects.filter(
            course_id=appointment.course_id,
            status__in=OPEN,
            kind__in=course_visits,
            starts_at__gt=appointment.starts_at,
        )
        .exclude(pk=appointment.pk)
        .order_by("starts_at")
    )
    before: list[Anchor] = [
        Anchor(a.kind, a.starts_at)
        for a in Appointment.objects.filter(
            course_id=appointment.course_id,
            kind__in=course_visits,
            starts_at__lt=appointment.starts_at,
        )
        .exclude(status__in=Appointment.INACTIVE)
        .exclude(pk=appointment.pk)
    ]
    before += [
        Anchor(logic.SESSION, s.performed_at)
        for s in Session.objects.filter(
            course_id=appointment.course_id,
            kind=Session.Kind.COURSE,
            performed_at__lt=appointment.starts_at,
        )
    ]
    before += [
        Anchor(logic.ALLERGY_TEST, t.given_at)
        for t in AllergyTest.objects.filter(
            course_id=appointment.course_id, given_at__lt=appointment.starts_at
        )
    ]
    previous = max(before, key=lambda a: a.start) if before else None
    return previous, later


def fits(start: dt.datetime, window: Interval) -> bool:
    """Whether a visit starting at `start` lies in `window`."""
    return window.start <= start.astimezone(dt.UTC) <= window.end


def plan_move(
    appointment: Appointment,
    starts_at: dt.datetime,
    *,
    practitioner: User | None = None,
) -> MovePlan:
    """Move one visit, and shift each later visit of its course that would fall outside its
    cadence window, to the free time nearest its new due date with the same practitioner.
    A visit that cannot keep its window is named in `problems`; the caller shows them and
    books nothing unless the front desk accepts the break."""
    clinic = appointment.clinic
    tz = clinic.tz
    who = practitioner.pk if practitioner is not None else appointment.practitioner_id
    new = Change(appointment, starts_at, starts_at + appointment.duration, who)
    changes = [new]
    problems: list[str] = []
    previous, later = _chain(appointment)
    course = appointment.course
    if course is None:
        return MovePlan(changes, problems)
    rules = rules_of(course)
    if previous is not None and appointment.kind == logic.SESSION:
        window, _ = series.window_after(previous, rules, tz)
        if not fits(starts_at, window):
            problems.append(
                f"The new time is outside this session's window after the visit before it "
                f"({_interval_words(window, tz)})."
            )
    if not later:
        return MovePlan(changes, problems)
    moving = frozenset([appointment.pk, *(a.pk for a in later)])
    horizon = starts_at + (rules.cadence + rules.tolerance) * (len(later) + 1) + rules.first_within
    calendar = Calendar(
        clinic, timezone.now(), horizon, ignore=moving, patient_id=appointment.patient_id
    )
    free: dict[int, list[Interval]] = {}
    anchor = Anchor(appointment.kind, starts_at)

    def free_of(user_id: int) -> list[Interval]:
        if user_id not in free:
            free[user_id] = calendar.free(user_id)
        return free[user_id]

    free[who] = series.take(free_of(who), new.starts_at, new.ends_at)
    for visit in later:
        window, due = series.window_after(anchor, rules, tz)
        if fits(visit.starts_at, window):
            start, user_id = visit.starts_at, visit.practitioner_id
            free[user_id] = series.take(free_of(user_id), start, visit.ends_at)
        else:
            spec = VisitSpec(visit.kind, visit.duration)
            placed = series.place(spec, window, due, [visit.practitioner_id], free_of, ANY_TIME, tz)
            if placed is None:
                problems.append(
                    f"The {_what(visit, tz)} cannot keep its window "
                    f"({_interval_words(window, tz)}): {_busy_words(visit)}."
                )
                start, user_id = visit.starts_at, visit.practitioner_id
            else:
                start, user_id = placed.start, placed.practitioner
                free[user_id] = series.take(free_of(user_id), placed.start, placed.end)
        changes.append(Change(visit, start, start + visit.duration, user_id))
        anchor = Anchor(visit.kind, start)
    return MovePlan(changes, problems)


def _busy_words(visit: Appointment) -> str:
    minutes = int(visit.duration.total_seconds() // 60)
    return f"{visit.practitioner.display_name} has no free {minutes} minutes in it"


def _what(a: Appointment, tz: dt.tzinfo) -> str:
    local = a.starts_at.astimezone(tz)
    return f"{a.get_kind_display().lower()} on {logic.day_words(local)} at {logic.clock(local)}"


def _interval_words(window: Interval, tz: dt.tzinfo) -> str:
    start, end = window.start.astimezone(tz), window.end.astimezone(tz)
    return (
        f"{logic.day_words(start)} {logic.clock(start)} to "
        f"{logic.day_words(end)} {logic.clock(end)}"
    )


def do_move(
    appointment: Appointment,
    starts_at: dt.datetime,
    *,
    user: Any,
    practitioner: User | None = None,
    accept_break: bool = False,
    via: str = "api",
) -> list[Appointment]:
    """Move a visit and shift the later visits of its course to keep their windows, in one
    transaction. Refused with every conflict when a window cannot be kept, unless
    `accept_break`: then the visits that cannot move stay where they are, the break is
    audited, and the Today page flags the course."""
    with transaction.atomic():
        # The course first, as every booking of it does, then the visit: a move re-plans the
        # course's later visits, which a booking or another move of the course must not
        # change underneath it.
        course_id = (
            Appointment.objects.filter(pk=appointment.pk)
            .values_list("course_id", flat=True)
            .first()
        )
        actions.lock_courses([course_id])
        fresh = (
            Appointment.objects.select_for_update(of=("self",))
            .select_related("clinic", "course", "practitioner")
            .get(pk=appointment.pk)
        )
        if fresh.status not in OPEN:
            raise BookingRefused(
                [
                    Refusal(
                        "invalid",
                        f"{actions.status_words(fresh)} appointment cannot be moved.",
                    )
                ]
            )
        if timezone.is_naive(starts_at):
            raise BookingRefused([Refusal("invalid", "Give times with their time zone.")])
        if starts_at < timezone.now():
            raise BookingRefused(
                [Refusal("invalid", "An appointment cannot be moved into the past.")]
            )
        if (
            practitioner is not None
            and not Membership.objects.filter(
                clinic_id=fresh.clinic_id,
                user=practitioner,
                role__in=[Membership.Role.MANAGER, Membership.Role.PRACTITIONER],
            ).exists()
        ):
            raise BookingRefused(
                [
                    Refusal(
                        "invalid",
                        f"{practitioner.display_name} is not a practitioner of this clinic.",
                    )
                ]
            )
        plan = plan_move(fresh, starts_at, practitioner=practitioner)
        if plan.problems and not accept_break:
            raise BookingRefused([Refusal("cadence", p) for p in plan.problems])
        return _apply(fresh.clinic, [c for c in plan.changes if c.moved], plan.problems, user, via)


def _apply(
    clinic: Clinic, changes: list[Change], broken: list[str], user: Any, via: str
) -> list[Appointment]:
    """Write moves with the booking path's checks. The moving rows are first set aside
    (cancelled, inside this transaction only), so a chain shifting onto its own old times
    never trips the overlap constraint half-way; each then returns at its new time and is
    checked against everything else."""
    if not changes:
        return []
    rows = []
    for change in changes:
        a = change.appointment
        a.starts_at, a.ends_at = change.starts_at, change.ends_at
        a.practitioner_id = change.practitioner_id
        a.room_id = _room_for(clinic, a, {c.appointment.pk for c in changes})
        rows.append(a)
    refusals = actions.calendar_refusals(clinic, rows)
    if refusals:
        raise BookingRefused(refusals)
    statuses = {a.pk: a.status for a in rows}
    old = {
        a["pk"]: a
        for a in Appointment.objects.filter(pk__in=statuses).values(
            "pk", "starts_at", "practitioner_id"
        )
    }
    Appointment.objects.filter(pk__in=statuses).update(status=Appointment.Status.CANCELLED)
    for a in rows:
        a.status = statuses[a.pk]
        try:
            a.save(update_fields=["starts_at", "ends_at", "practitioner", "room", "status"])
        except AppointmentOverlap as exc:
            raise BookingRefused(
                [Refusal(_overlap_code(a, exc.conflicts[0]), ANOTHER_BOOKING)]
            ) from exc
        except IntegrityError as exc:
            # A booking that committed after the checks above (PostgreSQL's constraint).
            code = actions.exclusion_code(exc)
            if code is None:
                raise
            raise BookingRefused([Refusal(code, ANOTHER_BOOKING)]) from exc
        audit(
            clinic=clinic,
            user=user,
            action=AuditEvent.Action.UPDATE,
            obj=a,
            patient_id=a.patient_id,
            via=via,
            moved_from=old[a.pk]["starts_at"].isoformat(),
            starts_at=a.starts_at.isoformat(),
            practitioner=a.practitioner_id,
            previous_practitioner=old[a.pk]["practitioner_id"],
            cadence_break_accepted=broken,
        )
    return rows


ANOTHER_BOOKING = "Another booking took this time a moment ago."


def _overlap_code(a: Appointment, other: Appointment) -> str:
    if other.practitioner_id == a.practitioner_id:
        return "practitioner_busy"
    if other.patient_id == a.patient_id:
        return "patient_busy"
    return "room_taken"


def _room_for(clinic: Clinic, a: Appointment, moving: set[int]) -> int | None:
    """Keep the room when it is free at the new time, else the first free one."""
    rooms = list(Room.objects.filter(clinic=clinic, active=True).values_list("pk", flat=True))
    if not rooms:
        return None
    taken = set(
        Appointment.objects.filter(
            room_id__in=rooms, starts_at__lt=a.ends_at, ends_at__gt=a.starts_at
        )
        .exclude(status__in=Appointment.INACTIVE)
        .exclude(pk__in=moving)
        .values_list("room_id", flat=True)
    )
    if a.room_id in rooms and a.room_id not in taken:
        return a.room_id
    return next((r for r in rooms if r not in taken), a.room_id)


# The next free slot and the maintenance visit.


def next_free_slot(
    clinic: Clinic,
    practitioner: User,
    duration: dt.timedelta,
    *,
    not_before: dt.datetime | None = None,
    within: dt.timedelta = dt.timedelta(days=28),
    prefs: Preferences = ANY_TIME,
    patient: Patient | None = None,
    kind: str | None = None,
) -> dt.datetime | None:
    """The first start on the 15-minute grid where the practitioner (and a room, and the
    patient when given) is free for `duration`, preferring the patient's days and times;
    None within `within`. For a visit of `kind` where the practitioner injects, only days
    their licence covers (actions.may_give, the booking path's own rule)."""
    start = max(not_before or timezone.now(), timezone.now())
    calendar = Calendar(clinic, start, start + within, patient_id=patient.pk if patient else None)
    free = calendar.free(practitioner.pk)
    starts = series.starts_in(
        free, Interval(start.astimezone(dt.UTC), (start + within).astimezone(dt.UTC)), duration
    )
    if kind is not None and kind in actions.INJECTING:
        expires = actions.licensed_until(clinic, {practitioner.pk}).get(practitioner.pk)
        starts = [
            s for s in starts if actions.may_give(kind, expires, s.astimezone(clinic.tz).date())
        ]
    if not starts:
        return None
    preferred = [s for s in starts if series.preferred(s, prefs, clinic.tz)]
    return (preferred or starts)[0].astimezone(clinic.tz)


def maintenance_due(
    course: Course,
    *,
    sessions: Sequence[Session] | None = None,
    visits: Sequence[Appointment] | None = None,
) -> tuple[Session, dict[str, str]] | None:
    """For a completed course with no maintenance visit booked, its last session and the
    protocol's maintenance window after it ({"from", "to"} as ISO days); else None. No slot
    search: the chart shows the window from this, and booking finds the time.

    `sessions` and `visits`, when given, are the course's sessions and visits already read."""
    if course.status not in (Course.Status.COMPLETED, Course.Status.MAINTENANCE):
        return None
    if visits is not None:
        booked = any(a.kind == Appointment.Kind.MAINTENANCE and a.status in OPEN for a in visits)
    else:
        booked = Appointment.objects.filter(
            course=course, kind=Appointment.Kind.MAINTENANCE, status__in=OPEN
        ).exists()
    if booked:
        return None
    if sessions is not None:
        last = max(sessions, key=lambda s: s.performed_at, default=None)
    else:
        last = Session.objects.filter(course=course).order_by("-performed_at").first()
    if last is None:
        return None
    local_day = last.performed_at.astimezone(course.clinic.tz).date()
    return last, course_logic.maintenance_window(local_day, course.spec)


def propose_maintenance(
    course: Course,
    *,
    sessions: Sequence[Session] | None = None,
    visits: Sequence[Appointment] | None = None,
) -> CoursePlan | None:
    """For a completed course, a maintenance visit in the protocol's window after the last
    session (6–8 months for the shipped protocols), with the course's practitioner. None
    when the course is not completed or a maintenance visit is already booked
    (`maintenance_due`)."""
    due = maintenance_due(course, sessions=sessions, visits=visits)
    if due is None:
        return None
    last, window = due
    tz = course.clinic.tz
    start = dt.datetime.combine(dt.date.fromisoformat(window["from"]), dt.time(0), tzinfo=tz)
    end = dt.datetime.combine(dt.date.fromisoformat(window["to"]), dt.time(23, 59), tzinfo=tz)
    start = max(start, timezone.now())
    staff = {u.pk: u for u in practitioners_of(course.clinic)}
    order = [last.practitioner_id] if last.practitioner_id in staff else []
    order += [pk for pk in staff if pk not in order]
    order = _licensed(course.clinic, order, start)
    calendar = Calendar(course.clinic, start, end, patient_id=course.patient_id)
    spec = VisitSpec(
        logic.MAINTENANCE, logic.duration(logic.MAINTENANCE, course.spec, len(course.areas or []))
    )
    target = _same_clock(start, last.performed_at, tz)
    placed = series.place(
        spec,
        Interval(start, end),
        target,
        order,
        FreeTime(calendar, order).__getitem__,
        Preferences(),
        tz,
    )
    if placed is None:
        problem = (
            f"No free time for a maintenance visit between {window['from']} and {window['to']}."
        )
        return CoursePlan(course, [], [], [problem], staff)
    rooms, problems = assign_rooms(calendar, [placed])
    return CoursePlan(course, [placed], rooms, problems, staff)


def _same_clock(day: dt.datetime, clock_of: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    local = clock_of.astimezone(tz)
    return dt.datetime.combine(day.astimezone(tz).date(), local.time(), tzinfo=tz)


def do_book_maintenance(course: Course, *, user: Any, via: str = "api") -> Appointment:
    """Book the proposed maintenance visit. The course's row is locked before the course's
    visits are read, so two requests at once book one visit: the second finds it booked."""
    with transaction.atomic():
        course = actions.lock_courses([course.pk])[course.pk]
        plan = propose_maintenance(course)
        if plan is None:
            if course.status in (Course.Status.COMPLETED, Course.Status.MAINTENANCE):
                raise BookingRefused([Refusal("already_booked", MAINTENANCE_BOOKED)])
            raise BookingRefused(
                [Refusal("invalid", "This course has no maintenance visit to book.")]
            )
        if not plan.complete:
            raise BookingRefused([Refusal("no_free_time", p) for p in plan.problems])
        visit, room = plan.visits[0], plan.rooms[0]
        return actions.do_book(
            course.patient,
            kind=logic.MAINTENANCE,
            practitioner=plan.practitioners[visit.practitioner],
            starts_at=visit.start,
            ends_at=visit.end,
            course=course,
            room=Room.objects.get(pk=room) if room else None,
            user=user,
            via=via,
        )


# Broken cadence.


@dataclass(frozen=True)
class CadenceFlag:
    course: Course
    message: str


@dataclass(frozen=True)
class CourseTimes:
    """A course's sessions as Today's work lists judge them, from plain values: how many
    sessions of the course were given and when the last was (`held`, `last_held`: cadence),
    and when the last session of any kind was (`last_at`: what is due next)."""

    pk: int
    status: str
    protocol_id: int
    cadence_days: int
    planned: int
    held: int
    last_held: dt.datetime | None
    last_at: dt.datetime


# The courses Today's "due" and "cadence" lists look at: a course under way, and one completed
# (or in maintenance) whose maintenance may be due.
TIMED = (Course.Status.ACTIVE, Course.Status.COMPLETED, Course.Status.MAINTENANCE)


def course_times(clinic: Clinic) -> list[CourseTimes]:
    """Every course of TIMED with a session, in one query for the whole clinic: Today's due
    and cadence lists both read it, once."""
    course = Q(sessions__kind=Session.Kind.COURSE)
    return [
        CourseTimes(*row)
        for row in Course.objects.filter(clinic=clinic, status__in=TIMED)
        .annotate(
            held=Count("sessions", filter=course),
            last_held=Max("sessions__performed_at", filter=course),
            last_at=Max("sessions__performed_at"),
        )
        .filter(last_at__isnull=False)
        # The courses' own order (newest first): Today shows the first flags in it.
        .order_by("-created_at", "-id")
        .values_list(
            "id",
            "status",
            "protocol_id",
            "cadence_days",
            "planned_sessions",
            "held",
            "last_held",
            "last_at",
        )
    ]


def cadence_flags(
    clinic: Clinic,
    now: dt.datetime,
    specs: dict[int, Protocol] | None = None,
    times: list[CourseTimes] | None = None,
) -> list[CadenceFlag]:
    """Active courses whose cadence is broken: a session missed or cancelled and not
    rebooked inside its window, a window passed with nothing booked, or a booked session
    outside its window. Three queries for the whole clinic, two when `times` (course_times)
    is given.

    Today calls it on every load, so the whole clinic is read as plain values (courses with
    their sessions' count and last time, visits as (status, start) pairs), each protocol
    version is validated once (`specs`, as Today reads them) and each cadence's rules are
    built once; only the courses flagged are read as objects, with their patients."""
    tz = clinic.tz
    if specs is None:
        specs = ClinicProtocol.specs_of(clinic)
    active = [
        t
        for t in (times if times is not None else course_times(clinic))
        if t.status == Course.Status.ACTIVE and t.last_held is not None and t.held < t.planned
    ]
    if not active:
        return []
    # A missed or cancelled visit counts only after the last session and inside its window,
    # so older ones are not read: none is further back than the longest cadence and tolerance.
    longest = max(t.cadence_days for t in active)
    longest += max((spec.cadence.tolerance_days.v for spec in specs.values()), default=0)
    missed_since = now - dt.timedelta(days=longest + 1)
    booked: dict[int, list[dt.datetime]] = defaultdict(list)
    missed: dict[int, list[tuple[dt.datetime, str]]] = defaultdict(list)
    for course_id, status, starts_at in (
        Appointment.objects.filter(
            course__clinic=clinic,
            course__status=Course.Status.ACTIVE,
            kind=Appointment.Kind.SESSION,
        )
        .filter(
            Q(status__in=OPEN, starts_at__gte=now)
            | Q(status__in=Appointment.INACTIVE, starts_at__gte=missed_since)
        )
        .values_list("course_id", "status", "starts_at")
    ):
        if status in OPEN:
            booked[course_id].append(starts_at)
        else:
            missed[course_id].append((starts_at, status))
    rules_for: dict[tuple[int, int], series.Rules] = {}
    found: list[tuple[int, str]] = []
    for t in active:
        assert t.last_held is not None
        key = (t.protocol_id, t.cadence_days)
        if key not in rules_for:
            rules_for[key] = _rules(specs[t.protocol_id], t.cadence_days)
        message = _cadence_broken(
            t.held, t.last_held, booked[t.pk], missed[t.pk], rules_for[key], now, tz
        )
        if message is not None:
            found.append((t.pk, message))
    flagged = (
        Course.objects.select_related("patient")
        # Only what a flag shows: the patient's name, and their phone for Today's call button.
        .only("patient__first_name", "patient__last_name", "patient__phone")
        .in_bulk([pk for pk, _ in found])
    )
    return [CadenceFlag(flagged[pk], message) for pk, message in found]


def _cadence_broken(
    held: int,
    last: dt.datetime,
    booked: list[dt.datetime],
    missed: list[tuple[dt.datetime, str]],
    rules: series.Rules,
    now: dt.datetime,
    tz: zoneinfo.ZoneInfo,
) -> str | None:
    """How one active course's cadence is broken, in a sentence, or None if it is not: `held`
    sessions so far, the last at `last`.

    Each booked session must fall in the window after the one before it. A window's edges keep
    the wall-clock time across a change of clock (courses.logic.next_window), so in elapsed time
    they move by at most an hour: a gap more than two hours inside the edges fits whatever the
    zone does, and only a gap near an edge has its window worked out. Today asks this of every
    active course on each load, and most booked courses keep their cadence exactly."""
    number = held + 1
    upcoming = sorted(booked)
    if not upcoming:
        window, _ = series.window_after(Anchor(logic.SESSION, last), rules, tz)
        if window.end < now:
            return f"Session {number} was due by {_day(window.end, tz)}; nothing is booked."
        lost = sorted(m for m in missed if m[0] > last)
        if lost:
            what = "missed" if lost[-1][1] == Appointment.Status.NO_SHOW else "cancelled"
            return (
                f"Session {number} was {what} and is not rebooked; its window closes "
                f"{_day(window.end, tz)}."
            )
        return None
    margin = dt.timedelta(hours=2)
    surely_from = rules.cadence - rules.tolerance + margin
    surely_to = rules.cadence + rules.tolerance - margin
    previous = last
    for starts_at in upcoming:
        if not surely_from <= starts_at - previous <= surely_to:
            window, _ = series.window_after(Anchor(logic.SESSION, previous), rules, tz)
            if not fits(starts_at, window):
                return (
                    f"Session {number} is booked for {_day(starts_at, tz)}, outside its "
                    f"window ({_day(window.start, tz)} to {_day(window.end, tz)})."
                )
        previous = starts_at
        number += 1
    return None


def _day(moment: dt.datetime, tz: dt.tzinfo) -> str:
    return logic.day_words(moment.astimezone(tz))
