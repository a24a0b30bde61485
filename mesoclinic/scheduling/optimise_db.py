"""The optimiser and the database: read a clinic's calendar into optimise.py's pure model, and
apply an accepted plan.

`load()` reads what the booking path reads (actions.py): working hours with their exceptions,
the clinic's opening hours and holidays, and every active appointment that could collide with a
move, including the practitioners' appointments in other clinics. `apply()` moves the
appointments in one transaction after re-reading the calendar and re-checking the plan against
it, so a plan made from a calendar that has changed since is refused, not half applied.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent, Clinic, PractitionerLicence, audit
from mesoclinic.courses.models import AllergyTest, Course, Session
from mesoclinic.scheduling import actions, logic
from mesoclinic.scheduling import optimise as opt
from mesoclinic.scheduling.hours import Hours
from mesoclinic.scheduling.models import (
    Appointment,
    AppointmentOverlap,
)

# A charted session or a given allergy test is matched to its appointment when the two are
# this close; one without an appointment still anchors the course's next visit.
SAME_VISIT = dt.timedelta(hours=12)
OVERLAP_CONSTRAINTS = tuple(actions.EXCLUSION_CONSTRAINTS)


class PlanRefused(Exception):
    """The plan cannot be applied: the calendar changed since it was read, or a re-check found
    a rule it breaks. `problems` names them."""

    def __init__(self, message: str, problems: list[opt.Problem] | None = None):
        self.problems = problems or []
        super().__init__(message)


@dataclass(frozen=True)
class Options:
    """What the clinic chose for this run. `notice` keeps the next hours as they are: nothing
    booked in them moves, and nothing moves into them, so no patient learns of a change at the
    last minute."""

    move_confirmed: bool = False
    notice: dt.timedelta = dt.timedelta(hours=24)
    max_shift: dt.timedelta = dt.timedelta(days=7)
    weights: opt.Weights = opt.Weights()


@dataclass
class Calendar:
    clinic: Clinic
    now: dt.datetime
    options: Options
    instance: opt.Instance
    appointments: dict[int, Appointment]  # every appointment in the instance, by id
    kept_confirmed: int = 0  # confirmed appointments left where they are

    @property
    def open(self) -> list[Appointment]:
        movable = {v.id for v in self.instance.visits if v.movable}
        return [a for a in self.appointments.values() if a.pk in movable]


# Working intervals.


def working_intervals(
    clinic: Clinic, users: Collection[int], first: dt.date, last: dt.date
) -> dict[int, list[tuple[dt.datetime, dt.datetime]]]:
    """Each practitioner's working intervals from `first` to `last` (inclusive), as aware
    times: their weekly template plus extra hours, less time off, inside the clinic's opening
    hours, and nothing on a holiday. The same rules as booking (hours.Hours)."""
    tz = clinic.tz
    hours = Hours.load(clinic, users, first, last)
    out: dict[int, list[tuple[dt.datetime, dt.datetime]]] = {u: [] for u in users}
    day = first
    while day <= last:
        for user in users:
            out[user] += [
                (
                    dt.datetime.combine(day, start, tzinfo=tz),
                    dt.datetime.combine(day, end, tzinfo=tz),
                )
                for start, end in hours.available(user, day)
            ]
        day += dt.timedelta(days=1)
    return out


# Reading the calendar.


def load(clinic: Clinic, options: Options = Options(), now: dt.datetime | None = None) -> Calendar:
    """The clinic's calendar as the optimiser's instance.

    1. Open: the clinic's booked appointments (and confirmed ones with `move_confirmed`) that
       start after the notice period. Everything else is fixed.
    2. Fixed: every active appointment of the same practitioners (in any clinic), rooms and
       patients over the stretch the open ones may move in, and every earlier visit of their
       courses, with charted sessions and allergy tests that have no appointment.
    3. Working intervals and licences of the practitioners over that stretch.
    """
    now = now or timezone.now()
    release = now + options.notice
    open_ = _open(clinic, options, release)
    horizon_end = (
        max((a.ends_at for a in open_), default=now) + options.max_shift + dt.timedelta(days=1)
    )
    fixed = _fixed(open_, now, horizon_end)
    everything = open_ + fixed
    courses = {a.course_id for a in open_ if a.course_id is not None}
    anchors = _history(courses, everything)
    earliest = min([now, *(a.starts_at for a in everything), *(when for when, *_ in anchors)])
    tz = clinic.tz
    clock = opt.Clock.starting(
        now, tz, (horizon_end - now).days + 2, back=max((now - earliest).days + 2, 1)
    )
    movable = {a.pk for a in open_}
    visits = [_visit(clock, a, a.pk in movable) for a in everything]
    for n, (when, kind, who, course_id, patient_id) in enumerate(anchors, start=1):
        visits.append(
            opt.Visit(-n, kind, who, clock.minute(when), 0, course_id, patient_id, movable=False)
        )
    users = {a.practitioner_id for a in open_}
    hours = working_intervals(
        clinic, users, now.astimezone(tz).date(), horizon_end.astimezone(tz).date()
    )
    instance = opt.Instance(
        clock=clock,
        visits=tuple(visits),
        courses=_rules({v.course for v in visits if v.course is not None}),
        hours={
            u: tuple((clock.minute(s), clock.minute(e)) for s, e in spans)
            for u, spans in hours.items()
        },
        release=_first_grid_minute(clock, release),
        max_shift=int(options.max_shift.total_seconds() // 60),
        weights=options.weights,
        licence_ends=_licence_ends(clinic, clock, users),
    )
    kept = 0
    if not options.move_confirmed:
        kept = Appointment.objects.filter(
            clinic=clinic, status=Appointment.Status.CONFIRMED, starts_at__gte=release
        ).count()
    return Calendar(
        clinic=clinic,
        now=now,
        options=options,
        instance=instance,
        appointments={a.pk: a for a in everything},
        kept_confirmed=kept,
    )


RELATED = ("patient", "practitioner", "room", "course__protocol")


def _open(clinic: Clinic, options: Options, release: dt.datetime) -> list[Appointment]:
    statuses = [Appointment.Status.BOOKED]
    if options.move_confirmed:
        statuses.append(Appointment.Status.CONFIRMED)
    return list(
        Appointment.objects.filter(clinic=clinic, status__in=statuses, starts_at__gte=release)
        .select_related(*RELATED)
        .order_by("starts_at", "pk")
    )


def _fixed(
    open_: list[Appointment], now: dt.datetime, horizon_end: dt.datetime
) -> list[Appointment]:
    """The active appointments an open one could collide with (same practitioner in any
    clinic, same room, same patient), and every earlier visit of the open ones' courses."""
    near = (
        Q(practitioner_id__in={a.practitioner_id for a in open_})
        | Q(room_id__in={a.room_id for a in open_ if a.room_id is not None})
        | Q(patient_id__in={a.patient_id for a in open_})
    )
    courses = {a.course_id for a in open_ if a.course_id is not None}
    return list(
        Appointment.objects.filter(
            (near & Q(ends_at__gt=now - dt.timedelta(days=1))) | Q(course_id__in=courses),
            starts_at__lt=horizon_end,
        )
        .exclude(status__in=Appointment.INACTIVE)
        .exclude(pk__in=[a.pk for a in open_])
        .select_related(*RELATED)
    )


