"""Issue 12, booking defects: "Book the course" keeps the chosen practitioner and the
preferred days and times, or lists each visit that cannot keep them (and why) before
booking; it books such a proposal only once the user accepts the changes, in the web and the
API."""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest

from mesoclinic.courses.models import Course
from mesoclinic.scheduling import planning
from mesoclinic.scheduling.actions import BookingRefused
from mesoclinic.scheduling.models import Appointment, WorkingException
from mesoclinic.scheduling.series import Preferences
from tests.conftest import World, api_for, problem_of
from tests.scheduling_fixtures import NOW
from tests.test_web import signed_in

DAY = dt.timedelta(days=1)
LATE = Preferences(frozenset({3}), dt.time(16), None)  # Thursdays, not before 16:00


def busy_afternoons(cal: World) -> None:
    """Maria Silva takes the afternoons of the second and third weeks off."""
    for n in range(7, 21):
        WorkingException.objects.create(
            clinic=cal.clinic,
            user=cal.practitioner,
            date=NOW.date() + n * DAY,
            kind="time_off",
            starts=dt.time(14),
            ends=dt.time(18),
        )


def test_a_proposal_that_keeps_the_choice_has_no_changes(cal: World, course: Course) -> None:
    plan = planning.propose_course(course, practitioner=cal.practitioner, prefs=LATE)
    assert plan.complete and plan.changes == []
    made = planning.do_book_course(
        course, user=cal.front_desk, practitioner=cal.practitioner, prefs=LATE
    )
    assert {a.practitioner for a in made} == {cal.practitioner}


def test_each_change_is_named_and_booking_waits_for_the_user(cal: World, course: Course) -> None:
    busy_afternoons(cal)
    plan = planning.propose_course(course, practitioner=cal.practitioner, prefs=LATE)
    assert plan.complete and plan.changes
    with pytest.raises(BookingRefused) as refused:
        planning.do_book_course(
            course, user=cal.front_desk, practitioner=cal.practitioner, prefs=LATE
        )
    assert set(refused.value.codes) == {"changed"}
    assert [r.message for r in refused.value.refusals] == plan.changes
    assert Appointment.objects.count() == 0
    made = planning.do_book_course(
        course,
        user=cal.front_desk,
        practitioner=cal.practitioner,
        prefs=LATE,
        accept_changes=True,
    )
    assert len(made) == 16


WEB_LATE = {"weekdays": ["3"], "earliest_time": "16:00"}


def test_the_web_lists_the_changes_and_books_once_they_are_accepted(
    cal: World, course: Course
) -> None:
    busy_afternoons(cal)
    client = signed_in(cal.front_desk)
    form = {"practitioner": cal.practitioner.pk, **WEB_LATE}
    page = client.get(f"/courses/{course.pk}/booking/", form).content.decode()
    assert "3 visits cannot keep what you chose:" in page
    assert (
        "Session 1 (Fri 27 Nov at 16:00) is outside the preferred days and times "
        "(Thursdays; not before 16:00)" in page
    )
    assert "Book with the changes listed above" in page

    refused = client.post(f"/courses/{course.pk}/booking/", {**form, "book": ""})
    text = refused.content.decode()
    assert "tick this box to book them with those changes" in text
    assert 'id="id_accept_changes_error"' in text  # beside the box
    assert Appointment.objects.count() == 0

    seen = [html.unescape(c) for c in re.findall(r'name="seen_change" value="([^"]*)"', page)]
    assert len(seen) == 3
    # Accepting changes other than those the page now proposes books nothing.
    stale = client.post(
        f"/courses/{course.pk}/booking/",
        {**form, "book": "", "accept_changes": "on", "seen_change": seen[:2]},
    )
    assert "The proposal changed while you were reading it" in stale.content.decode()
    assert Appointment.objects.count() == 0

    done = client.post(
        f"/courses/{course.pk}/booking/",
        {**form, "book": "", "accept_changes": "on", "seen_change": seen},
    )
    assert done.status_code == 302
    assert Appointment.objects.filter(course=course).count() == 16


def test_the_api_returns_the_changes_or_refuses_naming_them(cal: World, course: Course) -> None:
    busy_afternoons(cal)
    api = api_for(cal.front_desk)
    body = {
        "practitioner": cal.practitioner.pk,
        "preferences": {"weekdays": [3], "earliest_time": "16:00"},
    }
    dry = api.post(f"/courses/{course.pk}/booking", {**body, "dry_run": True}).json()
    assert len(dry["changes"]) == 3
    assert dry["changes"][0].startswith("Session 1 (Fri 27 Nov at 16:00) is outside")

    problem = problem_of(api.post(f"/courses/{course.pk}/booking", body), 409)
    assert [r["code"] for r in problem["reasons"]] == ["changed"] * 3
    assert [r["message"] for r in problem["reasons"]] == dry["changes"]
    assert Appointment.objects.count() == 0

    made = api.post(f"/courses/{course.pk}/booking", {**body, "accept_changes": True})
    assert made.status_code == 201
    assert made.json()["changes"] == dry["changes"]
    assert Appointment.objects.filter(course=course).count() == 16
