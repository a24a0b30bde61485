"""FHIR Bulk Data `$export` (/fhir/R4B/$export): kick-off, the worker, status, files, access."""

from __future__ import annotations

import datetime as dt
import importlib
import io
import json
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from fhir.resources.R4B.operationoutcome import OperationOutcome

from mesoclinic.accounts.models import AuditEvent, Membership, User
from mesoclinic.fhir import bulk
from mesoclinic.fhir.models import ExportJob
from mesoclinic.patients.models import Patient
from tests.conftest import Scene, World, api_for
from tests.test_fhir import clinic, patient_login

ROOT = "/fhir/R4B"
# tests/test_fhir.py's fixture of one record of every type, as `records` here.
records = clinic
COMPARTMENT = {
    "Patient",
    "Procedure",
    "MedicationAdministration",
    "Observation",
    "AllergyIntolerance",
    "Consent",
    "CarePlan",
    "Appointment",
    "AdverseEvent",
    "QuestionnaireResponse",
    "DocumentReference",
}


class Bulk:
    """A Bulk Data client: a bearer token (or none) and the IG's kick-off headers."""

    def __init__(self, token: str | None):
        self.client = Client()
        self.token = token

    def headers(self, **extra: str) -> dict[str, str]:
        out = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return {**out, **extra}

    def kick_off(self, path: str = "$export", prefer: bool = True, **params: Any) -> Any:
        headers = self.headers(Accept="application/fhir+json")
        if prefer:
            headers["Prefer"] = "respond-async"
        return self.client.get(f"{ROOT}/{path}", params, headers=headers)

    def get(self, url: str) -> Any:
        return self.client.get(url, headers=self.headers())

    def delete(self, url: str) -> Any:
        return self.client.delete(url, headers=self.headers())


def bulk_for(user: User) -> Bulk:
    return Bulk(api_for(user).token)


def status_url(response: Any) -> str:
    assert response.status_code == 202, response.content
    url: str = response["Content-Location"]
    assert "/fhir/R4B/$export-status/" in url
    return url


def tick() -> str:
    out = io.StringIO()
    call_command("worker", once=True, stdout=out)
    return out.getvalue()


def issue(response: Any, status: int) -> str:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/fhir+json")
    outcome = OperationOutcome.model_validate(json.loads(response.content))
    return str(outcome.issue[0].diagnostics)


def validate(line: str) -> Any:
    data = json.loads(line)
    module = importlib.import_module(f"fhir.resources.R4B.{data['resourceType'].lower()}")
    return getattr(module, data["resourceType"]).model_validate(data)


def manifest(bulk_client: Bulk, url: str) -> dict[str, Any]:
    response = bulk_client.get(url)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("application/json")
    data: dict[str, Any] = json.loads(response.content)
    return data


def files(bulk_client: Bulk, data: dict[str, Any]) -> dict[str, list[Any]]:
    """Every output file, each line parsed back with the R4B models."""
    out: dict[str, list[Any]] = {}
    for item in data["output"]:
        response = bulk_client.get(item["url"])
        assert response.status_code == 200
        assert response["Content-Type"] == "application/fhir+ndjson"
        lines = b"".join(response.streaming_content).decode().splitlines()
        assert len(lines) == item["count"]
        resources = [validate(line) for line in lines]
        assert {r.get_resource_type() for r in resources} == {item["type"]}
        out[item["type"]] = resources
    return out


def export(user: User, path: str = "$export", **params: Any) -> dict[str, list[Any]]:
    client = bulk_for(user)
    url = status_url(client.kick_off(path, **params))
    bulk.run_due("test-worker")
    return files(client, manifest(client, url))


@pytest.fixture
def unexposed(world: World) -> Patient:
    """A patient of the clinic never given any lot."""
    return Patient.objects.create(
        clinic=world.clinic, first_name="Nora", last_name="Vega", date_of_birth=dt.date(1985, 1, 2)
    )


