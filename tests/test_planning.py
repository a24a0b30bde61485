"""Booking a whole course, moving a visit with the visits after it, the maintenance visit,
the next free slot, and the flags for a broken cadence: against the real calendar."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent
from mesoclinic.courses.models import AllergyTest, Course, Session
from mesoclinic.patients.models import Patient
from mesoclinic.scheduling import planning
from mesoclinic.scheduling.actions import BookingRefused, do_book, do_cancel, do_mark_no_show
from mesoclinic.scheduling.models import Appointment, Holiday, WorkingException
from mesoclinic.scheduling.series import Preferences
from tests.conftest import World
from tests.scheduling_fixtures import NEW_YORK, NOW, at

DAY = dt.timedelta(days=1)
WEEK = dt.timedelta(days=7)


def local(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(NEW_YORK)


def booked(course: Course) -> list[Appointment]:
    return list(
        Appointment.objects.filter(course=course)
        .exclude(status__in=Appointment.INACTIVE)
        .order_by("starts_at")
    )


def held_sessions(course: Course, times: list[dt.datetime], practitioner: Any) -> None:
    """Sessions already given (bulk_create: the gates are tested elsewhere)."""
    Session.objects.bulk_create(
        Session(
            course=course,
            number=n,
            performed_at=t,
            practitioner=practitioner,
            stimulants_avoided=True,
        )
        for n, t in enumerate(times, start=1)
    )


def test_booking_a_course_books_the_test_then_every_session_at_its_cadence(
    cal: World, course: Course
) -> None:
    made = planning.do_book_course(course, user=cal.front_desk, practitioner=cal.practitioner)

    assert [a.kind for a in made] == ["allergy_test"] + ["session"] * 15
    assert all(a.practitioner == cal.practitioner for a in made)
    test, first, *rest = made
    assert test.starts_at >= NOW
    assert first.starts_at - test.starts_at >= dt.timedelta(hours=24)
    # Two areas: 30 minutes plus 10 for the second area (the protocol's visit lengths).
    assert first.duration == dt.timedelta(minutes=40)
    sessions = [first, *rest]
    for before, after in zip(sessions, sessions[1:], strict=False):
        gap = local(after.starts_at).date() - local(before.starts_at).date()
        assert 5 <= gap.days <= 9, (before, after)
        assert local(after.starts_at).weekday() < 5  # the practitioner works Monday to Friday
    assert all(a.room is not None for a in made)
    assert booked(course) == made
    audits = AuditEvent.objects.filter(
        action=AuditEvent.Action.CREATE, object_type="scheduling.Appointment"
    )
    assert audits.count() == 16


def test_the_patients_preferred_days_and_times_are_kept(cal: World, course: Course) -> None:
    thursday_afternoons = Preferences(weekdays=frozenset({3}), earliest_time=dt.time(14))

    made = planning.do_book_course(
        course, user=cal.front_desk, practitioner=cal.practitioner, prefs=thursday_afternoons
    )

    for a in made:
        assert local(a.starts_at).weekday() == 3, a
        assert local(a.starts_at).time() >= dt.time(14), a


def test_a_full_day_moves_the_visit_inside_its_window_and_time_off_hands_it_to_another(
    cal: World, course: Course, patient: Patient
) -> None:
    prefs = Preferences(weekdays=frozenset({1}))  # Tuesdays
    plan = planning.propose_course(course, practitioner=cal.practitioner, prefs=prefs)
    third = plan.visits[3].start  # the test, then sessions: visits[3] is session 3
    WorkingException.objects.create(
        clinic=cal.clinic,
        user=cal.practitioner,
        date=local(third).date(),
        kind=WorkingException.Kind.TIME_OFF,
    )
    # The days around it are full too, so only the manager has room in session 3's window.
    for offset in (-2, -1, 1, 2):
        day = local(third).date() + dt.timedelta(days=offset)
        if day.weekday() < 5:
            WorkingException.objects.create(
                clinic=cal.clinic, user=cal.practitioner, date=day, kind="time_off"
            )

    # The swap is named and waits for the user's acceptance (issue 12).
    with pytest.raises(BookingRefused) as refused:
        planning.do_book_course(
            course, user=cal.front_desk, practitioner=cal.practitioner, prefs=prefs
        )
    assert refused.value.codes == ["changed"]
    assert "is with Manager, because Maria Silva has no free time" in str(refused.value)
    made = planning.do_book_course(
        course,
        user=cal.front_desk,
        practitioner=cal.practitioner,
        prefs=prefs,
        accept_changes=True,
    )

    owners = [a.practitioner for a in made]
    assert owners[3] == cal.manager
    assert owners.count(cal.manager) == 1
    assert local(made[3].starts_at).date() == local(third).date()


def test_a_course_that_cannot_be_placed_whole_books_nothing_and_says_which_visit(
    cal: World, course: Course
) -> None:
    start = NOW.date() + dt.timedelta(days=21)
    for n in range(14):  # both practitioners away for two weeks: session 3's window is gone
        for user in (cal.practitioner, cal.manager):
            WorkingException.objects.create(
                clinic=cal.clinic, user=user, date=start + dt.timedelta(days=n), kind="time_off"
            )

    with pytest.raises(BookingRefused) as refused:
        planning.do_book_course(course, user=cal.front_desk, practitioner=cal.practitioner)

    assert refused.value.codes == ["no_free_time"]
    assert "(session) has no free time between" in str(refused.value)
    assert booked(course) == []


def test_a_course_already_under_way_books_only_what_is_left_after_its_last_session(
    cal: World, course: Course
) -> None:
    AllergyTest.objects.create(course=course, given_at=NOW - 20 * DAY, given_by=cal.practitioner)
    last = at(10, 0, (NOW - 2 * DAY).date())
    held_sessions(course, [last - 7 * DAY, last], cal.practitioner)

    made = planning.do_book_course(course, user=cal.front_desk)

    assert [a.kind for a in made] == ["session"] * 13
    assert all(a.practitioner == cal.practitioner for a in made)  # who gave the last session
    assert 5 * DAY <= made[0].starts_at - last <= 9 * DAY


def test_booking_again_after_everything_is_booked_is_refused(cal: World, course: Course) -> None:
    planning.do_book_course(course, user=cal.front_desk, practitioner=cal.practitioner)

    with pytest.raises(BookingRefused, match="already booked or done"):
        planning.do_book_course(course, user=cal.front_desk)


def test_after_a_cancellation_booking_the_course_again_fills_only_the_gap(
    cal: World, course: Course
) -> None:
    made = planning.do_book_course(course, user=cal.front_desk, practitioner=cal.practitioner)
    do_cancel(made[-1], user=cal.front_desk, reason="moving away")

    again = planning.do_book_course(course, user=cal.front_desk)

    assert len(again) == 1 and again[0].kind == "session"
    assert 5 * DAY <= again[0].starts_at - made[-2].starts_at <= 9 * DAY


def test_a_stopped_course_takes_no_bookings(cal: World, course: Course) -> None:
    Course.objects.filter(pk=course.pk).update(status=Course.Status.STOPPED)
    course.refresh_from_db()

    with pytest.raises(BookingRefused, match="stopped course takes no bookings"):
        planning.do_book_course(course, user=cal.front_desk)


# Moving a visit.


def test_a_small_move_keeps_the_later_visits_where_they_are(cal: World, course: Course) -> None:
    made = planning.do_book_course(course, user=cal.front_desk, practitioner=cal.practitioner)
    third = made[3]
    target = _free_start(cal, third.starts_at + DAY)

    plan = planning.plan_move(third, target)

    assert plan.ok
    assert [c.appointment.pk for c in plan.changes if c.moved] == [third.pk]


def test_a_big_move_shifts_every_later_visit_that_would_leave_its_window(
    cal: World, course: Course
) -> None:
    made = planning.do_book_course(course, user=cal.front_desk, practitioner=cal.practitioner)
    first = made[1]  # session 1 may go any time from 24 h after the test
    target = _free_start(cal, first.starts_at + 4 * DAY)

    moved = planning.do_move(first, target, user=cal.front_desk)

    assert moved[0].pk == first.pk and moved[0].starts_at == target
    assert len(moved) > 1  # the session after it left its window, and so on down the chain
    sessions = [a for a in booked(course) if a.kind == "session"]
    for before, after in zip(sessions, sessions[1:], strict=False):
        assert 5 * DAY <= after.starts_at - before.starts_at <= 9 * DAY + dt.timedelta(hours=1)
    audit = AuditEvent.objects.filter(object_id=str(first.pk)).order_by("-pk").first()
    assert audit is not None and audit.detail["moved_from"] == first.starts_at.isoformat()


def test_a_move_a_week_on_shifts_the_chain_onto_its_own_old_times(
    cal: World, course: Course
) -> None:
    """Each visit lands where the next one was: the rows are set aside first, so the overlap
    rule (PostgreSQL's constraint included) never sees a half-moved chain."""
    made = planning.do_book_course(course, user=cal.front_desk, practitioner=cal.practitioner)
    sessions = made[1:]
    old = [a.starts_at for a in sessions]

    planning.do_move(sessions[0], old[1], user=cal.front_desk)

    now_at = [a.starts_at for a in booked(course)[1:]]
    assert now_at[:14] == old[1:15]
    assert now_at[14] - old[14] >= 5 * DAY


def test_a_move_that_would_break_the_cadence_is_refused_with_the_conflict(
    cal: World, course: Course
) -> None:
    made = planning.do_book_course(course, user=cal.front_desk, practitioner=cal.practitioner)
    first, second = made[1], made[2]
    # The practitioner is away the two weeks session 2 would shift into.
    target = _free_start(cal, first.starts_at + 4 * DAY)
    for n in range(1, 14):
        WorkingException.objects.create(
            clinic=cal.clinic,
            user=cal.practitioner,
            date=local(target).date() + dt.timedelta(days=n),
            kind="time_off",
        )

    with pytest.raises(BookingRefused) as refused:
        planning.do_move(first, target, user=cal.front_desk)

    assert refused.value.codes == ["cadence"]
    assert "cannot keep its window" in str(refused.value)
    assert "Maria Silva has no free 40 minutes in it" in str(refused.value)
    first.refresh_from_db()
    assert first.starts_at == made[1].starts_at  # nothing moved

    moved = planning.do_move(first, target, user=cal.front_desk, accept_break=True)

    assert moved[0].pk == first.pk and moved[0].starts_at == target
    second.refresh_from_db()
    assert second.starts_at == made[2].starts_at  # it could not move, so it stays
    audit = AuditEvent.objects.filter(object_id=str(first.pk)).order_by("-pk").first()
    assert audit is not None and audit.detail["cadence_break_accepted"]


def test_moving_a_session_outside_its_own_window_is_named(cal: World, course: Course) -> None:
    made = planning.do_book_course(course, user=cal.front_desk, practitioner=cal.practitioner)
    third = made[3]

    plan = planning.plan_move(third, _free_start(cal, third.starts_at - 4 * DAY))

    assert any("outside this session's window" in p for p in plan.problems)


def test_a_move_onto_a_holiday_is_refused_like_a_booking(cal: World, course: Course) -> None:
    made = planning.do_book_course(course, user=cal.front_desk, practitioner=cal.practitioner)
    last = made[-1]
    target = last.starts_at + DAY
    Holiday.objects.create(clinic=cal.clinic, date=local(target).date(), name="Founders' Day")

    with pytest.raises(BookingRefused) as refused:
        planning.do_move(last, target, user=cal.front_desk)

    assert "holiday" in refused.value.codes


def test_a_cancelled_visit_cannot_be_moved(cal: World, course: Course) -> None:
    made = planning.do_book_course(course, user=cal.front_desk, practitioner=cal.practitioner)
    do_cancel(made[-1], user=cal.front_desk)

    with pytest.raises(BookingRefused, match="cancelled appointment cannot be moved"):
        planning.do_move(made[-1], made[-1].starts_at + DAY, user=cal.front_desk)


# The next free slot and maintenance.


def test_the_next_free_slot_skips_what_is_booked_and_the_lunch_break(
    cal: World, patient: Patient
) -> None:
    monday = NOW.date()
    do_book(
        patient,
        kind="session",
        practitioner=cal.practitioner,
        starts_at=at(9, 0, monday),
        ends_at=at(12, 45, monday),
        user=cal.front_desk,
    )

    slot = planning.next_free_slot(cal.clinic, cal.practitioner, dt.timedelta(minutes=30))
    assert slot == at(14, 0, monday)  # 12:45–13:15 crosses the lunch break

    afternoon = Preferences(earliest_time=dt.time(16))
    slot = planning.next_free_slot(
        cal.clinic, cal.practitioner, dt.timedelta(minutes=30), prefs=afternoon
    )
    assert slot == at(16, 0, monday)


def _complete(course: Course, cal: World, last: dt.datetime) -> None:
    AllergyTest.objects.create(course=course, given_at=last - 120 * DAY, given_by=cal.practitioner)
    held_sessions(
        course,
        [
            last - (course.planned_sessions - n) * WEEK
            for n in range(1, course.planned_sessions + 1)
        ],
        cal.practitioner,
    )
    Course.objects.filter(pk=course.pk).update(status=Course.Status.COMPLETED)
    course.refresh_from_db()


def test_a_completed_course_is_offered_a_maintenance_visit_six_to_eight_months_on(
    cal: World, course: Course
) -> None:
    last = at(10, 0, NOW.date() - 7 * DAY)
    _complete(course, cal, last)

    plan = planning.propose_maintenance(course)

    assert plan is not None and plan.complete
    visit = plan.visits[0]
    assert dt.date(2027, 5, 16) <= local(visit.start).date() <= dt.date(2027, 7, 16)
    assert visit.practitioner == cal.practitioner.pk
    assert dt.time(9) <= local(visit.start).time() <= dt.time(17, 20)

    made = planning.do_book_maintenance(course, user=cal.front_desk)

    assert made.kind == "maintenance" and made.starts_at == visit.start
    assert planning.propose_maintenance(course) is None  # booked: nothing more to offer


def test_an_active_course_has_no_maintenance_visit(cal: World, course: Course) -> None:
    assert planning.propose_maintenance(course) is None
    with pytest.raises(BookingRefused, match="no maintenance visit"):
        planning.do_book_maintenance(course, user=cal.front_desk)


# Broken cadence.


def test_the_today_flags_name_each_way_a_cadence_breaks(
    cal: World, course: Course, now: Any
) -> None:
    last = at(10, 0, NOW.date() - 6 * DAY)  # Tue 17 Nov: session 2 is due Tue 24 Nov ± 2 days
    AllergyTest.objects.create(course=course, given_at=last - 8 * DAY, given_by=cal.practitioner)
    held_sessions(course, [last], cal.practitioner)
    Course.objects.filter(pk=course.pk).update(status=Course.Status.ACTIVE)
    assert planning.cadence_flags(cal.clinic, timezone.now()) == []  # window still to come

    # A booked session, then a no-show.
    visit = do_book(
        course.patient,
        kind="session",
        practitioner=cal.practitioner,
        starts_at=at(10, 0, NOW.date()),
        ends_at=at(10, 40, NOW.date()),
        course=course,
        user=cal.front_desk,
    )
    assert planning.cadence_flags(cal.clinic, timezone.now()) == []
    now.move_to(at(10, 30, NOW.date()))
    do_mark_no_show(visit, user=cal.front_desk)
    flags = planning.cadence_flags(cal.clinic, timezone.now())
    assert [f.message for f in flags] == [
        "Session 2 was missed and is not rebooked; its window closes Thu 26 Nov."
    ]

    # Rebooked outside the window.
    late = at(10, 0, NOW.date() + 7 * DAY)
    do_book(
        course.patient,
        kind="session",
        practitioner=cal.practitioner,
        starts_at=late,
        ends_at=late + dt.timedelta(minutes=40),
        course=course,
        user=cal.front_desk,
    )
    flags = planning.cadence_flags(cal.clinic, timezone.now())
    assert [f.message for f in flags] == [
        "Session 2 is booked for Mon 30 Nov, outside its window (Sun 22 Nov to Thu 26 Nov)."
    ]

    # And when the window has passed with nothing booked.
    Appointment.objects.filter(starts_at=late).delete()
    with time_machine.travel(at(9, 0, NOW.date() + 6 * DAY), tick=False):
        flags = planning.cadence_flags(cal.clinic, timezone.now())
    assert [f.message for f in flags] == ["Session 2 was due by Thu 26 Nov; nothing is booked."]


def _free_start(cal: World, near: dt.datetime) -> dt.datetime:
    """The first free weekday start at 10:00 on or after `near`'s date (no other bookings)."""
    day = local(near).date()
    while day.weekday() >= 5:
        day += DAY
    start = at(10, 0, day)
    while (
        Appointment.objects.filter(
            practitioner=cal.practitioner,
            starts_at__lt=start + dt.timedelta(hours=1),
            ends_at__gt=start,
        )
        .exclude(status__in=Appointment.INACTIVE)
        .exists()
    ):
        start += dt.timedelta(hours=1)
    return start


def test_a_patient_is_never_in_two_places_at_once(cal: World, patient: Patient) -> None:
    do_book(
        patient,
        kind="review",
        practitioner=cal.practitioner,
        starts_at=at(10),
        ends_at=at(10, 30),
        user=cal.front_desk,
    )

    with pytest.raises(BookingRefused) as refused:
        do_book(
            patient,
            kind="review",
            practitioner=cal.manager,
            starts_at=at(10, 15),
            ends_at=at(10, 45),
            user=cal.front_desk,
        )
    assert refused.value.codes == ["patient_busy"]
    assert "Ana Lopez already has a review 10:00–10:30 on Tue 1 Dec with Maria Silva" in str(
        refused.value
    )
    slot = planning.next_free_slot(
        cal.clinic,
        cal.manager,
        dt.timedelta(minutes=30),
        not_before=at(10),
        patient=patient,
    )
    assert slot == at(10, 30)


def test_an_injecting_visit_needs_a_practitioner_licensed_on_the_day(
    cal: World, course: Course
) -> None:
    from mesoclinic.accounts.models import PractitionerLicence

    PractitionerLicence.objects.filter(user=cal.practitioner).update(
        expires_on=NOW.date() + 2 * DAY
    )
    with pytest.raises(BookingRefused) as refused:
        do_book(
            course.patient,
            kind="session",
            practitioner=cal.practitioner,
            starts_at=at(10),
            course=course,
            user=cal.front_desk,
        )
    assert refused.value.codes == ["practitioner_unlicensed"]
    assert "Maria Silva's licence expires on 25 Nov 2026" in str(refused.value)
    # A licence that ran out before today is said in the past tense.
    PractitionerLicence.objects.filter(user=cal.practitioner).update(
        expires_on=NOW.date() - 2 * DAY
    )
    with pytest.raises(BookingRefused) as lapsed:
        do_book(
            course.patient,
            kind="session",
            practitioner=cal.practitioner,
            starts_at=at(10),
            course=course,
            user=cal.front_desk,
        )
    assert "Maria Silva's licence expired on 21 Nov 2026" in str(lapsed.value)
    PractitionerLicence.objects.filter(user=cal.practitioner).update(
        expires_on=NOW.date() + 2 * DAY
    )
    # A review is a conversation, not an injection: no licence needed.
    do_book(
        course.patient,
        kind="review",
        practitioner=cal.practitioner,
        starts_at=at(10),
        ends_at=at(10, 20),
        user=cal.front_desk,
    )

    PractitionerLicence.objects.filter(user=cal.practitioner).update(expires_on=NOW.date() - DAY)
    made = planning.do_book_course(
        course, user=cal.front_desk, practitioner=cal.practitioner, accept_changes=True
    )
    assert {a.practitioner for a in made} == {cal.manager}  # never the unlicensed one


def test_a_booked_session_at_a_windows_edge_across_a_change_of_clock_is_judged_exactly() -> None:
    # Cadence 7 days, tolerance 2: the window after a session on Sat 24 Oct 2026 at 10:00 in
    # Paris closes on Mon 2 Nov at 10:00 there, after the clocks went back on 25 Oct, so nine
    # days and one hour later in elapsed time. A visit at that edge fits; half an hour later
    # does not. Counting elapsed days alone would get both wrong.
    from zoneinfo import ZoneInfo

    from mesoclinic.scheduling import series

    paris = ZoneInfo("Europe/Paris")
    rules = series.Rules(
        cadence=dt.timedelta(days=7),
        tolerance=dt.timedelta(days=2),
        test_wait=dt.timedelta(hours=24),
    )
    last = dt.datetime(2026, 10, 24, 10, 0, tzinfo=paris)
    now = dt.datetime(2026, 10, 26, 9, 0, tzinfo=paris)

    def broken(booked: list[dt.datetime]) -> str | None:
        return planning._cadence_broken(1, last, booked, [], rules, now, paris)

    at_edge = dt.datetime(2026, 11, 2, 10, 0, tzinfo=paris)
    assert broken([at_edge]) is None
    late = at_edge + dt.timedelta(minutes=30)
    assert broken([late]) == (
        "Session 2 is booked for Mon 2 Nov, outside its window (Thu 29 Oct to Mon 2 Nov)."
    )
    # A session well inside each window, and the next one's window counted from it.
    weekly = [last + dt.timedelta(days=7 * n) for n in (1, 2, 3)]
    assert broken(weekly) is None
    assert broken([*weekly[:2], weekly[1] + dt.timedelta(days=12)]) is not None
