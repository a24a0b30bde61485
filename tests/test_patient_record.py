"""Editing a patient's record with its history; the guardian of a minor; medications;
allergies from the ingredient picker, entered in error but never deleted; the screening that
asks what the patient is allergic to; duplicates at registration (web/patients.py,
patients/records.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.test import Client
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent, User
from mesoclinic.courses import rules
from mesoclinic.courses.models import Course, gather_facts, patient_allergies
from mesoclinic.formulary.models import Ingredient
from mesoclinic.patients.models import Allergy, Medication, Patient, PatientChange, Screening
from mesoclinic.patients.screening import ALLERGY_QUESTION
from tests.conftest import World, all_no, api_for, problem_of, ready_course


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def details(patient: Patient, **changes: Any) -> dict[str, Any]:
    """The edit form's fields as they are, with `changes`."""
    data = {
        "first_name": patient.first_name,
        "last_name": patient.last_name,
        "date_of_birth": patient.date_of_birth.isoformat(),
        "sex": patient.sex,
        "phone": patient.phone,
        "email": patient.email,
        "address": patient.address,
    }
    data.update(changes)
    return data


def ingredient(key: str) -> Ingredient:
    return Ingredient.objects.get(key=key, clinic=None)


def patient_login(patient: Patient) -> User:
    user = User.objects.create_user("own-login", password="pw")
    Patient.objects.filter(pk=patient.pk).update(user=user)
    return user


class EditTests:
    def test_the_front_desk_edits_details_and_the_history_keeps_the_old_values(
        self, world: World, patient: Patient
    ) -> None:
        client = signed_in(world.front_desk)
        assert client.get(f"/patients/{patient.pk}/edit/").status_code == 200
        r = client.post(
            f"/patients/{patient.pk}/edit/",
            details(
                patient,
                phone="(646) 555-0199",
                emergency_name="Luis Lopez",
                emergency_relation="brother",
                emergency_phone="+1 212 555 0111",
            ),
        )
        assert r.status_code == 302
        patient.refresh_from_db()
        assert (patient.phone, patient.phone_e164) == ("(646) 555-0199", "+16465550199")
        assert patient.emergency_name == "Luis Lopez"
        change = PatientChange.objects.get(patient=patient)
        assert change.changed_by == world.front_desk
        assert change.changes["Phone"] == ["+1 212 555 0101", "(646) 555-0199"]
        assert change.changes["Emergency contact's name"] == ["", "Luis Lopez"]
        event = AuditEvent.objects.get(action=AuditEvent.Action.UPDATE, patient_id=patient.pk)
        assert event.user == world.front_desk and "phone" in event.detail["fields"]

        chart = client.get(f"/patients/{patient.pk}/").content.decode()
        assert "Edited " in chart and world.front_desk.display_name in chart
        assert f"/patients/{patient.pk}/history/" in chart
        assert "Luis Lopez (brother)" in chart
        history = client.get(f"/patients/{patient.pk}/history/").content.decode()
        assert "+1 212 555 0101" in history and "(646) 555-0199" in history
        assert AuditEvent.objects.filter(
            action=AuditEvent.Action.VIEW, patient_id=patient.pk, object_type="patients.Patient"
        ).exists()

    def test_saving_nothing_new_writes_no_history(self, world: World, patient: Patient) -> None:
        r = signed_in(world.front_desk).post(f"/patients/{patient.pk}/edit/", details(patient))
        assert r.status_code == 302
        assert not PatientChange.objects.exists()

    def test_a_minor_needs_a_guardian(self, world: World, patient: Patient) -> None:
        client = signed_in(world.front_desk)
        young = (timezone.localdate() - dt.timedelta(days=365 * 15)).isoformat()
        r = client.post(f"/patients/{patient.pk}/edit/", details(patient, date_of_birth=young))
        assert r.status_code == 200
        errors = r.context["form"].errors
        assert {"guardian_name", "guardian_relation", "guardian_phone"} <= set(errors)
        assert "under 18" in r.content.decode()
        patient.refresh_from_db()
        assert patient.date_of_birth == dt.date(1990, 5, 17)
        r = client.post(
            f"/patients/{patient.pk}/edit/",
            details(
                patient,
                date_of_birth=young,
                guardian_name="Maria Lopez",
                guardian_relation="mother",
                guardian_phone="212 555 0122",
                guardian_email="maria@example.com",
            ),
        )
        assert r.status_code == 302
        patient.refresh_from_db()
        assert patient.guardian_name == "Maria Lopez"

    def test_registering_a_minor_needs_a_guardian(self, world: World) -> None:
        young = (timezone.localdate() - dt.timedelta(days=365 * 10)).isoformat()
        body = {"first_name": "Tim", "last_name": "Young", "date_of_birth": young, "sex": "male"}
        r = signed_in(world.front_desk).post("/patients/new/", body)
        assert r.status_code == 200 and "guardian_name" in r.context["form"].errors
        r = api_for(world.front_desk).post("/patients", body)
        assert "guardian_name" in {e["field"] for e in problem_of(r, 422)["errors"]}
        assert not Patient.objects.exists()

    def test_another_clinic_and_a_patient_login_cannot_edit(
        self, world: World, other: World, patient: Patient
    ) -> None:
        assert signed_in(other.manager).get(f"/patients/{patient.pk}/edit/").status_code == 404
        own = signed_in(patient_login(patient))
        assert own.get(f"/patients/{patient.pk}/edit/").status_code == 403
        assert own.post(f"/patients/{patient.pk}/edit/", details(patient)).status_code == 403
        assert signed_in(other.manager).get(f"/patients/{patient.pk}/history/").status_code == 404