class FhirBulkExportTests:
    def test_system_export_runs_in_the_worker_and_serves_a_manifest(
        self, records: dict[str, str], scene: Scene
    ) -> None:
        client = bulk_for(scene.world.manager)
        url = status_url(client.kick_off())
        running = client.get(url)
        assert running.status_code == 202
        assert running["X-Progress"]
        assert "FHIR export" in tick()
        data = manifest(client, url)
        # The manifest as the IG has it.
        assert set(data) == {"transactionTime", "request", "requiresAccessToken", "output", "error"}
        assert data["request"].endswith("/fhir/R4B/$export")
        assert data["requiresAccessToken"] is True
        assert data["error"] == []
        assert dt.datetime.fromisoformat(data["transactionTime"]) <= timezone.now()
        assert all(set(o) == {"type", "url", "count"} for o in data["output"])
        found = files(client, data)
        assert set(found) == set(records) - {"AllergyIntolerance:reaction"} - {
            "AdverseEvent:side-effect"
        }
        for key, rid in records.items():
            assert rid in {r.id for r in found[key.split(":")[0]]}, key

    def test_patient_level_is_the_patient_compartment_of_every_patient(
        self, records: dict[str, str], scene: Scene, unexposed: Patient
    ) -> None:
        found = export(scene.world.manager, "Patient/$export")
        assert set(found) <= COMPARTMENT and "Procedure" in found
        assert {r.id for r in found["Patient"]} == {str(scene.patient.pk), str(unexposed.pk)}

    def test_group_level_is_the_patients_exposed_to_a_lot(
        self, records: dict[str, str], scene: Scene, unexposed: Patient
    ) -> None:
        lot = scene.world.lot
        found = export(scene.world.manager, f"Group/lot-{lot.pk}/$export")
        assert {r.id for r in found["Patient"]} == {str(scene.patient.pk)}
        assert set(found) <= COMPARTMENT
        assert found["MedicationAdministration"]

    def test_a_lot_nobody_was_given_exports_nothing(self, scene: Scene) -> None:
        unused = scene.world.expired_lot
        client = bulk_for(scene.world.manager)
        url = status_url(client.kick_off(f"Group/lot-{unused.pk}/$export"))
        bulk.run_due("test-worker")
        assert manifest(client, url)["output"] == []

    def test_type_limits_the_files(self, records: dict[str, str], scene: Scene) -> None:
        found = export(scene.world.manager, _type="Patient,Procedure")
        assert set(found) == {"Patient", "Procedure"}

    def test_since_limits_the_types_with_a_change_time(
        self, records: dict[str, str], scene: Scene
    ) -> None:
        later = (timezone.now() + dt.timedelta(hours=1)).isoformat()
        found = export(scene.world.manager, _type="Consent,AdverseEvent,Patient", _since=later)
        # Consents have a real change time; patients and adverse events have none, so all of
        # them are sent.
        assert set(found) == {"Patient", "AdverseEvent"}
        found = export(scene.world.manager, _type="Consent", _since="2000-01-01T00:00:00Z")
        assert set(found) == {"Consent"}

    def test_the_export_is_audited_once_per_patient_in_one_insert(
        self, records: dict[str, str], scene: Scene, unexposed: Patient
    ) -> None:
        client = bulk_for(scene.world.manager)
        status_url(client.kick_off("Patient/$export"))
        with CaptureQueriesContext(connection) as queries:
            bulk.run_due("test-worker")
        inserts = [
            # One executemany (logged as "<n> times: INSERT …") for all the rows.
            q
            for q in queries
            if "INSERT INTO" in q["sql"] and "auditevent" in q["sql"]
        ]
        assert len(inserts) == 1
        rows = AuditEvent.objects.filter(action=AuditEvent.Action.EXPORT)
        assert sorted(rows.values_list("patient_id", flat=True)) == sorted(
            [scene.patient.pk, unexposed.pk]
        )


class FhirBulkAccessTests:
    @pytest.mark.parametrize("path", ["$export", "Patient/$export", "Group/lot-{lot}/$export"])
    def test_only_a_manager_may_export(self, scene: Scene, path: str) -> None:
        path = path.format(lot=scene.world.lot.pk)
        for user in (scene.world.front_desk, scene.world.practitioner):
            assert "may not do this" in issue(bulk_for(user).kick_off(path), 403)
        issue(patient_login(scene.patient).get(path), 403)
        issue(Bulk(None).kick_off(path), 401)
        assert not ExportJob.objects.exists()

    def test_another_clinic_may_not_know_the_export_exists(
        self, records: dict[str, str], scene: Scene, other: World
    ) -> None:
        client = bulk_for(scene.world.manager)
        url = status_url(client.kick_off())
        bulk.run_due("test-worker")
        file_url = manifest(client, url)["output"][0]["url"]
        theirs = bulk_for(other.manager)
        issue(theirs.get(url), 404)
        issue(theirs.get(file_url), 404)
        issue(theirs.delete(url), 404)
        issue(theirs.kick_off(f"Group/lot-{scene.world.lot.pk}/$export"), 404)
        issue(bulk_for(scene.world.front_desk).get(file_url), 403)
        issue(Bulk(None).get(file_url), 401)
        assert client.get(file_url).status_code == 200

    def test_errors_are_operation_outcomes(self, scene: Scene) -> None:
        client = bulk_for(scene.world.manager)
        assert "Prefer: respond-async" in issue(client.kick_off(prefer=False), 400)
        assert "_elements" in issue(client.kick_off(_elements="id"), 400)
        assert "Practitioner" in issue(
            client.kick_off("Patient/$export", _type="Practitioner"), 400
        )
        assert "Basic" in issue(client.kick_off(_type="Basic"), 400)
        assert "_since" in issue(client.kick_off(_since="yesterday"), 400)
        assert "_outputFormat" in issue(client.kick_off(_outputFormat="text/csv"), 400)
        assert "lot-" in issue(client.kick_off("Group/everyone/$export"), 404)
        issue(client.kick_off("Group/lot-999999/$export"), 404)
        issue(client.get(f"{ROOT}/$export-status/999999"), 404)
        response = client.client.post(f"{ROOT}/$export", headers=client.headers())
        issue(response, 405)
        assert not ExportJob.objects.exists()

    def test_a_failed_export_answers_an_operation_outcome(self, scene: Scene) -> None:
        client = bulk_for(scene.world.manager)
        url = status_url(client.kick_off())
        # The manager stops managing before the worker gets to it: the export must not run.
        Membership.objects.filter(user=scene.world.manager).update(role=Membership.Role.FRONT_DESK)
        bulk.run_due("test-worker")
        job = ExportJob.objects.get()
        assert job.status == ExportJob.Status.FAILED
        assert not bulk.directory(job).exists()
        Membership.objects.filter(user=scene.world.manager).update(role=Membership.Role.MANAGER)
        assert "failed" in issue(client.get(url), 500)


