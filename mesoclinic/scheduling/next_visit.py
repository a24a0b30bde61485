"""One visit of a course at a time: the visit a course needs next, the window it must fall in
(the allergy test's wait before session 1, the cadence after a session), the free slots in
that window, and booking one of them.

The patient's portal books this way, and the waitlist's offers too; staff book whole series
(planning.do_book_course) or one visit at a time (actions.do_book). Whatever books, the visit
goes through actions.do_book_many, so the calendar's checks (hours, holidays, licences, no
overlap, the database's constraints) are the staff's own; `do_book_next` adds the course's
window, checked after the course's row is locked, so two bookings of one course take turns."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from mesoclinic.accounts.models import User
from mesoclinic.courses.models import Course
from mesoclinic.scheduling import actions, logic, planning, series
from mesoclinic.scheduling.actions import BookingRefused, BookingRequest, Refusal
from mesoclinic.scheduling.models import Appointment, Room
from mesoclinic.scheduling.series import Interval, Placed, VisitSpec

BOOKABLE = (Course.Status.PLANNED, Course.Status.ACTIVE)
SPREAD = dt.timedelta(hours=2)


@dataclass(frozen=True)
class NextVisit:
    """The visit a course needs next, and where it may go."""

    course: Course
    kind: str
    duration: dt.timedelta
    window: Interval
    label: str  # "Session 3", "The allergy test visit"
    # The window opens now: no visit before it sets when it may start (the course's first
    # visit, or a course whose window had passed).
    from_now: bool = False

    def words(self) -> str:
        """ "Session 3 must be between Tue 8 Dec 10:00 and Fri 11 Dec 10:00." """
        tz = self.course.clinic.tz
        if self.from_now:
            days = round((self.window.end - self.window.start) / dt.timedelta(days=1))
            if days >= 2:
                return f"{self.label} can be booked any day in the next {days} days."
            return f"{self.label} can be booked until {_day(self.window.end, tz)}."
        return window_words(self.label, self.window, tz)


def _day(moment: dt.datetime, tz: Any) -> str:
    local = moment.astimezone(tz)
    return f"{logic.day_words(local)} {logic.clock(local)}"


def window_words(label: str, window: Interval, tz: Any) -> str:
    """ "Session 4 must be between Tue 8 Dec 10:00 and Fri 11 Dec 10:00.": the edges carry
    their clock time, since a window runs from the time of the visit before it."""
    start, end = window.start.astimezone(tz), window.end.astimezone(tz)
    return f"{label} must be between {_day(start, tz)} and {_day(end, tz)}."


def _open_from(window: Interval, now: dt.datetime, rules: series.Rules) -> Interval:
    """As series.propose does: a window that has passed opens again from now; one that has
    begun starts now."""
    if window.end < now:
        return Interval(now, now + rules.first_within)
    return Interval(max(window.start, now), window.end)


def next_visit(course: Course, now: dt.datetime | None = None) -> NextVisit | None:
    """The allergy test visit when none is given or booked, else the next session not done
    nor booked, with its window after the last visit held or booked; None when every visit
    is booked or done."""
    now = (now or timezone.now()).astimezone(dt.UTC)
    todo = planning.remaining(course)
    if not todo.visits:
        return None
    spec = todo.visits[0]
    rules = planning.rules_of(course)
    if todo.after is None:
        window = Interval(now, now + rules.first_within)
    else:
        window, _ = series.window_after(todo.after, rules, course.clinic.tz)
        window = _open_from(window, now, rules)
    from_now = window.start == now
    if spec.kind == logic.SESSION:
        left = sum(1 for v in todo.visits if v.kind == logic.SESSION)
        label = f"Session {course.planned_sessions - left + 1}"
    else:
        label = "The allergy test visit"
    return NextVisit(course, spec.kind, spec.duration, window, label, from_now)


def window_of(appointment: Appointment, now: dt.datetime | None = None) -> Interval | None:
    """Where a booked visit of a course may be moved to: after the visit before it by the
    allergy test's wait or the cadence. None for a visit with no such rule (the allergy test
    visit, a visit outside a course, the first visit of a course)."""
    if appointment.course is None or appointment.kind != logic.SESSION:
        return None
    previous, _ = planning._chain(appointment)
    if previous is None:
        return None
    rules = planning.rules_of(appointment.course)
    window, _ = series.window_after(previous, rules, appointment.clinic.tz)
    now = (now or timezone.now()).astimezone(dt.UTC)
    return _open_from(window, now, rules)


def label_of(appointment: Appointment) -> str:
    """ "Session 4" for a session visit of a course, else the kind of visit."""
    label = planning.session_labels([appointment]).get(appointment.pk)
    if label:
        return label.split(" of ")[0]
    return f"The {str(appointment.get_kind_display()).lower()}"


@dataclass(frozen=True)
class Slot:
    starts_at: dt.datetime
    practitioner: User

    @property
    def value(self) -> str:
        return f"{self.starts_at.astimezone(dt.UTC).isoformat()}|{self.practitioner.pk}"


def practitioners_for(course: Course, first_id: int | None) -> list[User]:
    """The clinic's practitioners, the course's own first."""
    staff = planning.practitioners_of(course.clinic)
    return sorted(staff, key=lambda u: u.pk != first_id)


def slots(
    course: Course,
    kind: str,
    duration: dt.timedelta,
    window: Interval,
    practitioners: list[User],
    *,
    ignore: frozenset[int] = frozenset(),
    per_day: int = 4,
    limit: int = 24,
) -> list[Slot]:
    """Free starts inside `window`, by time, at most `per_day` a day: each practitioner's free
    time (working and opening hours, holidays, rooms, what they and the patient have booked),
    only on days their licence covers a visit of `kind` (actions.may_give, the booking path's
    own rule). The first practitioner who has any is the one offered."""
    clinic = course.clinic
    # A visit may start at the window's very end, so the calendar runs one visit past it.
    calendar = planning.Calendar(
        clinic, window.start, window.end + duration, ignore=ignore, patient_id=course.patient_id
    )
    until = actions.licensed_until(clinic, {u.pk for u in practitioners})
    for user in practitioners:
        starts = series.starts_in(calendar.free(user.pk), window, duration)
        starts = [
            s
            for s in starts
            if actions.may_give(kind, until.get(user.pk), s.astimezone(clinic.tz).date())
        ]
        if not starts:
            continue
        out: list[Slot] = []
        per: dict[dt.date, int] = {}
        last: dt.datetime | None = None
        for s in starts:
            day = s.astimezone(clinic.tz).date()
            # Spread through the day: at most `per_day`, two hours apart at least.
            if per.get(day, 0) >= per_day or (last is not None and s - last < SPREAD):
                continue
            per[day] = per.get(day, 0) + 1
            last = s
            out.append(Slot(s.astimezone(clinic.tz), user))
            if len(out) >= limit:
                break
        return out
    return []


def room_for(
    course: Course, kind: str, starts_at: dt.datetime, duration: dt.timedelta
) -> Room | None:
    calendar = planning.Calendar(course.clinic, starts_at, starts_at + duration)
    rooms, _ = planning.assign_rooms(
        calendar, [Placed(VisitSpec(kind, duration), 0, starts_at.astimezone(dt.UTC))]
    )
    return Room.objects.filter(pk=rooms[0]).first() if rooms[0] else None


def do_book_next(
    course: Course,
    starts_at: dt.datetime,
    practitioner: User,
    *,
    user: Any,
    via: str,
) -> Appointment:
    """Book the course's next visit at `starts_at` with `practitioner`, or raise
    BookingRefused: the course takes no bookings, every visit is booked, the time is outside
    the visit's window (code "cadence", with the valid days in words), or any of the calendar's
    refusals (actions.do_book_many)."""
    with transaction.atomic():
        course = actions.lock_courses([course.pk])[course.pk]
        if course.status not in BOOKABLE:
            raise BookingRefused(
                [
                    Refusal(
                        "invalid",
                        f"A {course.get_status_display().lower()} course takes no bookings.",
                    )
                ]
            )
        found = next_visit(course)
        if found is None:
            raise BookingRefused([Refusal("already_booked", planning.ALREADY_BOOKED)])
        if timezone.is_naive(starts_at):
            raise BookingRefused([Refusal("invalid", "Give times with their time zone.")])
        if not planning.fits(starts_at, found.window):
            raise BookingRefused([Refusal("cadence", found.words())])
        request = BookingRequest(
            patient=course.patient,
            kind=found.kind,
            practitioner=practitioner,
            starts_at=starts_at,
            ends_at=starts_at + found.duration,
            course=course,
            room=room_for(course, found.kind, starts_at, found.duration),
        )
        return actions.do_book_many([request], user=user, via=via)[0]
