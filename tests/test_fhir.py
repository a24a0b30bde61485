"""The FHIR R4B API (/fhir/R4B/): every resource validates, read and search, access, audit."""

from __future__ import annotations

import datetime as dt
import importlib
import json
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.resource import Resource

from mesoclinic.accounts.models import AuditEvent, User
from mesoclinic.api.models import ApiToken
from mesoclinic.courses.models import AllergyReading, AllergyTest, Course, Session, SessionInjection
from mesoclinic.fhir import mapping
from mesoclinic.patients.models import Allergy, Consent, Patient
from mesoclinic.safety.models import AdverseEvent
from mesoclinic.scheduling.models import Room
from tests.conftest import Scene, World, ago, api_for, give_baseline

ROOT = "/fhir/R4B"


class Fhir:
    """A FHIR client with a bearer token (or a browser's session, or nothing)."""

    def __init__(self, token: str | None = None, client: Client | None = None):
        self.client = client or Client()
        self.token = token

    def get(self, path: str, **params: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return self.client.get(f"{ROOT}/{path}", params, headers=headers)


def fhir_for(user: User) -> Fhir:
    return Fhir(api_for(user).token)


def patient_login(patient: Patient) -> Fhir:
    user = User.objects.create_user(f"p{patient.pk}", password="pw")
    Patient.objects.filter(pk=patient.pk).update(user=user)
    _, raw = ApiToken.issue(user, None)
    return Fhir(raw)


def body(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/fhir+json")
    data: dict[str, Any] = json.loads(response.content)
    return data


def issue(response: Any, status: int) -> str:
    outcome = OperationOutcome.model_validate(body(response, status))
    return str(outcome.issue[0].diagnostics)


@pytest.fixture
def clinic(scene: Scene) -> dict[str, str]:
    """A realistic clinic: the scene (course, session with injections, side effects, a visit),
    plus a measurement, a reported allergy, a positive allergy-test reaction, an adverse event
    with a suspect lot and a room. Returns an id of each resource type."""
    world = scene.world
    course = Course.objects.get(pk=scene.course["id"])
    session = Session.objects.get(pk=scene.session["id"])
    measurement = give_baseline(course, ago(days=3))
    allergy = Allergy.objects.create(
        patient=scene.patient,
        substance="Penicillin",
        reaction="Hives",
        recorded_by=world.practitioner,
    )
    test = AllergyTest.objects.create(
        course=course, given_at=ago(days=4), given_by=world.practitioner
    )
    reading = AllergyReading.objects.create(
        test=test, read_at=ago(days=3), read_by=world.practitioner, result="local"
    )
    event = AdverseEvent.objects.create(
        clinic=world.clinic,
        patient=scene.patient,
        course=course,
        session=session,
        kind="infection",
        snomed_code="128477000",
        ctcae_grade=3,
        onset_at=ago(hours=5),
        outcome="resolving",
        description="Abscess at a papule",
        reported_by=world.practitioner,
    )
    event.suspected_lots.add(world.lot)
    room = Room.objects.create(clinic=world.clinic, name="Room 1")
    consent = Consent.objects.filter(patient=scene.patient).first()
    assert consent is not None
    membership = world.practitioner.memberships.get()
    return {
        "Patient": str(scene.patient.pk),
        "Organization": str(world.clinic.pk),
        "Practitioner": str(world.practitioner.pk),
        "PractitionerRole": str(membership.pk),
        "Location": str(room.pk),
        "Procedure": str(session.pk),
        "MedicationAdministration": str(SessionInjection.objects.filter(session=session)[0].pk),
        "Observation": str(measurement.pk),
        "AllergyIntolerance": f"allergy-{allergy.pk}",
        "AllergyIntolerance:reaction": f"test-reaction-{reading.pk}",
        "Consent": str(consent.pk),
        "CarePlan": str(course.pk),
        "Appointment": str(scene.appointment),
        "AdverseEvent": f"event-{event.pk}",
        "AdverseEvent:side-effect": f"side-effect-{scene.side_effect['id']}",
    }


def read_all(fhir: Fhir, ids: dict[str, str]) -> dict[str, Resource]:
    out = {}
    for key, rid in ids.items():
        kind = key.split(":")[0]
        data = body(fhir.get(f"{kind}/{rid}"))
        assert data["resourceType"] == kind and data["id"] == rid
        out[key] = _validate(data)
    return out


def _validate(data: dict[str, Any]) -> Resource:
    # The R4B models, not the package's default (R5) ones, validate here.
    module = importlib.import_module(f"fhir.resources.R4B.{data['resourceType'].lower()}")
    model: Any = getattr(module, data["resourceType"])
    validated: Resource = model.model_validate(data)
    return validated


PATIENT_TYPES = [
    "Patient",
    "Procedure",
    "MedicationAdministration",
    "Observation",
    "AllergyIntolerance",
    "AllergyIntolerance:reaction",
    "Consent",
    "CarePlan",
    "Appointment",
    "AdverseEvent",
    "AdverseEvent:side-effect",
]
STAFF_TYPES = ["Practitioner", "PractitionerRole", "Location"]


class FhirMappingTests:
    def test_every_resource_validates_with_the_r4b_models(
        self, clinic: dict[str, str], scene: Scene
    ) -> None:
        found = read_all(fhir_for(scene.world.manager), clinic)
        assert set(found) == set(clinic)

    def test_it_maps_the_clinical_details(self, clinic: dict[str, str], scene: Scene) -> None:
        fhir = fhir_for(scene.world.manager)
        given = body(fhir.get(f"MedicationAdministration/{clinic['MedicationAdministration']}"))
        assert given["dosage"]["dose"]["unit"] == "mL"
        assert given["dosage"]["dose"]["system"] == "http://unitsofmeasure.org"
        lot = given["contained"][0]
        assert lot["resourceType"] == "Medication"
        assert lot["batch"]["lotNumber"] == scene.world.lot.lot_number
        assert lot["batch"]["expirationDate"] == scene.world.lot.expires_on.isoformat()
        assert given["medicationReference"]["reference"] == "#lot"
        done = body(fhir.get(f"Procedure/{clinic['Procedure']}"))
        assert done["bodySite"] and all(
            c["coding"][0]["system"] == mapping.AREA_SYSTEM for c in done["bodySite"]
        )
        assert done["subject"]["reference"] == f"Patient/{scene.patient.pk}"
        seen = body(fhir.get(f"Observation/{clinic['Observation']}"))
        assert seen["code"]["coding"][0]["system"] == mapping.MEASUREMENT_SYSTEM
        consent = body(fhir.get(f"Consent/{clinic['Consent']}"))
        stored = Consent.objects.get(pk=clinic["Consent"])
        assert {"system": mapping.CONSENT_SHA256, "value": stored.text_sha256} in consent[
            "identifier"
        ]
        assert consent["sourceAttachment"]["hash"]
        event = body(fhir.get(f"AdverseEvent/{clinic['AdverseEvent']}"))
        assert event["event"]["coding"][0]["system"] == "http://snomed.info/sct"
        assert event["seriousness"]["coding"][0]["code"] == "serious"
        assert event["contained"][0]["batch"]["lotNumber"] == scene.world.lot.lot_number
        assert event["meta"]["lastUpdated"]
        doctor = body(fhir.get(f"Practitioner/{clinic['Practitioner']}"))
        assert doctor["qualification"][0]["identifier"][0]["value"] == "MD-practitioner"
        plan = body(fhir.get(f"CarePlan/{clinic['CarePlan']}"))
        repeat = plan["activity"][0]["detail"]["scheduledTiming"]["repeat"]
        assert repeat["count"] == Course.objects.get(pk=clinic["CarePlan"]).planned_sessions
        assert plan["activity"][0]["outcomeReference"] == [
            {"reference": f"Procedure/{clinic['Procedure']}"}
        ]

    def test_observation_uses_loinc_only_where_spec_gives_a_code(self, scene: Scene) -> None:
        course = Course.objects.get(pk=scene.course["id"])
        waist = give_baseline(course, ago(days=2))
        waist.kind, waist.site, waist.unit, waist.loinc = "circumference", "waist", "cm", "8280-0"
        waist.value = Decimal("80.5")
        waist.save()
        data = body(fhir_for(scene.world.manager).get(f"Observation/{waist.pk}"))
        assert data["code"]["coding"][0] == {
            "system": "http://loinc.org",
            "code": "8280-0",
            "display": "Circumference (waist)",
        }
        assert data["valueQuantity"]["unit"] == "cm"


class FhirReadTests:
    @pytest.mark.parametrize("kind", PATIENT_TYPES + STAFF_TYPES + ["Organization"])
    def test_another_clinics_object_is_not_found(
        self, clinic: dict[str, str], other: World, kind: str
    ) -> None:
        rid = clinic[kind]
        kind = kind.split(":")[0]
        assert "No " in issue(fhir_for(other.manager).get(f"{kind}/{rid}"), 404)

    @pytest.mark.parametrize("kind", PATIENT_TYPES + ["Organization"])
    def test_a_patient_reads_their_own_records(
        self, clinic: dict[str, str], scene: Scene, kind: str
    ) -> None:
        mine = patient_login(scene.patient)
        rid = clinic[kind]
        kind = kind.split(":")[0]
        _validate(body(mine.get(f"{kind}/{rid}")))

    @pytest.mark.parametrize("kind", PATIENT_TYPES)
    def test_another_patient_may_not_know_they_exist(
        self, clinic: dict[str, str], scene: Scene, kind: str
    ) -> None:
        stranger = Patient.objects.create(
            clinic=scene.world.clinic,
            first_name="Bo",
            last_name="Other",
            date_of_birth=dt.date(1985, 1, 1),
        )
        theirs = patient_login(stranger)
        rid = clinic[kind]
        kind = kind.split(":")[0]
        issue(theirs.get(f"{kind}/{rid}"), 404)
        found = body(theirs.get(kind))
        assert rid not in {e["resource"]["id"] for e in found.get("entry", [])}

    @pytest.mark.parametrize("kind", STAFF_TYPES)
    def test_a_patient_sees_no_staff_records(
        self, clinic: dict[str, str], scene: Scene, kind: str
    ) -> None:
        mine = patient_login(scene.patient)
        assert "not a member" in issue(mine.get(f"{kind}/{clinic[kind]}"), 403)

    def test_the_front_desk_may_not_read_clinical_only_resources(
        self, clinic: dict[str, str], scene: Scene
    ) -> None:
        desk = fhir_for(scene.world.front_desk)
        assert "front desk" in issue(desk.get(f"AdverseEvent/{clinic['AdverseEvent']}"), 403)
        issue(desk.get("AllergyIntolerance"), 403)
        body(desk.get(f"Procedure/{clinic['Procedure']}"))

    def test_unknown_types_and_ids_are_not_found(self, scene: Scene) -> None:
        fhir = fhir_for(scene.world.manager)
        assert "Unknown resource type" in issue(fhir.get("Basic/1"), 404)
        issue(fhir.get("Basic"), 404)
        issue(fhir.get("Patient/999999"), 404)
        issue(fhir.get("Patient/abc"), 404)
        issue(fhir.get("AdverseEvent/1"), 404)

    def test_it_needs_a_caller(self, scene: Scene) -> None:
        response = Fhir().get(f"Patient/{scene.patient.pk}")
        assert "Authentication" in issue(response, 401)
        assert response["WWW-Authenticate"].startswith("Bearer")
        issue(Fhir("not-a-token").get("Patient"), 401)
        scene.world.manager.is_active = False
        scene.world.manager.save()
        issue(fhir_for(scene.world.manager).get("Patient"), 401)

    def test_a_signed_in_browser_reads_too(self, scene: Scene) -> None:
        browser = Client()
        browser.force_login(scene.world.practitioner)
        _validate(body(Fhir(client=browser).get(f"Patient/{scene.patient.pk}")))

    def test_it_is_read_only(self, scene: Scene) -> None:
        response = fhir_for(scene.world.manager).client.post(f"{ROOT}/Patient", {})
        issue(response, 405)
        assert response["Allow"] == "GET"

    def test_every_read_is_audited(self, clinic: dict[str, str], scene: Scene) -> None:
        AuditEvent.objects.all().delete()
        body(fhir_for(scene.world.manager).get(f"Procedure/{clinic['Procedure']}"))
        row = AuditEvent.objects.get()
        assert row.action == AuditEvent.Action.VIEW
        assert row.patient_id == scene.patient.pk
        assert row.via == "api"
        assert row.detail["fhir"] == f"Procedure/{clinic['Procedure']}"


class FhirSearchTests:
    def test_search_returns_a_valid_searchset(self, clinic: dict[str, str], scene: Scene) -> None:
        fhir = fhir_for(scene.world.manager)
        for kind in {k.split(":")[0] for k in clinic}:
            data = body(fhir.get(kind))
            bundle = Bundle.model_validate(data)
            assert bundle.type == "searchset" and bundle.total and bundle.total >= 1, kind
            ids = {e["resource"]["id"] for e in data["entry"]}
            assert clinic[kind] in ids, kind

    def test_two_kinds_of_row_make_one_type(self, clinic: dict[str, str], scene: Scene) -> None:
        fhir = fhir_for(scene.world.manager)
        events = {e["resource"]["id"] for e in body(fhir.get("AdverseEvent"))["entry"]}
        assert {clinic["AdverseEvent"], clinic["AdverseEvent:side-effect"]} <= events
        ids = f"{clinic['AllergyIntolerance']},{clinic['AllergyIntolerance:reaction']}"
        found = body(fhir.get("AllergyIntolerance", _id=ids))
        assert found["total"] == 2

    def test_id_patient_and_date(self, clinic: dict[str, str], scene: Scene) -> None:
        fhir = fhir_for(scene.world.manager)
        assert body(fhir.get("Patient", _id=clinic["Patient"]))["total"] == 1
        assert body(fhir.get("Patient", _id="999999"))["total"] == 0
        mine = body(fhir.get("Procedure", patient=f"Patient/{scene.patient.pk}"))
        assert mine["total"] == 1
        assert body(fhir.get("Procedure", patient="999999"))["total"] == 0
        today = timezone.localdate(timezone.now(), scene.world.clinic.tz)
        session_day = timezone.localdate(
            Session.objects.get(pk=clinic["Procedure"]).performed_at, scene.world.clinic.tz
        )
        assert body(fhir.get("Procedure", date=session_day.isoformat()))["total"] == 1
        later = (today + dt.timedelta(days=2)).isoformat()
        assert body(fhir.get("Procedure", date=f"ge{later}"))["total"] == 0
        assert body(fhir.get("Procedure", date=f"lt{later}"))["total"] == 1
        year = str(session_day.year)
        assert body(fhir.get("Observation", date=year))["total"] >= 1

    def test_last_updated_where_a_timestamp_exists(
        self, clinic: dict[str, str], scene: Scene
    ) -> None:
        fhir = fhir_for(scene.world.manager)
        old = (timezone.now() - dt.timedelta(days=1)).isoformat()
        assert body(fhir.get("Consent", _lastUpdated=f"gt{old}"))["total"] == 1
        assert "_lastUpdated" in issue(fhir.get("Patient", _lastUpdated="gt2020"), 400)

    def test_bad_parameters_are_named(self, scene: Scene) -> None:
        fhir = fhir_for(scene.world.manager)
        assert "name" in issue(fhir.get("Patient", name="Ana"), 400)
        assert "date" in issue(fhir.get("Procedure", date="yesterday"), 400)
        assert "date" in issue(fhir.get("Procedure", date="2024-05-01T10:00:00"), 400)
        assert "_count" in issue(fhir.get("Patient", _count="many"), 400)
        assert "patient" in issue(fhir.get("Procedure", patient="Group/1"), 400)
        assert "_include" in issue(fhir.get("Procedure", _include="Procedure:performer"), 400)
        assert "_include" in issue(fhir.get("Patient", _include="Procedure:patient"), 400)

    def test_paging_links(self, scene: Scene) -> None:
        for n in range(4):
            Patient.objects.create(
                clinic=scene.world.clinic,
                first_name=f"P{n}",
                last_name="Page",
                date_of_birth=dt.date(1985, 1, 1),
            )
        fhir = fhir_for(scene.world.manager)
        first = body(fhir.get("Patient", _count="2"))
        assert first["total"] == 5 and len(first["entry"]) == 2
        links = {link["relation"]: link["url"] for link in first["link"]}
        assert set(links) == {"self", "next"}
        seen = [e["resource"]["id"] for e in first["entry"]]
        url = links["next"]
        while url:
            page = body(fhir.client.get(url, headers={"Authorization": f"Bearer {fhir.token}"}))
            seen += [e["resource"]["id"] for e in page["entry"]]
            rel = {link["relation"]: link["url"] for link in page["link"]}
            assert "previous" in rel
            url = rel.get("next", "")
        assert len(seen) == len(set(seen)) == 5

    def test_include_procedure_patient(self, clinic: dict[str, str], scene: Scene) -> None:
        data = body(fhir_for(scene.world.manager).get("Procedure", _include="Procedure:patient"))
        Bundle.model_validate(data)
        modes = [(e["resource"]["resourceType"], e["search"]["mode"]) for e in data["entry"]]
        assert modes == [("Procedure", "match"), ("Patient", "include")]
        assert data["total"] == 1

    @pytest.mark.parametrize("kind", PATIENT_TYPES + STAFF_TYPES)
    def test_another_clinic_finds_none_of_ours(
        self, clinic: dict[str, str], other: World, kind: str
    ) -> None:
        data = body(fhir_for(other.manager).get(kind.split(":")[0]))
        ids = {e["resource"]["id"] for e in data.get("entry", [])}
        assert clinic[kind] not in ids

    @pytest.mark.parametrize("kind", PATIENT_TYPES)
    def test_a_patient_finds_only_their_own(
        self, clinic: dict[str, str], scene: Scene, kind: str
    ) -> None:
        stranger = Patient.objects.create(
            clinic=scene.world.clinic,
            first_name="Bo",
            last_name="Other",
            date_of_birth=dt.date(1985, 1, 1),
        )
        mine = patient_login(scene.patient)
        data = body(mine.get(kind.split(":")[0]))
        assert clinic[kind] in {e["resource"]["id"] for e in data["entry"]}
        refs = json.dumps(data)
        assert f'Patient/{stranger.pk}"' not in refs

    def test_every_search_is_audited_per_patient(
        self, clinic: dict[str, str], scene: Scene
    ) -> None:
        AuditEvent.objects.all().delete()
        body(fhir_for(scene.world.manager).get("Observation"))
        row = AuditEvent.objects.get()
        assert row.patient_id == scene.patient.pk
        assert row.detail["page"] == "fhir Observation search"


class FhirMetadataTests:
    def test_the_capability_statement_says_what_is_supported(self) -> None:
        response = Client().get(f"{ROOT}/metadata")
        data = body(response)
        statement = CapabilityStatement.model_validate(data)
        assert statement.fhirVersion == "4.3.0"
        served = {r["type"]: r for r in data["rest"][0]["resource"]}
        assert set(served) == {
            "Patient",
            "Organization",
            "Practitioner",
            "PractitionerRole",
            "Location",
            "Procedure",
            "MedicationAdministration",
            "Observation",
            "AllergyIntolerance",
            "Consent",
            "CarePlan",
            "Appointment",
            "AdverseEvent",
            "Group",  # Only its bulk $export (tests/test_fhir_bulk.py).
        }
        assert served["Procedure"]["searchInclude"] == ["Procedure:patient"]
        params = {p["name"] for p in served["Consent"]["searchParam"]}
        assert params == {"_id", "_lastUpdated", "patient", "date", "_count"}
        assert {i["code"] for i in served["Patient"]["interaction"]} == {"read", "search-type"}