class MedicationTests:
    def test_adding_and_stopping_keeps_the_row_with_its_end(
        self, world: World, patient: Patient
    ) -> None:
        client = signed_in(world.practitioner)
        r = client.post(
            f"/patients/{patient.pk}/medications/",
            {"name": "Warfarin", "dose": "5 mg a day", "since": "2024-01-10"},
        )
        assert r.status_code == 302
        med = Medication.objects.get(patient=patient)
        assert "Warfarin 5 mg a day" in client.get(f"/patients/{patient.pk}/").content.decode()
        r = client.post(f"/medications/{med.pk}/stop/", {"stopped_on": "2023-12-01"})
        med.refresh_from_db()
        assert med.stopped_on is None  # before it started: refused
        client.post(f"/medications/{med.pk}/stop/", {"stopped_on": "2024-06-01"})
        med.refresh_from_db()
        assert med.stopped_on == dt.date(2024, 6, 1) and med.stopped_by == world.practitioner
        assert Medication.objects.filter(patient=patient).count() == 1
        assert client.get(f"/patients/{patient.pk}/").context["record_medications"] == []
        page = client.get(f"/patients/{patient.pk}/medications/").content.decode()
        assert "Warfarin" in page and "1 Jun 2024" in page
        assert AuditEvent.objects.filter(
            object_type="patients.Medication", action=AuditEvent.Action.UPDATE
        ).exists()
        kinds = list(PatientChange.objects.values_list("summary", flat=True))
        assert any(s.startswith("Stopped Warfarin") for s in kinds)

    def test_a_medicine_needs_a_name_shown_beside_the_field(
        self, world: World, patient: Patient
    ) -> None:
        r = signed_in(world.practitioner).post(
            f"/patients/{patient.pk}/medications/", {"dose": "1"}
        )
        assert r.status_code == 200 and "name" in r.context["form"].errors

    def test_the_front_desk_and_another_clinic_may_not(
        self, world: World, other: World, patient: Patient
    ) -> None:
        med = Medication.objects.create(patient=patient, name="Aspirin")
        assert (
            signed_in(world.front_desk).get(f"/patients/{patient.pk}/medications/").status_code
            == 403
        )
        r = signed_in(other.manager).post(
            f"/medications/{med.pk}/stop/", {"stopped_on": "2024-01-01"}
        )
        assert r.status_code == 404
        med.refresh_from_db()
        assert med.stopped_on is None


