"""Booking a course from the chart, the maintenance visit, and what Today shows of the
calendar: the day's visits (cancelled and missed ones marked) and broken cadences."""

from __future__ import annotations

import datetime as dt

from mesoclinic.courses.models import AllergyTest, Course
from mesoclinic.scheduling import planning
from mesoclinic.scheduling.actions import do_book, do_cancel
from mesoclinic.scheduling.models import Appointment, WorkingException
from tests.conftest import World
from tests.scheduling_fixtures import NOW, at
from tests.test_planning import _complete, booked, held_sessions
from tests.test_web import signed_in

DAY = dt.timedelta(days=1)


def test_the_chart_offers_to_book_the_course_and_the_page_proposes_then_books(
    cal: World, course: Course
) -> None:
    client = signed_in(cal.front_desk)
    chart = client.get(f"/patients/{course.patient_id}/").content.decode()
    assert "No visit booked." in chart
    assert f'href="/courses/{course.pk}/booking/"' in chart

    page = client.get(
        f"/courses/{course.pk}/booking/",
        {"practitioner": cal.practitioner.pk, "weekdays": ["3"], "earliest_time": "14:00"},
    ).content.decode()
    assert 'Proposed visits <span class="count">16</span>' in page
    assert page.count("Thu ") >= 16  # every visit on the preferred Thursday
    assert "Book all 16 visits" in page
    assert Appointment.objects.count() == 0  # proposing books nothing

    done = client.post(
        f"/courses/{course.pk}/booking/",
        {
            "practitioner": cal.practitioner.pk,
            "weekdays": ["3"],
            "earliest_time": "14:00",
            "book": "",
        },
        follow=True,
    )
    text = done.content.decode()
    assert "Booked 16 visits, from Thu 26 Nov 14:00" in text
    assert len(booked(course)) == 16
    assert f'href="/courses/{course.pk}/booking/"' not in text  # nothing left to book


def test_a_course_that_cannot_be_placed_shows_the_reason_and_no_book_button(
    cal: World, course: Course
) -> None:
    for n in range(21, 35):
        for user in (cal.practitioner, cal.manager):
            WorkingException.objects.create(
                clinic=cal.clinic, user=user, date=NOW.date() + n * DAY, kind="time_off"
            )
    page = signed_in(cal.front_desk).get(
        f"/courses/{course.pk}/booking/", {"practitioner": cal.practitioner.pk}
    )
    text = page.content.decode()
    assert "(session) has no free time between" in text
    assert "Book all" not in text

    posted = signed_in(cal.front_desk).post(
        f"/courses/{course.pk}/booking/", {"practitioner": cal.practitioner.pk, "book": ""}
    )
    assert "has no free time between" in posted.content.decode()
    assert Appointment.objects.count() == 0


def test_bad_preferences_are_named(cal: World, course: Course) -> None:
    page = signed_in(cal.front_desk).get(
        f"/courses/{course.pk}/booking/", {"earliest_time": "15:00", "latest_time": "09:00"}
    )
    assert "must be after the earliest time." in page.content.decode()


def test_another_clinic_cannot_book_or_see_the_booking_page(
    cal: World, other: World, course: Course
) -> None:
    client = signed_in(other.front_desk)
    assert client.get(f"/courses/{course.pk}/booking/").status_code == 404
    assert client.post(f"/courses/{course.pk}/booking/", {"book": ""}).status_code == 404
    assert client.post(f"/courses/{course.pk}/maintenance/").status_code == 404
    assert Appointment.objects.count() == 0


def test_a_completed_course_shows_and_books_its_maintenance_visit(
    cal: World, course: Course
) -> None:
    _complete(course, cal, at(10, 0, NOW.date() - 7 * DAY))
    client = signed_in(cal.front_desk)
    chart = client.get(f"/patients/{course.patient_id}/").content.decode()
    assert "Maintenance visit due between" in chart
    proposal = planning.propose_maintenance(course)
    assert proposal is not None

    done = client.post(f"/courses/{course.pk}/maintenance/", follow=True).content.decode()

    assert "Maintenance visit booked for" in done
    made = Appointment.objects.get(course=course)
    assert made.kind == "maintenance" and made.starts_at == proposal.visits[0].start
    assert "Maintenance visit due between" not in done


def test_today_lists_the_days_visits_and_the_broken_cadences(cal: World, course: Course) -> None:
    AllergyTest.objects.create(course=course, given_at=NOW - 20 * DAY, given_by=cal.practitioner)
    held_sessions(course, [at(10, 0, NOW.date() - 6 * DAY)], cal.practitioner)
    Course.objects.filter(pk=course.pk).update(status=Course.Status.ACTIVE)
    visit = do_book(
        course.patient,
        kind="session",
        practitioner=cal.practitioner,
        starts_at=at(11, 0, NOW.date()),
        ends_at=at(11, 40, NOW.date()),
        course=course,
        user=cal.front_desk,
    )
    do_cancel(visit, user=cal.front_desk, reason="car broke down")

    page = signed_in(cal.front_desk).get("/today/").content.decode()

    visits = page[page.index("Visits booked today") : page.index("Cadence broken")]
    assert "11:00–11:40" in visits and "Ana Lopez" in visits
    assert '<tr class="inactive">' in visits and "Cancelled" in visits
    cadence = page[page.index("Cadence broken") :]
    assert "Session 2 was cancelled and is not rebooked; its window closes Thu 26 Nov." in cadence


def test_a_patients_request_to_change_shows_on_today_until_handled(
    cal: World, other: World, course: Course
) -> None:
    from mesoclinic.accounts.models import AuditEvent
    from mesoclinic.reminders.actions import do_request_change
    from mesoclinic.reminders.models import ChangeRequest

    visit = do_book(
        course.patient,
        kind="session",
        practitioner=cal.practitioner,
        starts_at=at(11, 0),
        ends_at=at(11, 40),
        course=course,
        user=cal.front_desk,
    )
    asked = do_request_change(visit.pk, visit.starts_at, "Could we make it Thursday?")
    desk = signed_in(cal.front_desk)
    page = desk.get("/today/").content.decode()
    card = page[page.index("Patients asking to change a visit") :]
    assert "Could we make it Thursday?" in card and "Tue 1 Dec, 11:00" in card
    assert f'href="/calendar/appointments/{visit.pk}/"' in card

    assert (
        signed_in(other.front_desk).post(f"/change-requests/{asked.pk}/handled/").status_code == 404
    )
    done = desk.post(f"/change-requests/{asked.pk}/handled/", follow=True).content.decode()

    assert "Marked Ana Lopez&#x27;s request as handled." in done
    assert "No request waiting." in done
    asked.refresh_from_db()
    assert asked.handled_by == cal.front_desk
    assert AuditEvent.objects.filter(
        object_type="reminders.ChangeRequest", action="update"
    ).exists()
    again = desk.post(f"/change-requests/{asked.pk}/handled/", follow=True).content.decode()
    assert "That request was already handled." in again
    assert ChangeRequest.objects.filter(handled_at__isnull=True).count() == 0