class FhirBulkJobTests:
    def test_a_job_is_claimed_by_one_worker(self, scene: Scene) -> None:
        status_url(bulk_for(scene.world.manager).kick_off())
        first = bulk.claim("worker-a")
        assert first is not None and first.claimed_by == "worker-a"
        assert bulk.claim("worker-b") is None
        assert bulk.run_due("worker-b") == []

    def test_a_worker_that_lost_its_claim_writes_nothing(self, scene: Scene) -> None:
        status_url(bulk_for(scene.world.manager).kick_off())
        slow = bulk.claim("worker-a")
        assert slow is not None
        slow_folder = bulk.directory(slow)
        # Worker a's lease runs out; worker b takes the job over and finishes it.
        ExportJob.objects.update(claimed_at=timezone.now() - dt.timedelta(hours=2))
        fast = bulk.claim("worker-b")
        assert fast is not None and fast.pk == slow.pk
        bulk.run(fast)
        done = set(bulk.directory(fast).iterdir())
        bulk.run(slow)  # Its claim is gone: it stops and leaves b's export alone.
        job = ExportJob.objects.get()
        assert job.status == ExportJob.Status.DONE and job.claimed_by == "worker-b"
        assert set(bulk.directory(job).iterdir()) == done
        assert not slow_folder.exists()

    def test_delete_cancels_and_removes_the_files(
        self, records: dict[str, str], scene: Scene
    ) -> None:
        client = bulk_for(scene.world.manager)
        url = status_url(client.kick_off())
        bulk.run_due("test-worker")
        job = ExportJob.objects.get()
        assert bulk.directory(job).exists()
        file_url = manifest(client, url)["output"][0]["url"]
        assert client.delete(url).status_code == 202
        issue(client.get(url), 404)
        issue(client.get(file_url), 404)
        assert not bulk.directory(job).exists()
        # A job deleted before the worker got to it is never run.
        url = status_url(client.kick_off())
        client.delete(url)
        assert bulk.run_due("test-worker") == []

    def test_retention_deletes_the_files_and_the_job(
        self, records: dict[str, str], scene: Scene, settings: Any
    ) -> None:
        settings.FHIR_EXPORT_RETENTION_HOURS = 24
        client = bulk_for(scene.world.manager)
        url = status_url(client.kick_off())
        bulk.run_due("test-worker")
        job = ExportJob.objects.get()
        assert bulk.sweep() == 0
        ExportJob.objects.update(finished_at=timezone.now() - dt.timedelta(hours=25))
        issue(client.get(url), 404)  # Expired, even before the worker sweeps.
        assert "deleted 1 expired FHIR export" in tick()
        assert not ExportJob.objects.exists()
        assert not bulk.directory(job).exists()

    def test_the_capability_statement_declares_the_export_operations(self) -> None:
        data = json.loads(Client().get(f"{ROOT}/metadata").content)
        rest = data["rest"][0]
        assert rest["operation"][0]["name"] == "export"
        assert any("bulk-data" in url for url in data["instantiates"])
        by_type = {r["type"]: r for r in rest["resource"]}
        assert by_type["Patient"]["operation"][0]["definition"].endswith("patient-export")
        assert by_type["Group"]["operation"][0]["definition"].endswith("group-export")
