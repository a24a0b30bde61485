"""Issue 12, booking defects: check-in. The front desk marks a visit arrived (the calendar,
Today, the appointment's page, the API); charting the visit's session marks it done and links
the session to it in the same transaction. A cancelled visit or a no-show stays as it is."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import time_machine

from mesoclinic.accounts.models import AuditEvent
from mesoclinic.courses.models import Course
from mesoclinic.patients.models import Patient
from mesoclinic.scheduling.models import Appointment
from tests.conftest import World, api_for, problem_of
from tests.scheduling_fixtures import NEW_YORK
from tests.test_courses import chart, ready_course
from tests.test_web import signed_in

NOON = dt.datetime(2026, 11, 24, 12, 0, tzinfo=NEW_YORK)


@pytest.fixture
def noon() -> Any:
    with time_machine.travel(NOON, tick=False) as traveller:
        yield traveller


def visit(course: Course, start: dt.datetime, status: str = "booked", **kw: Any) -> Appointment:
    return Appointment.objects.create(
        clinic=course.clinic,
        patient=course.patient,
        course=course,
        kind=kw.pop("kind", "session"),
        practitioner=kw.pop("practitioner", None) or course.created_by,
        starts_at=start,
        ends_at=start + dt.timedelta(minutes=40),
        status=status,
        **kw,
    )


def test_the_front_desk_checks_in_and_charting_marks_the_visit_done(
    world: World, patient: Patient, noon: Any
) -> None:
    course = ready_course(world, patient, NOON - dt.timedelta(days=3))
    cancelled = visit(course, NOON - dt.timedelta(hours=2), status="cancelled")
    booked = visit(course, NOON - dt.timedelta(minutes=10), practitioner=world.practitioner)
    client = signed_in(world.front_desk)

    today = client.get("/today/").content.decode()
    assert f'action="/calendar/appointments/{booked.pk}/arrived/"' in today
    done = client.post(
        f"/calendar/appointments/{booked.pk}/arrived/", {"next": "/today/"}, follow=True
    )
    assert done.redirect_chain[-1][0] == "/today/"
    assert "Checked in: Session for Ana Lopez" in done.content.decode()
    booked.refresh_from_db()
    assert (booked.status, booked.arrived_by, booked.arrived_at) == (
        "arrived",
        world.front_desk,
        NOON,
    )
    assert AuditEvent.objects.filter(
        object_id=str(booked.pk), action="update", detail__status="arrived"
    ).exists()

    session = chart(world, course, NOON - dt.timedelta(minutes=5))

    booked.refresh_from_db()
    cancelled.refresh_from_db()
    assert (booked.status, booked.session) == ("done", session)
    assert cancelled.status == "cancelled" and cancelled.session is None
    page = client.get(f"/calendar/appointments/{booked.pk}/").content.decode()
    assert f'href="/sessions/{session.pk}/">Session 1</a>' in page
    assert f"checked in by {world.front_desk.display_name}" in page


def test_a_session_charted_without_check_in_still_closes_its_visit(
    world: World, patient: Patient, noon: Any
) -> None:
    course = ready_course(world, patient, NOON - dt.timedelta(days=3))
    booked = visit(course, NOON - dt.timedelta(minutes=40), practitioner=world.practitioner)
    session = chart(world, course, NOON - dt.timedelta(minutes=30))
    booked.refresh_from_db()
    assert (booked.status, booked.session) == ("done", session)


def test_check_in_only_on_the_day_and_never_for_a_no_show(
    world: World, patient: Patient, noon: Any
) -> None:
    course = ready_course(world, patient, NOON - dt.timedelta(days=3))
    tomorrow = visit(course, NOON + dt.timedelta(days=1), practitioner=world.practitioner)
    missed = visit(
        course, NOON - dt.timedelta(hours=3), status="no_show", practitioner=world.practitioner
    )
    client = signed_in(world.front_desk)
    later = client.post(f"/calendar/appointments/{tomorrow.pk}/arrived/", follow=True)
    assert "A patient can be checked in only on the day of the visit." in later.content.decode()
    api = api_for(world.front_desk)
    problem_of(api.post(f"/appointments/{missed.pk}/arrived"), 422)
    tomorrow.refresh_from_db()
    missed.refresh_from_db()
    assert (tomorrow.status, missed.status) == ("booked", "no_show")


def test_the_api_checks_in(world: World, patient: Patient, noon: Any) -> None:
    course = ready_course(world, patient, NOON - dt.timedelta(days=3))
    booked = visit(course, NOON + dt.timedelta(minutes=20), practitioner=world.practitioner)
    made = api_for(world.front_desk).post(f"/appointments/{booked.pk}/arrived")
    assert made.status_code == 200 and made.json()["status"] == "arrived"


def test_the_check_in_button_follows_the_clinics_day_not_the_servers(
    world: World, patient: Patient
) -> None:
    # 21:00 in New York is 02:00 the next day in UTC: a visit at 10:00 that morning is still
    # today's, and tomorrow's visit is not.
    evening = dt.datetime(2026, 11, 24, 21, 0, tzinfo=NEW_YORK)
    with time_machine.travel(evening, tick=False):
        course = ready_course(world, patient, evening - dt.timedelta(days=3))
        morning = visit(course, evening.replace(hour=10))
        tomorrow = visit(course, evening.replace(hour=10) + dt.timedelta(days=1))
        today = signed_in(world.front_desk).get("/today/").content.decode()
    assert f'action="/calendar/appointments/{morning.pk}/arrived/"' in today
    assert f'action="/calendar/appointments/{tomorrow.pk}/arrived/"' not in today
