"""The audit trail: every chart read and every change names who, in which clinic, on which
patient's chart; overrides and refusals of a safety gate are audited too."""

from __future__ import annotations

from typing import Any

import pytest

from mesoclinic.accounts.models import AuditEvent
from mesoclinic.courses.models import Session
from mesoclinic.patients.models import Patient
from tests.conftest import (
    Scene,
    World,
    ago,
    all_no,
    api_for,
    iso,
    plan_course_body,
    problem_of,
    ready_course,
    session_body,
)


def new_events(since: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(pk__gt=since).order_by("pk"))


def last_id() -> int:
    return AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def assert_event(
    event: AuditEvent, *, action: str, user: Any, world: World, patient: Patient, object_type: str
) -> None:
    assert event.action == action
    assert event.user == user
    assert event.clinic == world.clinic
    assert event.patient_id == patient.pk
    assert event.object_type == object_type
    assert event.via == "api"


class AuditTests:
    def test_reading_a_chart_is_audited(self, world: World, patient: Patient) -> None:
        since = last_id()
        r = api_for(world.front_desk).get(f"/patients/{patient.pk}")
        assert r.status_code == 200
        [event] = new_events(since)
        assert_event(
            event,
            action="view",
            user=world.front_desk,
            world=world,
            patient=patient,
            object_type="patients.Patient",
        )
        assert event.object_id == str(patient.pk)

    def test_reading_a_course_is_audited(self, world: World, patient: Patient) -> None:
        course = api_for(world.practitioner).post(
            f"/patients/{patient.pk}/courses", plan_course_body()
        )
        since = last_id()
        r = api_for(world.front_desk).get(f"/courses/{course.json()['id']}")
        assert r.status_code == 200
        [event] = new_events(since)
        assert_event(
            event,
            action="view",
            user=world.front_desk,
            world=world,
            patient=patient,
            object_type="courses.Course",
        )
        assert event.object_id == str(course.json()["id"])

    def test_charting_a_session_is_audited_with_its_lots(
        self, world: World, patient: Patient
    ) -> None:
        api = api_for(world.practitioner)
        course = ready_course(api, world, patient)
        since = last_id()
        r = api.post(f"/courses/{course['id']}/sessions", session_body(world.lot))
        assert r.status_code == 201, r.content
        [event] = new_events(since)
        assert_event(
            event,
            action="create",
            user=world.practitioner,
            world=world,
            patient=patient,
            object_type="courses.Session",
        )
        assert event.object_id == str(r.json()["id"])
        assert event.detail["lots"] == [world.lot.pk]

    def test_an_override_is_audited_with_who_why_and_what_was_lifted(self, scene: Scene) -> None:
        api = api_for(scene.world.manager)
        since = last_id()
        r = api.post(
            f"/courses/{scene.course['id']}/sessions",
            session_body(
                scene.world.lot,
                ago(minutes=5),
                override_codes=["interval_too_short"],
                override_reason="  The patient leaves the country tomorrow.  ",
            ),
        )
        assert r.status_code == 201, r.content
        created, override = new_events(since)
        assert created.action == "create"
        assert_event(
            override,
            action="override",
            user=scene.world.manager,
            world=scene.world,
            patient=scene.patient,
            object_type="courses.Session",
        )
        assert override.object_id == str(r.json()["id"])
        assert override.detail["codes"] == ["interval_too_short"]
        assert override.detail["reason"] == "The patient leaves the country tomorrow."
        assert [x["code"] for x in override.detail["refusals"]] == ["interval_too_short"]

    def test_a_session_without_an_override_writes_no_override_row(self, scene: Scene) -> None:
        assert not AuditEvent.objects.filter(action="override").exists()
        assert (
            AuditEvent.objects.filter(
                action="create", object_type="courses.Session", patient_id=scene.patient.pk
            ).count()
            == 1
        )

    def test_a_refused_session_is_audited_with_every_reason(
        self, world: World, patient: Patient
    ) -> None:
        api = api_for(world.practitioner)
        course = api.post(f"/patients/{patient.pk}/courses", plan_course_body()).json()
        api.post(
            f"/patients/{patient.pk}/screenings",
            {"answers": all_no(world.clinic), "screened_at": iso(ago(hours=2))},
        )
        since = last_id()
        r = api.post(f"/courses/{course['id']}/sessions", session_body(world.expired_lot))
        codes = [x["code"] for x in problem_of(r, 409)["reasons"]]
        assert not Session.objects.exists()
        [event] = new_events(since)
        assert_event(
            event,
            action="refuse",
            user=world.practitioner,
            world=world,
            patient=patient,
            object_type="courses.Session",
        )
        assert event.object_id == ""
        assert event.detail["course"] == course["id"]
        assert [x["code"] for x in event.detail["reasons"]] == codes
        assert set(codes) == {"no_consent", "allergy_test_missing", "lot_expired", "no_baseline"}

    def test_a_search_is_audited_with_each_patient_it_found(
        self, world: World, patient: Patient
    ) -> None:
        since = last_id()
        api_for(world.front_desk).get("/patients", q="Lopez")
        search, found = sorted(new_events(since), key=lambda e: e.patient_id or 0)
        # The search itself, even had it found no one, and then each patient it showed.
        assert (search.action, search.object_type, search.patient_id) == (
            "view",
            "patients.Patient",
            None,
        )
        assert search.detail == {"query": "Lopez"}
        assert (search.user, search.clinic) == (world.front_desk, world.clinic)
        assert (found.action, found.patient_id) == ("view", patient.pk)
        assert found.detail == {"page": "patient search", "query": "Lopez"}

    def test_exporting_a_lots_patients_is_audited(self, scene: Scene) -> None:
        since = last_id()
        r = api_for(scene.world.practitioner).get(f"/lots/{scene.world.lot.pk}/patients")
        assert r.status_code == 200
        [event, named] = sorted(new_events(since), key=lambda e: e.patient_id or 0)
        assert (event.action, event.object_type, event.object_id) == (
            "export",
            "formulary.Lot",
            str(scene.world.lot.pk),
        )
        assert event.detail["patients"] == [scene.patient.pk]
        # And a row naming each patient, so the patient's own trail shows the export.
        assert (named.action, named.patient_id) == ("export", scene.patient.pk)
        assert (event.user, event.clinic) == (scene.world.practitioner, scene.world.clinic)

    def test_each_step_of_a_course_leaves_a_row_on_the_chart(
        self, world: World, patient: Patient
    ) -> None:
        api = api_for(world.practitioner)
        since = last_id()
        course = ready_course(api, world, patient)
        api.post(f"/courses/{course['id']}/sessions", session_body(world.lot))
        rows = [
            (e.action, e.object_type)
            for e in new_events(since)
            if e.patient_id == patient.pk and e.action != "view"
        ]
        assert rows == [
            ("create", "courses.Course"),
            ("create", "patients.Screening"),
            ("create", "patients.Consent"),
            ("create", "courses.AllergyTest"),
            ("create", "courses.AllergyReading"),
            ("create", "courses.Session"),
        ]
        assert {e.user for e in new_events(since)} == {world.practitioner}
        assert {e.clinic for e in new_events(since)} == {world.clinic}

    def test_a_reading_refused_by_role_or_clinic_is_not_audited_as_a_view(
        self, world: World, other: World, patient: Patient
    ) -> None:
        since = last_id()
        assert api_for(other.manager).get(f"/patients/{patient.pk}").status_code == 404
        assert api_for(world.front_desk).get(f"/lots/{world.lot.pk}/patients").status_code == 403
        assert new_events(since) == []