class AllergyTests:
    def test_an_allergy_from_the_picker_stops_a_lot_that_contains_it(
        self, world: World, patient: Patient
    ) -> None:
        course = Course.objects.get(pk=ready_course(api_for(world.manager), world, patient)["id"])
        lido = ingredient("lidocaine")

        def refused_for_allergy() -> bool:
            facts = gather_facts(course, timezone.now(), world.practitioner, [world.lidocaine_lot])
            return any(r.code == rules.Code.INGREDIENT_ALLERGY for r in rules.refusals(facts))

        assert not refused_for_allergy()
        client = signed_in(world.practitioner)
        r = client.post(
            f"/patients/{patient.pk}/allergies/",
            {"ingredient": lido.pk, "reaction": "Hives", "noticed": "2019, at the dentist"},
        )
        assert r.status_code == 302
        allergy = Allergy.objects.get(patient=patient)
        assert (allergy.ingredient, allergy.recorded_by) == (lido, world.practitioner)
        assert refused_for_allergy()
        assert AuditEvent.objects.filter(
            object_type="patients.Allergy", action=AuditEvent.Action.CREATE, patient_id=patient.pk
        ).exists()

        # Entered in error: it needs a reason, stays on the record, and no longer counts.
        client.post(f"/allergies/{allergy.pk}/entered-in-error/", {"reason": ""})
        allergy.refresh_from_db()
        assert allergy.entered_in_error_at is None
        client.post(f"/allergies/{allergy.pk}/entered-in-error/", {"reason": "It was procaine."})
        allergy.refresh_from_db()
        assert allergy.entered_in_error_reason == "It was procaine."
        assert Allergy.objects.filter(pk=allergy.pk).exists()
        assert not refused_for_allergy()
        assert patient_allergies(patient) == {}
        page = client.get(f"/patients/{patient.pk}/allergies/").content.decode()
        assert "<del>Lidocaine" in page and "Entered in error" in page
        # It may be recorded again afterwards.
        client.post(f"/patients/{patient.pk}/allergies/", {"ingredient": lido.pk})
        assert patient.allergies.standing().count() == 1

    def test_another_substance_is_named_in_words(self, world: World, patient: Patient) -> None:
        client = signed_in(world.practitioner)
        r = client.post(f"/patients/{patient.pk}/allergies/", {"reaction": "Rash"})
        assert r.status_code == 200 and "ingredient" in r.context["form"].errors
        client.post(
            f"/patients/{patient.pk}/allergies/", {"substance": "Latex", "reaction": "Rash"}
        )
        allergy = Allergy.objects.get(patient=patient)
        assert (allergy.ingredient, allergy.what) == (None, "Latex")
        assert "Latex (Rash)" in client.get(f"/patients/{patient.pk}/").content.decode()
        # Not an ingredient: no lot can contain it, so the gate's list is unchanged.
        assert patient_allergies(patient) == {}
        assert api_for(world.practitioner).get(f"/patients/{patient.pk}").json()["allergies"] == [
            {"ingredient": None, "name": "Latex", "reaction": "Rash"}
        ]

    def test_the_picker_finds_by_name_and_keeps_what_is_ticked(self, world: World) -> None:
        client = signed_in(world.practitioner)
        lido = ingredient("lidocaine")
        r = client.get("/ingredients/picker/", {"q": "lido", "name": "allergy_ingredients"})
        page = r.content.decode()
        assert 'type="checkbox"' in page and "Lidocaine" in page and "Procaine" not in page
        r = client.get(
            "/ingredients/picker/", {"q": "procaine", "name": "ingredient", "ingredient": lido.pk}
        )
        page = r.content.decode()
        assert 'type="radio"' in page and "Procaine" in page
        assert f'value="{lido.pk}" checked' in page
        r = client.get("/ingredients/picker/", {"q": "zzzz"})
        assert "No ingredient matches" in r.content.decode()

    def test_another_clinic_cannot_touch_an_allergy(
        self, world: World, other: World, patient: Patient
    ) -> None:
        allergy = Allergy.objects.create(patient=patient, ingredient=ingredient("lidocaine"))
        r = signed_in(other.manager).post(
            f"/allergies/{allergy.pk}/entered-in-error/", {"reason": "x"}
        )
        assert r.status_code == 404
        assert signed_in(other.manager).get(f"/patients/{patient.pk}/allergies/").status_code == 404
        own = signed_in(patient_login(patient))
        assert own.get(f"/patients/{patient.pk}/allergies/").status_code == 403