def _rules(courses: Collection[int]) -> dict[int, opt.CourseRules]:
    """Each course's cadence, tolerance and allergy wait, from the protocol it was planned on."""
    return {
        c.pk: opt.CourseRules(
            c.cadence_days, c.spec.cadence.tolerance_days.v, c.spec.allergy_test.wait_hours.v
        )
        for c in Course.objects.filter(pk__in=courses).select_related("protocol")
    }


def _licence_ends(clinic: Clinic, clock: opt.Clock, users: Collection[int]) -> dict[int, int]:
    """When each practitioner's licence in the clinic ends: local midnight after the last day
    of the latest one (none on file: the beginning of time, so that no injecting visit of
    theirs moves). Booking refuses an injecting visit after that, and so does the plan."""
    expires: dict[int, dt.date] = {}
    for user_id, day in PractitionerLicence.objects.filter(
        clinic=clinic, user_id__in=users
    ).values_list("user_id", "expires_on"):
        expires[user_id] = max(day, expires.get(user_id, day))
    tz = clinic.tz
    return {
        user: clock.minute(
            dt.datetime.combine(expires[user] + dt.timedelta(days=1), dt.time(), tzinfo=tz)
        )
        if user in expires
        else -(10**12)
        for user in users
    }


def _first_grid_minute(clock: opt.Clock, moment: dt.datetime) -> int:
    """The first minute on the grid at or after `moment`."""
    minute = clock.minute(moment)
    if clock.moment(minute) < moment:
        minute += 1
    return -(-minute // opt.GRID) * opt.GRID


def _visit(clock: opt.Clock, a: Appointment, movable: bool) -> opt.Visit:
    start = clock.minute(a.starts_at)
    return opt.Visit(
        id=a.pk,
        kind=a.kind,
        practitioner=a.practitioner_id,
        start=start,
        duration=max(clock.minute(a.ends_at) - start, 1),
        course=a.course_id,
        patient=a.patient_id,
        room=a.room_id,
        movable=movable,
    )


def _history(
    courses: Iterable[int], appointments: list[Appointment]
) -> list[tuple[dt.datetime, str, int, int, int]]:
    """Charted sessions and given allergy tests of the courses that no appointment stands
    for: (when, kind, practitioner, course, patient). A walk-in session still sets the earliest
    date of the next one, as the session gate counts it."""
    booked: dict[tuple[int, str], list[dt.datetime]] = defaultdict(list)
    for a in appointments:
        if a.course_id is not None:
            kind = logic.SESSION if a.kind == logic.MAINTENANCE else a.kind
            booked[(a.course_id, kind)].append(a.starts_at)

    def unbooked(course: int, kind: str, when: dt.datetime) -> bool:
        return all(abs(when - t) > SAME_VISIT for t in booked[(course, kind)])

    out: list[tuple[dt.datetime, str, int, int, int]] = []
    for s in Session.objects.filter(course_id__in=courses).select_related("course"):
        if unbooked(s.course_id, logic.SESSION, s.performed_at):
            kind = logic.MAINTENANCE if s.kind == Session.Kind.MAINTENANCE else logic.SESSION
            out.append((s.performed_at, kind, s.practitioner_id, s.course_id, s.course.patient_id))
    for t in AllergyTest.objects.filter(course_id__in=courses).select_related("course"):
        if unbooked(t.course_id, logic.ALLERGY_TEST, t.given_at):
            out.append(
                (t.given_at, logic.ALLERGY_TEST, t.given_by_id, t.course_id, t.course.patient_id)
            )
    return out


# Applying a plan.


def moves(
    calendar: Calendar, plan: Mapping[int, int]
) -> dict[int, tuple[dt.datetime, dt.datetime]]:
    """The new (start, end) of each appointment the plan moves."""
    clock = calendar.instance.clock
    out = {}
    for a in calendar.open:
        minute = plan.get(a.pk)
        if minute is None or minute == clock.minute(a.starts_at):
            continue
        start = clock.moment(minute)
        out[a.pk] = (start, start + (a.ends_at - a.starts_at))
    return out


def apply(calendar: Calendar, plan: Mapping[int, int], *, user: Any = None) -> list[Appointment]:
    """Move the appointments as the plan says, all or none, and audit each move.

    1. Lock the courses of the rows (in the order every booking of a course locks them), then
       the rows, and refuse if any of them changed since the calendar was read.
    2. Read the calendar again and `check` the plan against it (hours, holidays, overlaps,
       cadence, the allergy wait), so that a booking or a day off added since is respected.
    3. Free every moved row's old slot first (it becomes inactive for a moment), then save each
       at its new time with its own status again. Each save re-checks overlaps (and on
       PostgreSQL the exclusion constraints hold), and since the old slots are free by then, no
       order of moves can clash with a slot that is about to be vacated.
    4. Any overlap at that point means someone booked in between: everything is rolled back.
    """
    wanted = moves(calendar, plan)
    if not wanted:
        return []
    try:
        with transaction.atomic():
            actions.lock_courses(
                Appointment.objects.filter(pk__in=wanted).values_list("course_id", flat=True)
            )
            rows = {a.pk: a for a in Appointment.objects.select_for_update().filter(pk__in=wanted)}
            for pk in wanted:
                before, now = calendar.appointments[pk], rows.get(pk)
                if now is None or _changed(before, now):
                    raise PlanRefused(
                        "The calendar changed since it was read; run the optimiser again."
                    )
            fresh = load(calendar.clinic, calendar.options, now=calendar.now)
            minutes = {pk: fresh.instance.clock.minute(start) for pk, (start, _) in wanted.items()}
            problems = opt.check(fresh.instance, minutes, only=minutes)
            if problems:
                raise PlanRefused("The plan breaks a rule of the calendar as it is now.", problems)
            statuses = {pk: row.status for pk, row in rows.items()}
            Appointment.objects.filter(pk__in=wanted).update(status=Appointment.Status.CANCELLED)
            moved = []
            for pk, (start, end) in sorted(wanted.items(), key=lambda item: item[1][0]):
                row = rows[pk]
                previous = (row.starts_at, row.ends_at)
                row.starts_at, row.ends_at, row.status = start, end, statuses[pk]
                row.save(update_fields=["starts_at", "ends_at", "status"])
                audit(
                    clinic=calendar.clinic,
                    user=user,
                    action=AuditEvent.Action.UPDATE,
                    obj=row,
                    patient_id=row.patient_id,
                    via="optimiser",
                    starts_at=start.isoformat(),
                    ends_at=end.isoformat(),
                    previous_starts_at=previous[0].isoformat(),
                    previous_ends_at=previous[1].isoformat(),
                    practitioner=row.practitioner_id,
                )
                moved.append(row)
    except (AppointmentOverlap, IntegrityError) as exc:
        if isinstance(exc, IntegrityError) and not _is_overlap(exc):
            raise
        raise PlanRefused(
            "Another booking took one of these times a moment ago; nothing was changed. "
            "Run the optimiser again."
        ) from exc
    return moved


def _is_overlap(exc: IntegrityError) -> bool:
    """Whether PostgreSQL refused a row with one of the overlap exclusion constraints."""
    diag = getattr(exc.__cause__, "diag", None)
    return getattr(diag, "constraint_name", None) in OVERLAP_CONSTRAINTS


def _changed(before: Appointment, now: Appointment) -> bool:
    fields = ("starts_at", "ends_at", "status", "practitioner_id", "room_id")
    return any(getattr(before, f) != getattr(now, f) for f in fields)
