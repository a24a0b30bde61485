"""The calendar through the JSON API: booking, a whole course, moving with the chain, the
maintenance visit, the next free slot, broken cadences, and who may see what."""

from __future__ import annotations

import datetime as dt
from typing import Any

from mesoclinic.accounts.models import AuditEvent, User
from mesoclinic.api.models import ApiToken
from mesoclinic.courses.models import Course
from mesoclinic.patients.models import Patient
from mesoclinic.scheduling.models import Appointment, WorkingException
from tests.conftest import Api, World, api_for, problem_of
from tests.scheduling_fixtures import NOW, at
from tests.test_planning import _complete, booked, local

DAY = dt.timedelta(days=1)


def iso(moment: dt.datetime) -> str:
    return moment.isoformat()


def body_of(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, (response.status_code, response.content[:600])
    return response.json()


def test_the_front_desk_books_and_lists_and_cancels_an_appointment(
    cal: World, patient: Patient
) -> None:
    api = api_for(cal.front_desk)
    made = body_of(
        api.post(
            "/appointments",
            {
                "patient": patient.pk,
                "kind": "review",
                "practitioner": cal.practitioner.pk,
                "starts_at": iso(at(10)),
                "ends_at": iso(at(10, 20)),
            },
        ),
        201,
    )
    assert made["patient_name"] == "Ana Lopez" and made["practitioner_name"] == "Maria Silva"
    assert made["starts_at"] == "2026-12-01T10:00:00-05:00"
    assert made["room"] is None  # no room asked for

    listed = body_of(api.get("/appointments", start=iso(at(0)), end=iso(at(23))))
    assert [a["id"] for a in listed] == [made["id"]]

    cancelled = body_of(api.post(f"/appointments/{made['id']}/cancel", {"reason": "ill"}))
    assert cancelled["status"] == "cancelled" and cancelled["cancel_reason"] == "ill"
    assert body_of(api.get("/appointments", start=iso(at(0)), end=iso(at(23)))) == []
    listed = api.get("/appointments", start=iso(at(0)), end=iso(at(23)), include_cancelled=True)
    assert [a["status"] for a in body_of(listed)] == ["cancelled"]


def test_a_clash_is_a_409_problem_naming_the_reason(cal: World, patient: Patient) -> None:
    api = api_for(cal.front_desk)
    body = {
        "patient": patient.pk,
        "kind": "review",
        "practitioner": cal.practitioner.pk,
        "starts_at": iso(at(10)),
        "ends_at": iso(at(10, 30)),
    }
    body_of(api.post("/appointments", body), 201)

    clash = problem_of(api.post("/appointments", body | {"starts_at": iso(at(10, 15))}), 409)
    assert [r["code"] for r in clash["reasons"]] == ["practitioner_busy"]
    assert "Maria Silva already has a review 10:00–10:30 on Tue 1 Dec" in clash["detail"]

    past = problem_of(api.post("/appointments", body | {"starts_at": iso(NOW - DAY)}), 422)
    assert past["reasons"][0]["code"] == "invalid"

    naive = api.post("/appointments", body | {"starts_at": "2026-12-01T10:00:00"})
    assert problem_of(naive, 422)["errors"][0]["field"] == "starts_at"

    stranger = problem_of(
        api.post("/appointments", body | {"practitioner": cal.front_desk.pk}), 422
    )
    assert stranger["errors"][0] == {
        "field": "practitioner",
        "message": "is not a practitioner of this clinic.",
    }


def test_a_whole_course_is_proposed_then_booked_in_one_call(cal: World, course: Course) -> None:
    api = api_for(cal.front_desk)
    request = {
        "practitioner": cal.practitioner.pk,
        "preferences": {"weekdays": [2], "earliest_time": "14:00"},
        "dry_run": True,
    }
    proposal = body_of(api.post(f"/courses/{course.pk}/booking", request))
    assert proposal["booked"] is False and proposal["problems"] == []
    assert [v["kind"] for v in proposal["visits"]] == ["allergy_test"] + ["session"] * 15
    assert Appointment.objects.count() == 0

    made = body_of(api.post(f"/courses/{course.pk}/booking", request | {"dry_run": False}), 201)

    assert made["booked"] is True
    assert [v["starts_at"] for v in made["visits"]] == [v["starts_at"] for v in proposal["visits"]]
    assert len(made["appointments"]) == 16
    for visit in made["appointments"]:
        start = dt.datetime.fromisoformat(visit["starts_at"])
        assert start.weekday() == 2 and start.time() >= dt.time(14)

    again = problem_of(api.post(f"/courses/{course.pk}/booking", {}), 409)
    assert "already booked or done" in again["detail"]


def test_a_move_previews_then_shifts_the_chain(cal: World, course: Course) -> None:
    api = api_for(cal.front_desk)
    body_of(api.post(f"/courses/{course.pk}/booking", {"practitioner": cal.practitioner.pk}), 201)
    sessions = [a for a in booked(course) if a.kind == "session"]
    target = sessions[1].starts_at  # session 1 moves to where session 2 was

    preview = body_of(
        api.post(
            f"/appointments/{sessions[0].pk}/move", {"starts_at": iso(target), "dry_run": True}
        )
    )
    assert preview["applied"] is False and preview["problems"] == []
    assert [c["appointment"] for c in preview["changes"]] == [a.pk for a in sessions]
    assert booked(course)[1].starts_at == sessions[0].starts_at  # nothing written yet

    applied = body_of(api.post(f"/appointments/{sessions[0].pk}/move", {"starts_at": iso(target)}))
    assert applied["applied"] is True
    assert [c["starts_at"] for c in applied["changes"]] == [
        c["starts_at"] for c in preview["changes"]
    ]
    assert applied["changes"][0]["from_starts_at"] == local(sessions[0].starts_at).isoformat()


def test_a_move_that_breaks_the_cadence_needs_accept_break(cal: World, course: Course) -> None:
    api = api_for(cal.front_desk)
    body_of(api.post(f"/courses/{course.pk}/booking", {"practitioner": cal.practitioner.pk}), 201)
    first = booked(course)[1]
    target = first.starts_at + 4 * DAY
    while local(target).weekday() >= 5:
        target += DAY
    for n in range(1, 14):
        WorkingException.objects.create(
            clinic=cal.clinic,
            user=cal.practitioner,
            date=local(target).date() + n * DAY,
            kind="time_off",
        )
    move = f"/appointments/{first.pk}/move"

    refused = problem_of(api.post(move, {"starts_at": iso(target)}), 409)
    assert refused["reasons"][0]["code"] == "cadence"
    assert "cannot keep its window" in refused["reasons"][0]["message"]

    accepted = body_of(api.post(move, {"starts_at": iso(target), "accept_break": True}))
    assert [c["appointment"] for c in accepted["changes"]] == [first.pk]
    flags = body_of(api.get("/calendar/cadence-flags"))
    assert flags == []  # the course has no session given yet: Today's due list covers it


def test_the_next_free_slot_and_the_maintenance_visit(cal: World, course: Course) -> None:
    api = api_for(cal.front_desk)
    slot = body_of(api.get("/calendar/next-free", practitioner=cal.practitioner.pk, minutes=45))
    assert slot["starts_at"] == "2026-11-23T09:00:00-05:00"
    assert slot["ends_at"] == "2026-11-23T09:45:00-05:00"
    assert "minutes" in {
        e["field"]
        for e in problem_of(
            api.get("/calendar/next-free", practitioner=cal.practitioner.pk, minutes=1), 422
        )["errors"]
    }

    proposal = body_of(api.get(f"/courses/{course.pk}/maintenance"))
    assert proposal["visits"] == []
    assert proposal["problems"] == ["Maintenance is proposed once the course is completed."]

    _complete(course, cal, at(10, 0, NOW.date() - 7 * DAY))
    proposal = body_of(api.get(f"/courses/{course.pk}/maintenance"))
    assert len(proposal["visits"]) == 1 and proposal["visits"][0]["kind"] == "maintenance"
    made = body_of(api.post(f"/courses/{course.pk}/maintenance"), 201)
    assert made["starts_at"] == proposal["visits"][0]["starts_at"]
    assert made["kind"] == "maintenance"


def test_reading_one_appointment_is_audited(cal: World, patient: Patient) -> None:
    api = api_for(cal.front_desk)
    made = body_of(
        api.post(
            "/appointments",
            {
                "patient": patient.pk,
                "kind": "review",
                "practitioner": cal.practitioner.pk,
                "starts_at": iso(at(10)),
                "ends_at": iso(at(10, 20)),
            },
        ),
        201,
    )
    body_of(api.get(f"/appointments/{made['id']}"))
    seen = AuditEvent.objects.filter(action="view", object_id=str(made["id"]))
    assert seen.count() == 1 and seen.get().patient_id == patient.pk


def test_another_clinic_and_a_patient_see_nothing(
    cal: World, other: World, patient: Patient, course: Course
) -> None:
    made = body_of(
        api_for(cal.front_desk).post(
            "/appointments",
            {
                "patient": patient.pk,
                "kind": "review",
                "practitioner": cal.practitioner.pk,
                "starts_at": iso(at(10)),
                "ends_at": iso(at(10, 20)),
            },
        ),
        201,
    )
    stranger = api_for(other.manager)
    assert body_of(stranger.get("/appointments", start=iso(at(0)), end=iso(at(23)))) == []
    for call in (
        stranger.get(f"/appointments/{made['id']}"),
        stranger.post(f"/appointments/{made['id']}/cancel", {}),
        stranger.post(f"/appointments/{made['id']}/move", {"starts_at": iso(at(11))}),
        stranger.post(f"/courses/{course.pk}/booking", {"dry_run": True}),
        stranger.get(f"/courses/{course.pk}/maintenance"),
    ):
        problem_of(call, 404)
    problem_of(stranger.get("/calendar/next-free", practitioner=cal.practitioner.pk), 422)

    user = User.objects.create_user("ana", password="pw")
    patient.user = user
    patient.save(update_fields=["user"])
    _, raw = ApiToken.issue(user, None)
    own = Api(raw)
    for call in (
        own.get("/appointments", start=iso(at(0)), end=iso(at(23))),
        own.get(f"/appointments/{made['id']}"),
        own.get("/calendar/cadence-flags"),
    ):
        problem_of(call, 403)
    assert Appointment.objects.get(pk=made["id"]).status == "booked"
