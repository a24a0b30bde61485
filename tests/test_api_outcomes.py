"""Measurements and progress in the JSON API: recording, 422 problems naming the field,
roles, tenancy, audit, and a patient reading their own progress."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from mesoclinic.accounts.models import AuditEvent, User
from mesoclinic.api.models import ApiToken
from mesoclinic.courses.models import Course
from mesoclinic.outcomes.models import Measurement
from mesoclinic.patients.models import Patient
from tests.conftest import Api, World, ago, api_for, error_fields, iso, problem_of
from tests.test_outcomes import fresh_course

HEXSEL = {
    "kind": "hexsel_css",
    "items": {"number": 3, "depth": 2, "morphology": 2, "laxity": 1, "nurnberger_muller": 2},
}


@pytest.fixture
def course(world: World, patient: Patient) -> Course:
    return fresh_course(world, patient)


def patient_api(patient: Patient, username: str) -> Api:
    user = User.objects.create_user(username, password="pw")
    patient.user = user
    patient.save(update_fields=["user"])
    _, raw = ApiToken.issue(user, None)
    return Api(raw)


class RecordTests:
    def test_a_practitioner_records_a_hexsel_score_and_gets_its_band(
        self, world: World, patient: Patient, course: Course
    ) -> None:
        r = api_for(world.practitioner).post(
            f"/courses/{course.pk}/measurements", {**HEXSEL, "taken_at": iso(ago(days=2))}
        )
        assert r.status_code == 201, r.content
        body = r.json()
        assert (body["value"], body["band"], body["items"]["number"]) == (10.0, "moderate", 3)
        event = AuditEvent.objects.get(object_type="outcomes.Measurement")
        assert (event.action, event.patient_id, event.via) == ("create", patient.pk, "api")

    def test_a_waist_carries_its_loinc(self, world: World, course: Course) -> None:
        r = api_for(world.manager).post(
            f"/courses/{course.pk}/measurements",
            {"kind": "circumference", "site": "waist", "value": 80.5, "taken_at": iso(ago(days=1))},
        )
        assert r.status_code == 201 and r.json()["loinc"] == "8280-0"

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({**HEXSEL, "items": {**HEXSEL["items"], "depth": 4}}, "items.depth"),
            ({"kind": "nurnberger_muller", "value": 1.5}, "value"),
            ({"kind": "circumference", "site": "waist", "value": -2}, "value"),
            ({"kind": "circumference", "site": "elbow", "value": 30}, "site"),
            ({"kind": "weight", "value": 900}, "value"),
            ({"kind": "gais", "value": 2}, "kind"),
            ({"kind": "mood", "value": 2}, "kind"),
            ({"kind": "weight", "value": "heavy"}, "value"),
        ],
    )
    def test_bad_input_is_a_422_problem_naming_the_field(
        self, world: World, course: Course, body: dict[str, Any], field: str
    ) -> None:
        r = api_for(world.practitioner).post(
            f"/courses/{course.pk}/measurements", {**body, "taken_at": iso(ago(days=1))}
        )
        assert error_fields(r) == {field}
        assert not Measurement.objects.exists()

    def test_a_date_before_the_course_or_without_a_zone_is_refused(
        self, world: World, course: Course
    ) -> None:
        api = api_for(world.practitioner)
        r = api.post(
            f"/courses/{course.pk}/measurements",
            {"kind": "weight", "value": 70, "taken_at": iso(ago(days=10))},
        )
        assert error_fields(r) == {"taken_at"}
        assert "before the course" in problem_of(r, 422)["detail"]
        r = api.post(
            f"/courses/{course.pk}/measurements",
            {"kind": "weight", "value": 70, "taken_at": "2026-01-01T10:00:00"},
        )
        assert error_fields(r) == {"taken_at"}

    def test_a_visit_is_all_or_nothing_naming_the_reading(
        self, world: World, course: Course
    ) -> None:
        api = api_for(world.practitioner)
        body = {
            "taken_at": iso(ago(days=1)),
            "measurements": [HEXSEL, {"kind": "weight", "value": 0}],
        }
        r = api.post(f"/courses/{course.pk}/visits", body)
        assert error_fields(r) == {"measurements.1.value"}
        assert not Measurement.objects.exists()
        body["measurements"][1] = {"kind": "weight", "value": 71}  # type: ignore[index]
        r = api.post(f"/courses/{course.pk}/visits", body)
        assert r.status_code == 201 and [m["kind"] for m in r.json()] == ["hexsel_css", "weight"]

    def test_the_front_desk_may_read_but_not_record(self, world: World, course: Course) -> None:
        api = api_for(world.front_desk)
        r = api.post(
            f"/courses/{course.pk}/measurements",
            {"kind": "weight", "value": 70, "taken_at": iso(ago(days=1))},
        )
        problem_of(r, 403)
        assert api.get(f"/courses/{course.pk}/measurements").status_code == 200
        assert not Measurement.objects.exists()

    def test_another_clinic_gets_404_for_every_endpoint(
        self, world: World, other: World, course: Course
    ) -> None:
        api = api_for(other.manager)
        body = {"kind": "weight", "value": 70, "taken_at": iso(ago(days=1))}
        problem_of(api.post(f"/courses/{course.pk}/measurements", body), 404)
        problem_of(api.get(f"/courses/{course.pk}/measurements"), 404)
        problem_of(api.get(f"/courses/{course.pk}/progress"), 404)
        assert not Measurement.objects.exists()


class ProgressTests:
    def test_it_returns_the_series_the_trajectory_and_its_source(
        self, world: World, patient: Patient, course: Course
    ) -> None:
        api = api_for(world.front_desk)
        api_for(world.practitioner).post(
            f"/courses/{course.pk}/visits",
            {
                "taken_at": iso(ago(days=2)),
                "measurements": [HEXSEL, {"kind": "circumference", "site": "hip", "value": 99}],
            },
        )
        body = api.get(f"/courses/{course.pk}/progress").json()
        assert (body["course"], body["sessions_done"], body["sessions_planned"]) == (
            course.pk,
            0,
            15,
        )
        css, hip = body["series"]
        assert css["points"] == [{"sessions": 0, "value": 10.0, "date": css["points"][0]["date"]}]
        assert css["trajectory"]["points"] == [
            {"sessions": 0, "value": 10.0},
            {"sessions": 10, "value": 5.0},
        ]
        assert css["trajectory"]["sources"] == ["Reducing Cellulite with Mesotherapy"]
        assert (hip["label"], hip["unit"], hip["trajectory"]) == ("Circumference, Hip", "cm", None)
        assert (css["change"], css["change_percent"]) == (0.0, 0.0)
        event = AuditEvent.objects.filter(action="view", detail__read="progress").get()
        assert event.patient_id == patient.pk


class PatientAccessTests:
    def test_a_patient_reads_their_own_progress_and_records_their_satisfaction(
        self, world: World, patient: Patient, course: Course
    ) -> None:
        api = patient_api(patient, "ana")
        assert api.get(f"/courses/{course.pk}/progress").status_code == 200
        r = api.post(
            f"/courses/{course.pk}/measurements",
            {"kind": "satisfaction", "value": 8, "taken_at": iso(ago(hours=1))},
        )
        assert r.status_code == 201, r.content
        m = Measurement.objects.get()
        assert (m.kind, m.value, m.recorded_by.username) == ("satisfaction", 8, "ana")

    def test_a_patient_may_record_nothing_but_satisfaction(
        self, world: World, patient: Patient, course: Course
    ) -> None:
        api = patient_api(patient, "ana")
        r = api.post(
            f"/courses/{course.pk}/measurements",
            {"kind": "weight", "value": 60, "taken_at": iso(ago(hours=1))},
        )
        problem_of(r, 403)
        assert not Measurement.objects.exists()

    def test_a_patient_cannot_read_or_write_another_patients_course(
        self, world: World, patient: Patient, course: Course
    ) -> None:
        someone = Patient.objects.create(
            clinic=world.clinic, first_name="Eve", last_name="Ng", date_of_birth=dt.date(1991, 1, 1)
        )
        api = patient_api(someone, "eve")
        problem_of(api.get(f"/courses/{course.pk}/progress"), 404)
        problem_of(api.get(f"/courses/{course.pk}/measurements"), 404)
        r = api.post(
            f"/courses/{course.pk}/measurements",
            {"kind": "satisfaction", "value": 1, "taken_at": iso(ago(hours=1))},
        )
        problem_of(r, 404)
        assert not Measurement.objects.exists()

    def test_a_user_with_no_clinic_and_no_patient_record_is_forbidden(
        self, world: World, course: Course
    ) -> None:
        user = User.objects.create_user("nobody", password="pw")
        _, raw = ApiToken.issue(user, None)
        problem_of(Api(raw).get(f"/courses/{course.pk}/progress"), 403)