class ScreeningAllergyTests:
    def answers(self, world: World, **yes: bool) -> dict[str, str]:
        return {k: "yes" if yes.get(k) else "no" for k in all_no(world.clinic)}

    def test_a_yes_asks_to_what_and_records_it_with_the_screening(
        self, world: World, patient: Patient
    ) -> None:
        client = signed_in(world.practitioner)
        page = client.get(f"/patients/{patient.pk}/screening/").content.decode()
        assert "Allergic to these ingredients" in page and "/ingredients/picker/" in page
        data = self.answers(world, **{ALLERGY_QUESTION: True})
        r = client.post(f"/patients/{patient.pk}/screening/", data)
        assert r.status_code == 200
        assert "allergy_ingredients" in r.context["form"].errors
        assert not Screening.objects.exists()

        lido = ingredient("lidocaine")
        data |= {
            "allergy_ingredients": [str(lido.pk)],
            "allergy_other": "Latex\n\nPenicillin",
            "allergy_reaction": "Hives",
        }
        r = client.post(f"/patients/{patient.pk}/screening/", data)
        assert r.status_code == 302
        assert Screening.objects.filter(patient=patient).count() == 1
        assert sorted(a.what for a in patient.allergies.all()) == [
            "Latex",
            "Lidocaine",
            "Penicillin",
        ]
        assert patient_allergies(patient) == {lido.pk: lido.name}
        # Screening again with the same answers records nothing twice.
        client.post(f"/patients/{patient.pk}/screening/", data)
        assert patient.allergies.count() == 3

    def test_a_no_records_no_allergy(self, world: World, patient: Patient) -> None:
        data = self.answers(world) | {"allergy_other": "Latex"}
        r = signed_in(world.practitioner).post(f"/patients/{patient.pk}/screening/", data)
        assert r.status_code == 302
        assert not patient.allergies.exists()


class DuplicateTests:
    def test_registration_warns_of_the_same_phone_and_lets_the_user_go_on(
        self, world: World, patient: Patient
    ) -> None:
        client = signed_in(world.front_desk)
        body = {
            "first_name": "Anna",
            "last_name": "Lopes",
            "date_of_birth": "1991-01-01",
            "sex": "female",
            "phone": "(212) 555-0101",
        }
        r = client.post("/patients/new/", body)
        assert r.status_code == 200
        page = r.content.decode()
        assert "may already be registered" in page and f"/patients/{patient.pk}/" in page
        assert "the same phone number" in page and "Register anyway" in page
        assert Patient.objects.count() == 1
        assert AuditEvent.objects.filter(
            patient_id=patient.pk, detail__page="possible duplicates"
        ).exists()
        r = client.post("/patients/new/", body | {"register_anyway": "1"})
        assert r.status_code == 302
        assert Patient.objects.count() == 2

    def test_the_same_name_and_birth_or_email_is_a_duplicate(
        self, world: World, other: World, patient: Patient
    ) -> None:
        client = signed_in(world.front_desk)
        same_name = {"first_name": "ANA", "last_name": "López", "date_of_birth": "1990-05-17"}
        r = client.post("/patients/new/", same_name | {"sex": "female"})
        assert "the same name and birth" in r.content.decode()
        r = client.post(
            "/patients/new/",
            {"first_name": "X", "last_name": "Y", "date_of_birth": "1970-01-01", "sex": "male"}
            | {"email": "Ana@Example.com"},
        )
        assert "the same email address" in r.content.decode()
        # Another clinic's patient is never a duplicate.
        r = signed_in(other.front_desk).post("/patients/new/", same_name | {"sex": "female"})
        assert r.status_code == 302

    def test_the_api_refuses_a_duplicate_with_the_matches_unless_told(
        self, world: World, patient: Patient
    ) -> None:
        api = api_for(world.front_desk)
        body = {"first_name": "Ana", "last_name": "Lopez", "date_of_birth": "1990-05-17"}
        problem = problem_of(api.post("/patients", body), 409)
        assert [d["id"] for d in problem["duplicates"]] == [patient.pk]
        assert problem["duplicates"][0]["matched"] == ["the same name and birth"]
        assert Patient.objects.count() == 1
        assert api.post("/patients", body | {"allow_duplicate": True}).status_code == 201
        assert Patient.objects.count() == 2