class TrailCommitTests:
    """A read's audit row commits without waiting for the disk; a change's still waits, and the
    connection is left as it was configured."""

    def statements(self, write: Any) -> list[str]:
        from django.db import connection

        seen: list[str] = []

        def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
            seen.append(sql)
            return execute(sql, params, many, context)

        with connection.execute_wrapper(record):
            write()
        return seen

    def durability(self) -> str:
        from django.db import connection

        with connection.cursor() as cursor:
            if connection.vendor == "sqlite":
                cursor.execute("PRAGMA synchronous")
                return {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[cursor.fetchone()[0]]
            cursor.execute("SHOW synchronous_commit")
            return str(cursor.fetchone()[0])

    @pytest.mark.django_db(transaction=True)
    def test_a_read_commits_without_waiting_and_a_change_waits(self, world: World) -> None:
        from django.db import connection

        from mesoclinic.accounts.models import audit, audit_many

        before = self.durability()
        assert before == ("FULL" if connection.vendor == "sqlite" else "on")
        patient = Patient.objects.create(
            clinic=world.clinic, first_name="Ana", last_name="Lopez", date_of_birth="1990-05-17"
        )
        relaxed = (
            "PRAGMA synchronous=NORMAL"
            if connection.vendor == "sqlite"
            else "SET LOCAL synchronous_commit TO OFF"
        )

        def read_one() -> None:
            audit(clinic=world.clinic, user=None, action="view", obj=patient, patient_id=patient.pk)

        def read_many() -> None:
            audit_many(
                clinic=world.clinic,
                user=None,
                action="view",
                via="web",
                entries=[(patient, patient.pk, {"page": "Today"})] * 3,
            )

        def change() -> None:
            audit(
                clinic=world.clinic, user=None, action="update", obj=patient, patient_id=patient.pk
            )

        for read in (read_one, read_many):
            assert relaxed in self.statements(read)
            assert self.durability() == before
        assert relaxed not in self.statements(change)
        rows = AuditEvent.objects.filter(patient_id=patient.pk)
        assert [r.action for r in rows.order_by("pk")] == ["view"] * 4 + ["update"]
        assert rows.filter(detail={"page": "Today"}).count() == 3

    @pytest.mark.django_db(transaction=True)
    def test_inside_a_transaction_the_read_commits_with_it(self, world: World) -> None:
        from django.db import transaction

        from mesoclinic.accounts.models import audit

        with transaction.atomic():
            seen = self.statements(
                lambda: audit(clinic=world.clinic, user=None, action="view", object_type="x")
            )
        assert not any("synchronous" in sql for sql in seen)
