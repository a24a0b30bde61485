"""The admin cannot be used to take over an account in another clinic, and every change and
every read of patient data made in it lands in the product's audit trail."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.test import Client

from mesoclinic.accounts.models import AuditEvent, Membership, User
from mesoclinic.patients.models import Patient
from tests.conftest import World, api_for, make_user
from tests.test_admin import admin_client

NEW_PASSWORD = "a-Long-new-passphrase-42"


@pytest.fixture
def shared(world: World, other: World) -> User:
    """A practitioner of both clinics: clinic A's manager must not be able to touch them."""
    user = make_user(world.clinic, "both", Membership.Role.PRACTITIONER)
    Membership.objects.create(user=user, clinic=other.clinic, role=Membership.Role.PRACTITIONER)
    return user


def change_form(user: User, **extra: Any) -> dict[str, Any]:
    return {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": "Changed",
        "email": "changed@example.com",
        "is_active": "on",
        **extra,
    }


class AdminTakeoverTests:
    def test_it_refuses_a_password_change_for_a_user_of_another_clinic_too(
        self, world: World, other: World, shared: User
    ) -> None:
        client = admin_client(world.manager)
        other_api = api_for(shared)
        r = client.post(
            f"/admin/accounts/user/{shared.pk}/password/",
            {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
        )
        assert r.status_code == 404
        shared.refresh_from_db()
        assert shared.check_password("pw")
        assert not shared.check_password(NEW_PASSWORD)
        # Their token still reads only what it read before, and no one else got in.
        assert other_api.get("/patients").status_code == 200

    def test_it_hides_and_refuses_changes_to_a_user_of_another_clinic_too(
        self, world: World, other: World, shared: User
    ) -> None:
        client = admin_client(world.manager)
        listing = client.get("/admin/accounts/user/").content.decode()
        assert f"/admin/accounts/user/{shared.pk}/change/" not in listing
        assert f"/admin/accounts/user/{world.practitioner.pk}/change/" in listing
        page = client.get(f"/admin/accounts/user/{shared.pk}/change/")
        assert page.status_code == 302  # the admin's "no such object" answer
        client.post(f"/admin/accounts/user/{shared.pk}/change/", change_form(shared))
        shared.refresh_from_db()
        assert shared.last_name == "" and shared.email == ""

    def test_it_refuses_a_user_of_the_other_clinic_alone(self, world: World, other: World) -> None:
        client = admin_client(world.manager)
        r = client.post(
            f"/admin/accounts/user/{other.manager.pk}/password/",
            {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
        )
        assert r.status_code == 404
        other.manager.refresh_from_db()
        assert other.manager.check_password("pw")

    def test_it_refuses_superuser_and_staff_status_from_a_manager(self, world: World) -> None:
        client = admin_client(world.manager)
        r = client.post(
            f"/admin/accounts/user/{world.practitioner.pk}/change/",
            change_form(world.practitioner, is_superuser="on", is_staff="on"),
        )
        assert r.status_code == 302, r.content.decode()[:2000]
        world.practitioner.refresh_from_db()
        assert world.practitioner.last_name == "Changed"
        assert not world.practitioner.is_superuser
        assert not world.practitioner.is_staff

    def test_it_lets_a_manager_reset_a_password_in_their_own_clinic_and_ends_the_tokens(
        self, world: World
    ) -> None:
        client = admin_client(world.manager)
        old_api = api_for(world.practitioner)
        assert old_api.get("/patients").status_code == 200
        r = client.post(
            f"/admin/accounts/user/{world.practitioner.pk}/password/",
            {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
        )
        assert r.status_code == 302
        world.practitioner.refresh_from_db()
        assert world.practitioner.check_password(NEW_PASSWORD)
        assert old_api.get("/patients").status_code == 401
        row = AuditEvent.objects.get(
            action=AuditEvent.Action.UPDATE, object_type="accounts.User", via="admin"
        )
        assert row.clinic == world.clinic and row.user == world.manager
        assert row.object_id == str(world.practitioner.pk)
        assert row.detail == {"fields": ["password"]}
        assert NEW_PASSWORD not in str(row.detail)

    def test_a_superuser_may_still_change_anyone(self, world: World, shared: User) -> None:
        root = User.objects.create_superuser("root", password="pw")
        client = Client()
        client.force_login(root)
        r = client.post(
            f"/admin/accounts/user/{shared.pk}/password/",
            {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
        )
        assert r.status_code == 302
        shared.refresh_from_db()
        assert shared.check_password(NEW_PASSWORD)
        # One row in each of the user's clinics, so each manager sees it.
        rows = AuditEvent.objects.filter(object_type="accounts.User", action="update")
        assert {r.clinic_id for r in rows} == set(
            shared.memberships.values_list("clinic_id", flat=True)
        )


class AdminAuditTests:
    def test_a_change_in_the_admin_is_audited(self, world: World) -> None:
        from mesoclinic.accounts.models import PractitionerLicence

        client = admin_client(world.manager)
        licence = PractitionerLicence.objects.get(user=world.practitioner)
        r = client.post(
            f"/admin/accounts/practitionerlicence/{licence.pk}/change/",
            {
                "user": world.practitioner.pk,
                "clinic": world.clinic.pk,
                "kind": licence.kind,
                "number": "MD-RENEWED",
                "jurisdiction": licence.jurisdiction,
                "expires_on": licence.expires_on.isoformat(),
            },
        )
        assert r.status_code == 302, r.content.decode()[:3000]
        row = AuditEvent.objects.get(action="update", object_type="accounts.PractitionerLicence")
        assert (row.clinic, row.user, row.via) == (world.clinic, world.manager, "admin")
        assert row.detail == {"fields": ["number"]}

    def test_a_deletion_in_the_admin_is_audited(self, world: World) -> None:
        root = User.objects.create_superuser("root", password="pw")
        client = Client()
        client.force_login(root)
        lot = world.expired_lot
        r = client.post(f"/admin/formulary/lot/{lot.pk}/delete/", {"post": "yes"})
        assert r.status_code == 302
        row = AuditEvent.objects.get(action=AuditEvent.Action.DELETE)
        assert (row.object_type, row.object_id, row.via) == ("formulary.Lot", str(lot.pk), "admin")
        assert row.clinic == world.clinic

    def test_the_patient_list_in_the_admin_audits_a_read_of_each_patient(
        self, world: World, patient: Patient
    ) -> None:
        second = Patient.objects.create(
            clinic=world.clinic, first_name="Bea", last_name="Diaz", date_of_birth="1985-01-02"
        )
        client = admin_client(world.manager)
        assert client.get("/admin/patients/patient/").status_code == 200
        rows = AuditEvent.objects.filter(action="view", via="admin")
        assert sorted(r.patient_id for r in rows) == sorted([patient.pk, second.pk])
        assert {(r.clinic_id, r.user_id) for r in rows} == {(world.clinic.pk, world.manager.pk)}

    def test_the_change_page_of_patient_data_audits_the_read(
        self, world: World, patient: Patient
    ) -> None:
        client = admin_client(world.manager)
        assert client.get(f"/admin/patients/patient/{patient.pk}/change/").status_code == 200
        row = AuditEvent.objects.get(action="view", via="admin")
        assert (row.patient_id, row.object_type) == (patient.pk, "patients.Patient")

    def test_a_list_of_records_under_a_patient_names_the_patient(
        self, world: World, patient: Patient
    ) -> None:
        from tests.test_admin import ready_course

        course = ready_course(world, patient)
        AuditEvent.objects.all().delete()
        client = admin_client(world.manager)
        assert client.get("/admin/courses/allergytest/").status_code == 200
        rows = AuditEvent.objects.filter(action="view", via="admin")
        assert [r.patient_id for r in rows] == [patient.pk]
        assert rows[0].object_type == "courses.AllergyTest"
        assert course.patient_id == patient.pk


class AdminInlineAuditTests:
    def test_an_allergy_added_in_the_patients_admin_is_audited(
        self, world: World, patient: Patient
    ) -> None:
        from mesoclinic.formulary.models import Ingredient
        from mesoclinic.patients.models import Allergy

        client = admin_client(world.manager)
        url = f"/admin/patients/patient/{patient.pk}/change/"
        page = client.get(url)
        form = page.context["adminform"].form
        data: dict[str, Any] = {}
        for name in form.fields:
            value = form[name].value()
            if value is None or value is False:
                continue
            if isinstance(value, dt.datetime):
                # The admin shows and reads times in the clinic's time zone, split in two.
                local = value.astimezone(world.clinic.tz)
                data[f"{name}_0"] = local.strftime("%Y-%m-%d")
                data[f"{name}_1"] = local.strftime("%H:%M:%S")
                continue
            data[name] = "on" if value is True else value
        for inline in page.context["inline_admin_formsets"]:
            formset = inline.formset
            for key, value in formset.management_form.initial.items():
                data[f"{formset.prefix}-{key}"] = value
            data[f"{formset.prefix}-TOTAL_FORMS"] = 1
            data[f"{formset.prefix}-0-ingredient"] = Ingredient.objects.get(
                key="lidocaine", clinic=None
            ).pk
            data[f"{formset.prefix}-0-reaction"] = "hives"
            data[f"{formset.prefix}-0-recorded_at_0"] = "2026-11-01"
            data[f"{formset.prefix}-0-recorded_at_1"] = "10:00:00"
            data[f"{formset.prefix}-0-patient"] = patient.pk
        r = client.post(url, data)
        if r.status_code != 302:
            errors = (
                [r.context["adminform"].form.errors]
                + [i.formset.errors for i in r.context["inline_admin_formsets"]]
                + [i.formset.non_form_errors() for i in r.context["inline_admin_formsets"]]
            )
            raise AssertionError(errors)
        allergy = Allergy.objects.get(patient=patient)
        row = AuditEvent.objects.get(action="create", object_type="patients.Allergy")
        assert (row.object_id, row.patient_id, row.clinic, row.via) == (
            str(allergy.pk),
            patient.pk,
            world.clinic,
            "admin",
        )
