"""The iCalendar feeds: a practitioner's and a patient's, read by a calendar app without a
login, with the address as the only secret."""

from __future__ import annotations

import datetime as dt
import re

from django.test import Client

from mesoclinic.accounts.models import AuditEvent
from mesoclinic.lib.ical import unfold
from mesoclinic.patients.models import Patient
from mesoclinic.scheduling import planning
from mesoclinic.scheduling.actions import do_book, do_cancel
from mesoclinic.scheduling.models import Appointment, CalendarFeed
from tests.conftest import World
from tests.scheduling_fixtures import at
from tests.test_web import signed_in


def visit(cal: World, patient: Patient, hour: int) -> Appointment:
    return do_book(
        patient,
        kind="review",
        practitioner=cal.practitioner,
        starts_at=at(hour),
        ends_at=at(hour, 20),
        user=cal.front_desk,
    )


def fetch(url: str) -> tuple[int, list[str], str]:
    response = Client().get(url, HTTP_HOST="localhost")
    text = response.content.decode()
    return response.status_code, unfold(text) if response.status_code == 200 else [], text


def address_in(page: str) -> str:
    """The feed's address as the page shows it: the only place it exists, since the database
    keeps only its hash."""
    found = re.search(r"/feeds/[A-Za-z0-9_\-]+\.ics", page)
    assert found is not None, "no calendar address on the page"
    return found.group(0)


def events(lines: list[str]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for line in lines:
        if line == "BEGIN:VEVENT":
            out.append({})
        elif out and ":" in line and line != "END:VEVENT":
            key, _, value = line.partition(":")
            out[-1][key] = value
    return out


def test_a_practitioner_subscribes_to_their_visits_with_initials_only(
    cal: World, patient: Patient
) -> None:
    first, second = visit(cal, patient, 10), visit(cal, patient, 11)
    other = Patient.objects.create(
        clinic=cal.clinic, first_name="Bea", last_name="Diaz", date_of_birth=dt.date(1985, 1, 2)
    )
    do_book(
        other,
        kind="review",
        practitioner=cal.manager,
        starts_at=at(10),
        ends_at=at(10, 20),
        user=cal.front_desk,
    )
    client = signed_in(cal.practitioner)
    page = client.post("/my-calendar/", follow=True).content.decode()
    url = address_in(page)

    status, lines, raw = fetch(url)

    assert status == 200 and "\r\n" in raw
    found = events(lines)
    assert [e["UID"] for e in found] == [
        f"appointment-{first.pk}@localhost",
        f"appointment-{second.pk}@localhost",
    ]
    assert found[0]["SUMMARY"] == "Review · A. L."
    assert found[0]["DTSTART"] == "20261201T150000Z"
    assert "Lopez" not in raw and "Diaz" not in raw and "B. D." not in raw


def test_a_cancelled_visit_stays_as_cancelled_and_a_moved_one_gets_a_new_sequence(
    cal: World, patient: Patient
) -> None:
    first, second = visit(cal, patient, 10), visit(cal, patient, 11)
    page = signed_in(cal.practitioner).post("/my-calendar/", follow=True).content.decode()
    url = address_in(page)
    before = {e["UID"]: e for e in events(fetch(url)[1])}

    do_cancel(first, user=cal.front_desk)
    planning.do_move(second, at(14), user=cal.front_desk)
    after = {e["UID"]: e for e in events(fetch(url)[1])}

    uid1, uid2 = (f"appointment-{a.pk}@localhost" for a in (first, second))
    assert before[uid1]["STATUS"] == "CONFIRMED" and after[uid1]["STATUS"] == "CANCELLED"
    assert int(after[uid1]["SEQUENCE"]) > int(before[uid1]["SEQUENCE"])
    assert after[uid2]["DTSTART"] == "20261201T190000Z"
    assert int(after[uid2]["SEQUENCE"]) > int(before[uid2]["SEQUENCE"])


def test_a_patients_link_shows_only_their_visits_and_a_new_link_stops_the_old(
    cal: World, patient: Patient
) -> None:
    visit(cal, patient, 10)
    other = Patient.objects.create(
        clinic=cal.clinic, first_name="Bea", last_name="Diaz", date_of_birth=dt.date(1985, 1, 2)
    )
    visit(cal, other, 11)
    desk = signed_in(cal.front_desk)
    chart = desk.post(f"/patients/{patient.pk}/calendar-feed/", follow=True).content.decode()
    old = CalendarFeed.objects.get(patient=patient)
    old_url = address_in(chart)

    status, lines, raw = fetch(old_url)
    assert status == 200
    found = events(lines)
    assert len(found) == 1
    assert found[0]["SUMMARY"] == f"Review at {cal.clinic.name}"
    assert found[0]["DESCRIPTION"] == "With Maria Silva."

    chart = desk.post(f"/patients/{patient.pk}/calendar-feed/", follow=True).content.decode()
    assert fetch(old_url)[0] == 404
    new_url = address_in(chart)
    assert fetch(new_url)[0] == 200

    desk.post(f"/patients/{patient.pk}/calendar-feed/", {"revoke": ""})
    assert fetch(new_url)[0] == 404
    trail = AuditEvent.objects.filter(object_type="scheduling.CalendarFeed").order_by("pk")
    assert [(e.action, e.detail) for e in trail] == [
        ("create", {"replaced": []}),
        ("create", {"replaced": [old.pk]}),
        ("revoke", {"revoked": True}),
    ]


def test_an_unknown_address_and_another_clinic_find_nothing(
    cal: World, other: World, patient: Patient
) -> None:
    assert fetch("/feeds/not-a-token.ics")[0] == 404
    stranger = signed_in(other.front_desk)
    assert stranger.post(f"/patients/{patient.pk}/calendar-feed/").status_code == 404
    assert not CalendarFeed.objects.exists()
    # The front desk has no visits of its own to subscribe to.
    assert signed_in(cal.front_desk).get("/my-calendar/").status_code == 403
