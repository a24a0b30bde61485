"""A patient's own copy (ZIP), the outbreak export of a lot's exposed patients, and the import
of patients from a FHIR Bundle (mesoclinic/fhir/everything.py and imports.py)."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import pytest
from django.test import Client
from fhir.resources.R4B.bundle import Bundle

from mesoclinic import demo
from mesoclinic.accounts.models import AuditEvent, Clinic
from mesoclinic.courses.models import Course
from mesoclinic.fhir import everything
from mesoclinic.fhir import imports as fhir_imports
from mesoclinic.outcomes import photo_actions
from mesoclinic.patients.models import Allergy, Patient
from tests.conftest import Scene, World, ago, give_baseline
from tests.test_photos import grant, jpeg, photo_dir  # noqa: F401 - the photo_dir fixture
from tests.test_portal import signed_in_patient
from tests.test_web_manage import give_allergy_test, give_session, new_patient


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def with_photo(scene: Scene) -> None:
    course = Course.objects.get(pk=scene.course["id"])
    grant(scene.patient, scene.world.practitioner, decided_at=ago(days=30))
    photo_actions.do_upload_photos(
        course,
        area=course.areas[0],
        images={"front": jpeg()},
        taken_at=ago(hours=1),
        user=scene.world.practitioner,
    )
    give_baseline(course, ago(days=3))


def unzip(response: Any) -> zipfile.ZipFile:
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"] == "application/zip"
    return zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))


def kinds(bundle: dict[str, Any]) -> set[str]:
    return {e["resource"]["resourceType"] for e in bundle["entry"]}


class PatientBundleTests:
    def test_the_bundle_validates_and_holds_every_kind_of_record(self, scene: Scene) -> None:
        course = Course.objects.get(pk=scene.course["id"])
        give_baseline(course, ago(days=3))
        Allergy.objects.create(patient=scene.patient, substance="Penicillin", reaction="Hives")
        data = everything.patient_bundle(scene.patient)
        bundle = Bundle.model_validate(data)
        assert bundle.type == "collection"
        assert {
            "Patient",
            "Organization",
            "Practitioner",
            "AllergyIntolerance",
            "Consent",
            "CarePlan",
            "Appointment",
            "Procedure",
            "MedicationAdministration",
            "Observation",
            "AdverseEvent",
        } <= kinds(data)
        urls = [e["fullUrl"] for e in data["entry"]]
        assert len(urls) == len(set(urls))
        patients = [e for e in data["entry"] if e["resource"]["resourceType"] == "Patient"]
        assert [p["resource"]["id"] for p in patients] == [str(scene.patient.pk)]


@pytest.mark.usefixtures("photo_dir")
class PatientCopyTests:
    def test_the_staff_copy_holds_the_bundle_the_pdfs_and_the_photos(self, scene: Scene) -> None:
        with_photo(scene)
        zf = unzip(
            signed_in(scene.world.practitioner).get(f"/patients/{scene.patient.pk}/copy.zip")
        )
        names = zf.namelist()
        course, session = scene.course["id"], scene.session["id"]
        assert "README.txt" in names and "record.fhir.json" in names
        assert f"documents/course-{course}-plan.pdf" in names
        assert f"documents/course-{course}-progress.pdf" in names
        assert f"documents/session-{session}-aftercare.pdf" in names
        assert any(n.startswith("documents/consent-") for n in names)
        assert zf.read(f"documents/course-{course}-plan.pdf").startswith(b"%PDF")
        [photo] = [n for n in names if n.startswith("photos/")]
        assert zf.read(photo)[:3] == b"\xff\xd8\xff"  # a JPEG
        Bundle.model_validate(json.loads(zf.read("record.fhir.json")))

    def test_the_patient_downloads_their_own_copy_from_the_portal(self, scene: Scene) -> None:
        with_photo(scene)
        client = signed_in_patient(scene.patient)
        assert "/my/copy.zip" in client.get("/my/").content.decode()
        zf = unzip(client.get("/my/copy.zip"))
        assert any(n.startswith("photos/") for n in zf.namelist())
        bundle = json.loads(zf.read("record.fhir.json"))
        ids = {
            e["resource"]["id"]
            for e in bundle["entry"]
            if e["resource"]["resourceType"] == "Patient"
        }
        assert ids == {str(scene.patient.pk)}

    def test_it_holds_no_other_patients_photos(self, scene: Scene, world: World) -> None:
        with_photo(scene)
        other = new_patient(world, "Bo", "Berg", email="bo@example.com")
        client = signed_in_patient(other)
        zf = unzip(client.get("/my/copy.zip"))
        assert not any(n.startswith("photos/") for n in zf.namelist())
        assert not any(n.startswith("documents/") for n in zf.namelist())

    def test_access_is_refused_by_role_clinic_and_patient(
        self, scene: Scene, world: World, other: World
    ) -> None:
        url = f"/patients/{scene.patient.pk}/copy.zip"
        assert signed_in(world.front_desk).get(url).status_code == 403
        assert signed_in(other.manager).get(url).status_code == 404
        assert Client().get(url).status_code == 302
        someone = new_patient(world, "Bo", "Berg", email="bo@example.com")
        patient_client = signed_in_patient(someone)
        assert patient_client.get(url).status_code == 403
        # The portal's copy is the patient's own: staff have none.
        assert signed_in(world.manager).get("/my/copy.zip").status_code == 403

    def test_the_copy_is_audited_as_an_export(self, scene: Scene) -> None:
        before = AuditEvent.objects.filter(action=AuditEvent.Action.EXPORT).count()
        response = signed_in(scene.world.manager).get(f"/patients/{scene.patient.pk}/copy.zip")
        unzip(response)
        rows = AuditEvent.objects.filter(action=AuditEvent.Action.EXPORT)
        assert rows.count() == before + 1
        row = rows.latest("pk")
        assert row.patient_id == scene.patient.pk
        assert row.detail["document"] == "patient_copy"


class OutbreakExportTests:
    def test_it_exports_exactly_the_exposed_patients(self, world: World, patient: Patient) -> None:
        give_session(world, patient, world.lot, ago(days=2))
        bo = new_patient(world, "Bo", "Berg", phone="+1 212 555 0199", email="bo@example.com")
        give_allergy_test(world, bo, world.lot)
        cy = new_patient(world, "Cy", "Clean", phone="+1 212 555 0000")
        give_session(world, cy, world.lidocaine_lot, ago(days=1))

        response = signed_in(world.manager).get(f"/manage/lots/{world.lot.pk}/exposed.json")
        assert response.status_code == 200
        data = json.loads(response.content)
        Bundle.model_validate(data)
        ids = {
            e["resource"]["id"] for e in data["entry"] if e["resource"]["resourceType"] == "Patient"
        }
        assert ids == {str(patient.pk), str(bo.pk)}
        rows = AuditEvent.objects.filter(
            action=AuditEvent.Action.EXPORT, detail__page="lot exposed FHIR bundle"
        )
        assert sorted(rows.values_list("patient_id", flat=True)) == sorted([patient.pk, bo.pk])

    def test_it_is_for_managers_of_the_clinic(self, world: World, other: World) -> None:
        url = f"/manage/lots/{world.lot.pk}/exposed.json"
        assert signed_in(world.practitioner).get(url).status_code == 403
        assert signed_in(other.manager).get(url).status_code == 404


def patient_entry(pid: str, family: str, given: str, born: str, **more: Any) -> dict[str, Any]:
    return {
        "fullUrl": f"urn:uuid:{pid}",
        "resource": {
            "resourceType": "Patient",
            "id": pid,
            "name": [{"family": family, "given": [given]}],
            "birthDate": born,
            **more,
        },
    }


def allergy_entry(pid: str, substance: str) -> dict[str, Any]:
    return {
        "resource": {
            "resourceType": "AllergyIntolerance",
            "patient": {"reference": f"Patient/{pid}"},
            "code": {"text": substance},
            "reaction": [{"manifestation": [{"text": "Hives"}]}],
        }
    }


def bundle(*entries: dict[str, Any]) -> bytes:
    return json.dumps(
        {"resourceType": "Bundle", "type": "collection", "entry": list(entries)}
    ).encode()


class FhirImportTests:
    def test_it_imports_patients_with_their_allergies(self, world: World) -> None:
        data = bundle(
            patient_entry(
                "a",
                "Lopez",
                "Ana",
                "1980-04-02",
                gender="female",
                telecom=[{"system": "email", "value": "ana@example.com"}],
                address=[{"line": ["1 Main St"], "city": "Springfield"}],
            ),
            allergy_entry("a", "Penicillin"),
            {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}},
        )
        report = fhir_imports.do_import(world.clinic, [("b.json", data)], user=world.manager)
        assert report.imported and report.allergies == 1
        assert report.left_out == {"Observation": 1}
        ana = Patient.objects.get(pk=report.patients[0])
        assert (ana.first_name, ana.sex, ana.email) == ("Ana", "female", "ana@example.com")
        assert ana.address == "1 Main St, Springfield"
        assert ana.allergies.get().substance == "Penicillin"

    def test_it_is_all_or_nothing_and_names_the_bad_entry(self, world: World) -> None:
        data = bundle(
            patient_entry("a", "Lopez", "Ana", "1980-04-02"),
            patient_entry("b", "Berg", "Bo", "not a date"),
            allergy_entry("zz", "Latex"),
        )
        before = Patient.objects.count()
        report = fhir_imports.do_import(world.clinic, [("b.json", data)], user=world.manager)
        assert not report.imported
        assert Patient.objects.count() == before
        sentences = [p.sentence for p in report.problems]
        assert sentences[0].startswith("b.json, entry 2 (urn:uuid:b): It is not a valid FHIR R4B")
        assert "birthDate" in sentences[0]
        assert sentences[1] == (
            "b.json, entry 3: Its patient (Patient/zz) is not a patient imported here."
        )

    def test_it_finds_duplicates_as_the_csv_import_does(
        self, world: World, patient: Patient
    ) -> None:
        born = patient.date_of_birth.isoformat()
        data = bundle(
            patient_entry("a", "Moss", "Ann", "1970-01-01"),
            patient_entry("b", "MOSS", "Ann", "1970-01-01"),
            patient_entry("c", patient.last_name, patient.first_name, born),
        )
        report = fhir_imports.do_import(world.clinic, [("b.json", data)], user=world.manager)
        words = {p.index: p.problem for p in report.problems}
        assert "is already at b.json, entry 1." in words[1]
        assert words[2] == "A patient with this name and date of birth is already on file."

    def test_the_page_is_for_managers_and_reports_in_sentences(self, world: World) -> None:
        page = "/manage/import/fhir/"
        assert signed_in(world.front_desk).get(page).status_code == 403
        client = signed_in(world.manager)
        assert client.get(page).status_code == 200
        bad = io.BytesIO(
            bundle(
                patient_entry(
                    "b", "Berg", "Bo", "1980-01-01", telecom=[{"system": "email", "value": "bo@"}]
                )
            )
        )
        bad.name = "b.json"
        response = client.post(page, {"upload": bad})
        assert response.status_code == 422
        assert "b.json, entry 1 (urn:uuid:b): It cannot be registered" in response.content.decode()
        good = io.BytesIO(bundle(patient_entry("a", "Lopez", "Ana", "1980-04-02")))
        good.name = "a.json"
        response = client.post(page, {"upload": good})
        assert response.status_code == 200 and "Imported 1 patient" in response.content.decode()
        assert (
            AuditEvent.objects.filter(
                action=AuditEvent.Action.CREATE, detail__import="fhir"
            ).count()
            == 1
        )

    def test_the_demo_clinics_patients_travel_to_another_clinic(
        self, db: Any, other: World
    ) -> None:
        assert demo.load() is True
        clinic = Clinic.objects.get(name=demo.CLINIC_NAME)
        patients = Patient.objects.filter(clinic=clinic).order_by("pk")
        exported = everything.bundle_of(patients)
        data = json.dumps(exported).encode()
        report = fhir_imports.do_import(other.clinic, [("b.json", data)], user=other.manager)
        assert report.problems == []
        assert len(report.patients) == patients.count() > 0
        assert Patient.objects.filter(clinic=other.clinic).count() == patients.count()
        kept = Allergy.objects.filter(patient__clinic=clinic, entered_in_error_at__isnull=True)
        assert report.allergies >= kept.count()


def ndjson(*entries: dict[str, Any]) -> bytes:
    return "\n".join(json.dumps(e["resource"]) for e in entries).encode() + b"\n"


class NdjsonImportTests:
    def test_a_bulk_exports_files_import_together(self, world: World) -> None:
        people = ndjson(
            patient_entry("7", "Lopez", "Ana", "1980-04-02"),
            patient_entry("8", "Berg", "Bo", "1975-09-30"),
        )
        allergies = ndjson(allergy_entry("8", "Latex"))
        report = fhir_imports.do_import(
            world.clinic,
            [("Patient.ndjson", people), ("AllergyIntolerance.ndjson", allergies)],
            user=world.manager,
        )
        assert report.imported and len(report.patients) == 2 and report.allergies == 1
        assert Allergy.objects.get(patient__last_name="Berg").substance == "Latex"

    def test_a_bad_line_is_named_by_its_file_and_line(self, world: World) -> None:
        people = ndjson(
            patient_entry("7", "Lopez", "Ana", "1980-04-02"),
            patient_entry("8", "Berg", "Bo", "1975-02-30"),
        )
        report = fhir_imports.do_import(
            world.clinic, [("Patient.ndjson", people)], user=world.manager
        )
        assert not report.imported and not Patient.objects.filter(last_name="Lopez").exists()
        (problem,) = report.problems
        assert problem.sentence.startswith("Patient.ndjson, line 2 (Patient/8): It is not a valid")
        broken = people + b'{"resourceType": "Patient", \n'
        with pytest.raises(fhir_imports.BundleProblem, match=r"Patient.ndjson, line 3: .*not JSON"):
            fhir_imports.read_files([("Patient.ndjson", broken)])
        with pytest.raises(fhir_imports.BundleProblem, match="neither a FHIR Bundle"):
            fhir_imports.read_files([("notes.txt", b"Ana Lopez, 1980-04-02\n")])

    def test_the_page_takes_several_files_at_once(self, world: World) -> None:
        people = io.BytesIO(ndjson(patient_entry("7", "Lopez", "Ana", "1980-04-02")))
        people.name = "Patient.ndjson"
        allergies = io.BytesIO(ndjson(allergy_entry("7", "Latex")))
        allergies.name = "AllergyIntolerance.ndjson"
        response = signed_in(world.manager).post(
            "/manage/import/fhir/", {"upload": [people, allergies]}
        )
        assert response.status_code == 200
        assert "Imported 1 patient and 1 allergy" in response.content.decode()
        assert Patient.objects.get(last_name="Lopez").allergies.get().substance == "Latex"
        response = signed_in(world.manager).post("/manage/import/fhir/", {})
        assert "Choose the files to import." in response.content.decode()
