"""The FHIR R4B API (/fhir/R4B/): every resource validates, read and search, access, audit."""

from __future__ import annotations

import base64
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
from mesoclinic.fhir import everything, mapping, views
from mesoclinic.outcomes import photo_actions
from mesoclinic.outcomes.models import Photo
from mesoclinic.patients.actions import do_screen_patient
from mesoclinic.patients.models import Allergy, Consent, Patient, Screening, ScreeningForm
from mesoclinic.safety.models import AdverseEvent
from mesoclinic.scheduling.models import Room
from tests.conftest import Scene, World, ago, all_no, api_for, give_baseline
from tests.test_photos import jpeg, stored_bytes

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
    """A realistic clinic: the scene (course, session with injections, side effects, a visit,
    a screening), plus a measurement, a reported allergy, a positive allergy-test reaction, an
    adverse event with a suspect lot, a room and a clinical photo the patient consented to.
    Returns an id of each resource type."""
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
    screening = Screening.objects.get(patient=scene.patient)
    photo_actions.do_record_photo_consent(
        scene.patient,
        purpose="clinical",
        granted=True,
        decided_at=ago(days=30),
        user=world.practitioner,
    )
    [photo] = photo_actions.do_upload_photos(
        course,
        area=course.areas[0],
        images={"front": jpeg()},
        taken_at=ago(hours=1),
        session=session,
        user=world.practitioner,
    )
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
        "Questionnaire": str(screening.form_id),
        "QuestionnaireResponse": str(screening.pk),
        "DocumentReference": str(photo.pk),
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
    "QuestionnaireResponse",
    "DocumentReference",
]
STAFF_TYPES = ["Practitioner", "PractitionerRole", "Location", "Questionnaire"]
# The clinic itself: every caller of the clinic, staff or patient, reads it.
CLINIC_TYPES = ["Organization"]


class FhirMappingTests:
    def test_every_resource_validates_with_the_r4b_models(
        self, clinic: dict[str, str], scene: Scene
    ) -> None:
        found = read_all(fhir_for(scene.world.manager), clinic)
        assert set(found) == set(clinic)

    def test_resources_are_served_without_empty_elements_and_with_decimals_as_numbers(
        self,
    ) -> None:
        built = mapping.resource(
            "Observation",
            {
                "status": "final",
                "code": {"text": "Waist", "coding": []},
                "valueQuantity": {"value": Decimal("2.50"), "unit": None},
                "note": [{"text": ""}],
                "bodySite": None,
            },
        )
        assert built == {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "Waist"},
            "valueQuantity": {"value": 2.5},
        }
        assert json.loads(json.dumps(built)) == built

    def test_an_invalid_resource_is_refused_when_validation_is_on(self, settings: Any) -> None:
        wrong = mapping.resource("Patient", {"id": "1", "birthDate": "yesterday"})
        settings.FHIR_VALIDATE = True
        with pytest.raises(ValueError, match="birthDate"):
            mapping.checked(wrong)
        settings.FHIR_VALIDATE = False
        assert mapping.checked(wrong) is wrong

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
    @pytest.mark.parametrize("kind", PATIENT_TYPES + STAFF_TYPES + CLINIC_TYPES)
    def test_another_clinics_object_is_not_found(
        self, clinic: dict[str, str], other: World, kind: str
    ) -> None:
        rid = clinic[kind]
        kind = kind.split(":")[0]
        assert "No " in issue(fhir_for(other.manager).get(f"{kind}/{rid}"), 404)

    @pytest.mark.parametrize("kind", PATIENT_TYPES + CLINIC_TYPES)
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
        # Photos are for clinical staff, as on the chart; screenings for all staff, as there.
        issue(desk.get(f"DocumentReference/{clinic['DocumentReference']}"), 403)
        issue(desk.get(f"Binary/photo-{clinic['DocumentReference']}"), 403)
        body(desk.get(f"QuestionnaireResponse/{clinic['QuestionnaireResponse']}"))
        body(desk.get(f"Questionnaire/{clinic['Questionnaire']}"))

    def test_every_type_is_in_the_access_tests(self) -> None:
        """The wrong-clinic and patient-scope tests run over these lists: a type added to the
        registry and to none of them would go untested."""
        listed = PATIENT_TYPES + STAFF_TYPES + CLINIC_TYPES
        assert {k.split(":")[0] for k in listed} == set(views.KINDS)
        assert {k.split(":")[0] for k in PATIENT_TYPES} == {
            name for name, kind in views.KINDS.items() if kind.patient
        }
        # A type made from two kinds of row has one of each in the lists.
        for name, kind in views.KINDS.items():
            assert len([k for k in listed if k.split(":")[0] == name]) == len(kind.sources), name

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

    @pytest.mark.parametrize("kind", PATIENT_TYPES + STAFF_TYPES + CLINIC_TYPES)
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


