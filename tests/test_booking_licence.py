"""Issue 12, booking defects: a practitioner whose licence has expired (or who has none) stays
out of every picker and slot search for a visit where the practitioner injects, in the web
and the API, so nothing is offered that the booking would refuse; and a practitioner's day
off reads as a whole sentence."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from urllib.parse import urlencode

import pytest

from mesoclinic.accounts.models import PractitionerLicence
from mesoclinic.courses.models import Course
from mesoclinic.patients.models import Patient
from mesoclinic.scheduling import planning
from mesoclinic.scheduling.actions import BookingRefused, do_book
from mesoclinic.scheduling.models import Appointment
from tests.conftest import World, api_for, problem_of
from tests.scheduling_fixtures import NOW, at
from tests.test_web import signed_in

MONDAY = NOW.date()
FORTY = dt.timedelta(minutes=40)


def licence_until(world: World, day: dt.date) -> None:
    PractitionerLicence.objects.filter(clinic=world.clinic, user=world.practitioner).update(
        expires_on=day
    )


def slot_query(cal: World, patient: Patient, **changes: Any) -> str:
    query: dict[str, Any] = {
        "patient": patient.pk,
        "kind": "session",
        "practitioner": cal.practitioner.pk,
        "course": "",
        "minutes": 30,
    }
    query.update(changes)
    return "/calendar/book/?" + urlencode(query)


def test_the_slot_search_offers_no_day_past_the_licence(cal: World, patient: Patient) -> None:
    licence_until(cal, MONDAY + dt.timedelta(days=1))  # valid through Tuesday 24 Nov
    wednesday = at(9, 0, MONDAY + dt.timedelta(days=2))

    # A review needs no licence: Wednesday is offered.
    found = planning.next_free_slot(
        cal.clinic, cal.practitioner, FORTY, not_before=wednesday, kind="review"
    )
    assert found == wednesday
    # A session is refused by the booking path on Wednesday, so the search never offers it.
    with pytest.raises(BookingRefused) as refused:
        do_book(
            patient,
            kind="session",
            practitioner=cal.practitioner,
            starts_at=wednesday,
            ends_at=wednesday + FORTY,
            user=cal.front_desk,
        )
    assert refused.value.codes == ["practitioner_unlicensed"]
    assert (
        planning.next_free_slot(
            cal.clinic, cal.practitioner, FORTY, not_before=wednesday, kind="session"
        )
        is None
    )
    # Before the licence ends the session is offered as before.
    assert planning.next_free_slot(
        cal.clinic, cal.practitioner, FORTY, not_before=at(9, 0, MONDAY), kind="session"
    ) == at(9, 0, MONDAY)


def test_the_web_search_refuses_an_expired_practitioner_beside_the_field(
    cal: World, patient: Patient
) -> None:
    licence_until(cal, MONDAY - dt.timedelta(days=3))
    client = signed_in(cal.front_desk)

    html = client.get(slot_query(cal, patient)).content.decode()

    assert "Maria Silva&#x27;s licence expired on 20 Nov 2026." in html
    assert "A session needs a practitioner with a valid licence; choose another." in html
    assert "Book this slot" not in html
    # The picker says who may not inject, and a review with her is still offered.
    assert "Maria Silva (no valid licence: reviews and test readings only)" in html
    review = client.get(slot_query(cal, patient, kind="review")).content.decode()
    assert "Monday 23 November 2026, 09:00–09:30" in review
    assert "Book this slot" in review


def test_the_next_one_after_never_crosses_the_licences_end(cal: World, patient: Patient) -> None:
    licence_until(cal, MONDAY)  # valid through today only
    client = signed_in(cal.front_desk)
    late = client.get(slot_query(cal, patient, after="2026-11-23T17:45")).content.decode()
    assert "Book this slot" not in late
    assert "has no free time for this visit" in late
    assert Appointment.objects.count() == 0


def test_the_book_course_picker_leaves_out_an_expired_practitioner(
    cal: World, course: Course
) -> None:
    client = signed_in(cal.front_desk)
    page = client.get(f"/courses/{course.pk}/booking/").content.decode()
    assert f'<option value="{cal.practitioner.pk}">Maria Silva</option>' in page

    licence_until(cal, MONDAY - dt.timedelta(days=1))
    page = client.get(f"/courses/{course.pk}/booking/").content.decode()
    assert "Maria Silva" not in re.sub(r"<p class=\"[^\"]*\">.*?</p>", "", page.split("<select")[1])
    chosen = client.get(
        f"/courses/{course.pk}/booking/", {"practitioner": cal.practitioner.pk}
    ).content.decode()
    assert "Select a valid choice." in chosen


def test_the_api_search_refuses_an_expired_practitioner_for_an_injecting_visit(
    cal: World, patient: Patient
) -> None:
    licence_until(cal, MONDAY - dt.timedelta(days=3))
    api = api_for(cal.front_desk)

    problem = problem_of(
        api.get("/calendar/next-free", practitioner=cal.practitioner.pk, kind="session"), 422
    )
    assert [e["field"] for e in problem["errors"]] == ["practitioner"]
    assert "Maria Silva's licence expired on 20 Nov 2026." in problem["errors"][0]["message"]
    review = api.get("/calendar/next-free", practitioner=cal.practitioner.pk, kind="review")
    assert review.json()["starts_at"] == "2026-11-23T09:00:00-05:00"
    problem_of(api.get("/calendar/next-free", practitioner=cal.practitioner.pk, kind="x"), 422)


def test_a_day_off_reads_as_a_sentence(cal: World, patient: Patient) -> None:
    saturday = dt.date(2026, 12, 5)
    with pytest.raises(BookingRefused) as refused:
        do_book(
            patient,
            kind="review",
            practitioner=cal.practitioner,
            starts_at=at(10, 0, saturday),
            ends_at=at(10, 30, saturday),
            user=cal.front_desk,
        )
    assert str(refused.value) == (
        "Maria Silva does not work on Sat 5 Dec, so a review at 10:00–10:30 cannot be booked."
    )
    assert "none" not in str(refused.value)


def test_the_move_form_offers_no_unlicensed_practitioner_for_a_session(
    cal: World, patient: Patient
) -> None:
    visit = do_book(
        patient,
        kind="session",
        practitioner=cal.manager,
        starts_at=at(10, 0),
        ends_at=at(10, 40),
        user=cal.front_desk,
    )
    client = signed_in(cal.front_desk)
    page = client.get(f"/calendar/appointments/{visit.pk}/").content.decode()
    assert f'<option value="{cal.practitioner.pk}">Maria Silva</option>' in page

    licence_until(cal, MONDAY - dt.timedelta(days=1))
    page = client.get(f"/calendar/appointments/{visit.pk}/").content.decode()
    assert "Maria Silva" not in page
