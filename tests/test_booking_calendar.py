"""Issue 12, the calendar: a free row books that time (the booking form opens prefilled with
the practitioner and the time), each session visit says "Session 3 of 15", the chart links each
visit to its appointment, and back-to-back visits are set apart."""

from __future__ import annotations

import datetime as dt
import re

from mesoclinic.courses.models import Course
from mesoclinic.patients.models import Patient
from mesoclinic.scheduling import planning
from mesoclinic.scheduling.models import Appointment
from tests.conftest import World
from tests.scheduling_fixtures import TUESDAY, at
from tests.test_web import signed_in
from tests.test_web_calendar import book, page


def second_patient(cal: World) -> Patient:
    return Patient.objects.create(
        clinic=cal.clinic, first_name="Bea", last_name="Cruz", date_of_birth=dt.date(1980, 1, 1)
    )


def test_a_free_row_opens_the_booking_form_prefilled(cal: World, patient: Patient) -> None:
    client = signed_in(cal.front_desk)
    html = page(client, f"/calendar/?date={TUESDAY.isoformat()}")
    want = f"/calendar/book/?practitioner={cal.practitioner.pk}&amp;after=2026-12-01T10%3A15"
    assert f'<a class="cal-slot" href="{want}">' in html
    assert "Book Maria Silva on Tue 1 Dec at 10:15" in html

    # The patient is chosen first, then the form has the practitioner and the time.
    search = page(client, want.replace("&amp;", "&") + "&q=Ana")
    chosen = re.search(r'href="(/calendar/book/\?[^"]*patient=\d+)"', search)
    assert chosen is not None
    form = page(client, chosen.group(1).replace("&amp;", "&"))
    assert 'value="2026-12-01T10:15"' in form
    assert f'<option value="{cal.practitioner.pk}" selected>' in form


def test_past_rows_are_not_links(cal: World) -> None:
    html = page(signed_in(cal.front_desk), "/calendar/?date=2026-11-23")
    # "Now" is Monday 23 Nov 08:00: the day's rows from 09:00 on are links, none before.
    assert "after=2026-11-23T09%3A00" in html
    html = page(signed_in(cal.front_desk), "/calendar/?date=2026-11-20")
    assert 'class="cal-slot"' not in html


def test_each_session_visit_says_its_number(cal: World, course: Course) -> None:
    made = planning.do_book_course(course, user=cal.front_desk, practitioner=cal.practitioner)
    third = made[3]  # the allergy test visit, then sessions 1, 2, 3
    assert planning.session_labels(made)[third.pk] == "Session 3 of 15"
    day = third.starts_at.astimezone(cal.clinic.tz).date()
    html = page(signed_in(cal.front_desk), f"/calendar/?date={day.isoformat()}")
    assert "Session 3 of 15" in html

    # A cancelled visit frees its number: the next one takes it.
    made[2].status = Appointment.Status.CANCELLED
    made[2].save()
    assert planning.session_labels(made)[third.pk] == "Session 2 of 15"

    chart = page(signed_in(cal.front_desk), f"/patients/{course.patient_id}/")
    assert f'href="/calendar/appointments/{third.pk}/"' in chart
    assert f"view=day#appt-{third.pk}" in chart
    assert "Session 2 of 15" in chart


def test_back_to_back_visits_are_set_apart(cal: World, patient: Patient) -> None:
    first = book(cal, patient, at(10, 0), minutes=40)
    second = book(cal, second_patient(cal), at(10, 40), minutes=40)
    apart = book(cal, patient, at(14, 0), minutes=30)
    html = page(signed_in(cal.front_desk), f"/calendar/?date={TUESDAY.isoformat()}")

    def classes(a: Appointment) -> str:
        found = re.search(rf'<div class="([^"]*)" id="appt-{a.pk}">', html)
        assert found is not None
        return found.group(1)

    assert "back-to-back" in classes(second)
    assert "back-to-back" not in classes(first)
    assert "back-to-back" not in classes(apart)