def entries(data: dict[str, Any], kind: str) -> set[str]:
    return {
        e["resource"]["id"] for e in data.get("entry", []) if e["resource"]["resourceType"] == kind
    }


def extensions(resource: dict[str, Any], url: str) -> list[dict[str, Any]]:
    return [e for e in resource.get("extension", []) if e["url"] == url]


class FhirScreeningTests:
    def test_the_questionnaire_holds_the_clinics_questions(
        self, clinic: dict[str, str], scene: Scene
    ) -> None:
        form = ScreeningForm.objects.get(pk=clinic["Questionnaire"])
        data = body(fhir_for(scene.world.front_desk).get(f"Questionnaire/{form.pk}"))
        assert data["url"] == mapping.questionnaire_url(form)
        assert data["version"] == str(form.version)
        assert data["status"] == "active"
        assert [i["linkId"] for i in data["item"]] == [q["key"] for q in form.questions]
        pregnant = data["item"][0]
        assert pregnant["text"] == "Are you pregnant, or could you be?"
        assert pregnant["type"] == "boolean" and pregnant["required"] is True
        assert extensions(pregnant, mapping.WHEN_YES_EXTENSION)[0]["valueCode"] == "hard_stop"

    def test_a_later_version_retires_the_earlier_one(
        self, clinic: dict[str, str], scene: Scene
    ) -> None:
        old = ScreeningForm.objects.get(pk=clinic["Questionnaire"])
        new = ScreeningForm.objects.create(
            clinic=old.clinic, version=old.version + 1, document=old.document
        )
        fhir = fhir_for(scene.world.manager)
        assert body(fhir.get(f"Questionnaire/{old.pk}"))["status"] == "retired"
        current = body(fhir.get(f"Questionnaire/{new.pk}"))
        assert current["status"] == "active"
        # One canonical for the clinic's questionnaire; the version tells them apart.
        assert current["url"] == mapping.questionnaire_url(old)
        assert body(fhir.get("Questionnaire"))["total"] == 2

    def test_the_answers_map_to_the_questions(self, clinic: dict[str, str], scene: Scene) -> None:
        answers = {**all_no(scene.world.clinic), "pregnant": True, "keloid_history": True}
        screening = do_screen_patient(scene.patient, answers, scene.world.practitioner)
        fhir = fhir_for(scene.world.manager)
        data = body(fhir.get(f"QuestionnaireResponse/{screening.pk}"))
        form = body(fhir.get(f"Questionnaire/{screening.form_id}"))
        assert data["questionnaire"] == f"{form['url']}|{form['version']}"
        assert data["status"] == "completed"
        assert data["subject"] == {"reference": f"Patient/{scene.patient.pk}"}
        assert data["author"] == {"reference": f"Practitioner/{scene.world.practitioner.pk}"}
        assert dt.datetime.fromisoformat(data["authored"]) == screening.screened_at
        given = {i["linkId"]: i["answer"] for i in data["item"]}
        assert set(given) == set(answers)
        assert given["pregnant"] == [{"valueBoolean": True}]
        assert given["keloid_history"] == [{"valueBoolean": True}]
        assert given["breastfeeding"] == [{"valueBoolean": False}]
        # The result and each reason for it, as the chart shows them.
        [result] = extensions(data, mapping.RESULT_EXTENSION)
        assert result["valueCodeableConcept"]["coding"][0]["code"] == "ineligible"
        reasons = [
            {
                x["url"]: next(v for k, v in x.items() if k.startswith("value"))
                for x in r["extension"]
            }
            for r in extensions(data, mapping.REASON_EXTENSION)
        ]
        assert reasons == [
            {"question": "pregnant", "outcome": "hard_stop", "text": screening.hard_stops[0]},
            {"question": "keloid_history", "outcome": "caution", "text": screening.cautions[0]},
        ]

    def test_a_screening_the_patient_filled_in_is_authored_by_them(
        self, clinic: dict[str, str], scene: Scene
    ) -> None:
        mine = patient_login(scene.patient)
        scene.patient.refresh_from_db()
        screening = do_screen_patient(scene.patient, all_no(scene.world.clinic), scene.patient.user)
        data = body(mine.get(f"QuestionnaireResponse/{screening.pk}"))
        assert data["author"] == {"reference": f"Patient/{scene.patient.pk}"}
        found = body(mine.get("QuestionnaireResponse", patient=str(scene.patient.pk)))
        assert found["total"] == 2


def photo_before_consent(scene: Scene) -> Photo:
    """A photo dated before the patient's clinical photo consent (an imported one, say): the
    consent granted since does not cover it."""
    course = Course.objects.get(pk=scene.course["id"])
    earlier = Photo.objects.get(course=course)
    return Photo.objects.create(
        clinic=course.clinic,
        course=course,
        area=earlier.area,
        view="back",
        image=earlier.image.name,
        content_type=earlier.content_type,
        sha256=earlier.sha256,
        taken_at=ago(days=60),
    )


def withdraw(scene: Scene) -> None:
    photo_actions.do_record_photo_consent(
        scene.patient, purpose="clinical", granted=False, user=scene.world.practitioner
    )


class FhirPhotoTests:
    def test_a_photo_is_a_document_reference_to_its_image(
        self, clinic: dict[str, str], scene: Scene
    ) -> None:
        photo = Photo.objects.get(pk=clinic["DocumentReference"])
        data = body(fhir_for(scene.world.practitioner).get(f"DocumentReference/{photo.pk}"))
        [content] = data["content"]
        attachment = content["attachment"]
        assert attachment["contentType"] == "image/jpeg"
        assert attachment["url"] == f"Binary/photo-{photo.pk}"
        assert attachment["size"] == len(stored_bytes(photo))
        assert "data" not in attachment  # never inlined
        assert dt.datetime.fromisoformat(attachment["creation"]) == photo.taken_at
        assert attachment["title"].startswith(photo.get_area_display())
        assert {"system": mapping.PHOTO_SHA256, "value": photo.sha256} in data["identifier"]
        assert data["subject"] == {"reference": f"Patient/{scene.patient.pk}"}
        assert {"reference": f"Procedure/{clinic['Procedure']}"} in data["context"]["related"]

    def test_the_image_is_served_to_whoever_reads_the_reference_and_audited(
        self, clinic: dict[str, str], scene: Scene
    ) -> None:
        photo = Photo.objects.get(pk=clinic["DocumentReference"])
        AuditEvent.objects.all().delete()
        for reader in (fhir_for(scene.world.practitioner), patient_login(scene.patient)):
            response = reader.get(f"Binary/photo-{photo.pk}")
            assert response.status_code == 200
            assert response["Content-Type"] == "image/jpeg"
            assert response["Cache-Control"] == "private, no-store"
            assert b"".join(response.streaming_content) == stored_bytes(photo)
        rows = AuditEvent.objects.order_by("pk")
        assert [(r.action, r.patient_id) for r in rows] == [
            (AuditEvent.Action.VIEW, scene.patient.pk)
        ] * 2
        assert {r.detail["fhir"] for r in rows} == {f"Binary/photo-{photo.pk}"}

    def test_the_image_is_a_binary_resource_to_a_fhir_client(
        self, clinic: dict[str, str], scene: Scene
    ) -> None:
        photo = Photo.objects.get(pk=clinic["DocumentReference"])
        fhir = fhir_for(scene.world.practitioner)
        response = fhir.client.get(
            f"{ROOT}/Binary/photo-{photo.pk}",
            headers={"Authorization": f"Bearer {fhir.token}", "Accept": "application/fhir+json"},
        )
        data = body(response)
        _validate(data)
        assert data["contentType"] == "image/jpeg"
        assert base64.b64decode(data["data"]) == stored_bytes(photo)
        assert data["securityContext"] == {"reference": f"DocumentReference/{photo.pk}"}

    def test_the_image_is_refused_to_another_clinic_and_another_patient(
        self, clinic: dict[str, str], scene: Scene, other: World
    ) -> None:
        path = f"Binary/photo-{clinic['DocumentReference']}"
        stranger = Patient.objects.create(
            clinic=scene.world.clinic,
            first_name="Bo",
            last_name="Other",
            date_of_birth=dt.date(1985, 1, 1),
        )
        AuditEvent.objects.all().delete()
        issue(fhir_for(other.manager).get(path), 404)
        issue(patient_login(stranger).get(path), 404)
        issue(Fhir().get(path), 401)
        issue(fhir_for(scene.world.manager).get("Binary/photo-999999"), 404)
        issue(fhir_for(scene.world.manager).get(f"Binary/{clinic['DocumentReference']}"), 404)
        assert "read by its id" in issue(fhir_for(scene.world.manager).get("Binary"), 400)
        assert not AuditEvent.objects.filter(action=AuditEvent.Action.VIEW).exists()

    def test_the_patients_bundle_holds_the_screening_and_the_photo(
        self, clinic: dict[str, str], scene: Scene
    ) -> None:
        data = everything.patient_bundle(scene.patient)
        assert entries(data, "Questionnaire") == {clinic["Questionnaire"]}
        assert entries(data, "QuestionnaireResponse") == {clinic["QuestionnaireResponse"]}
        assert entries(data, "DocumentReference") == {clinic["DocumentReference"]}

    def test_a_withdrawn_consent_stops_the_photos_leaving(
        self, clinic: dict[str, str], scene: Scene
    ) -> None:
        rid = clinic["DocumentReference"]
        withdraw(scene)
        fhir = fhir_for(scene.world.manager)
        issue(fhir.get(f"DocumentReference/{rid}"), 404)
        issue(fhir.get(f"Binary/photo-{rid}"), 404)
        issue(patient_login(scene.patient).get(f"Binary/photo-{rid}"), 404)
        assert body(fhir.get("DocumentReference"))["total"] == 0
        assert "DocumentReference" not in {
            e["resource"]["resourceType"] for e in everything.patient_bundle(scene.patient)["entry"]
        }
        # The chart still shows it to clinical staff (docs/photos.md).
        assert Photo.objects.filter(pk=rid).exists()

    def test_a_photo_the_consent_does_not_cover_is_not_served(
        self, clinic: dict[str, str], scene: Scene
    ) -> None:
        earlier = photo_before_consent(scene)
        fhir = fhir_for(scene.world.manager)
        issue(fhir.get(f"DocumentReference/{earlier.pk}"), 404)
        issue(fhir.get(f"Binary/photo-{earlier.pk}"), 404)
        assert entries(body(fhir.get("DocumentReference")), "DocumentReference") == {
            clinic["DocumentReference"]
        }
        assert entries(everything.patient_bundle(scene.patient), "DocumentReference") == {
            clinic["DocumentReference"]
        }


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
            "Questionnaire",
            "QuestionnaireResponse",
            "DocumentReference",
            "Binary",  # Only read, a DocumentReference's image.
            "Group",  # Only its bulk $export (tests/test_fhir_bulk.py).
        }
        assert served["Binary"]["interaction"] == [{"code": "read"}]
        assert served["Procedure"]["searchInclude"] == ["Procedure:patient"]
        params = {p["name"] for p in served["Consent"]["searchParam"]}
        assert params == {"_id", "_lastUpdated", "patient", "date", "_count"}
        assert {i["code"] for i in served["Patient"]["interaction"]} == {"read", "search-type"}
