"""Merging a duplicate record into the one kept: every row moves in one transaction, under row
locks; the duplicate stays, marked as merged, and its pages lead to the kept record
(patients/records.py do_merge_patients, web/patients.py merge)."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, connections
from django.test import Client

from mesoclinic.accounts.models import AuditEvent, User
from mesoclinic.courses.models import Course
from mesoclinic.formulary.models import Ingredient
from mesoclinic.outcomes.models import PhotoConsent
from mesoclinic.patients.models import (
    Allergy,
    Consent,
    Medication,
    Patient,
    PatientChange,
    Screening,
)
from mesoclinic.patients.records import do_merge_patients, patient_links
from mesoclinic.safety.models import AdverseEvent
from mesoclinic.scheduling.models import Appointment, CalendarFeed
from tests.conftest import Scene, World


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def twin(world: World, **extra: Any) -> Patient:
    extra.setdefault("date_of_birth", dt.date(1990, 5, 17))
    return Patient.objects.create(clinic=world.clinic, first_name="Ana", last_name="López", **extra)


class MergeTests:
    def test_every_foreign_key_to_a_patient_is_moved(self) -> None:
        # Read from the models: a model added later with a key to Patient is moved too.
        models = {model for model, _ in patient_links()}
        assert {
            Allergy,
            Medication,
            PatientChange,
            Screening,
            Consent,
            Course,
            Appointment,
            AdverseEvent,
            PhotoConsent,
            CalendarFeed,
            Patient,
        } <= models

    def test_a_manager_merges_and_every_row_moves_to_the_kept_record(self, scene: Scene) -> None:
        world, duplicate = scene.world, scene.patient
        keep = twin(world, email="ana.lopez@example.org")
        lido = Ingredient.objects.get(key="lidocaine", clinic=None)
        Allergy.objects.create(patient=keep, ingredient=lido, reaction="Hives")
        both = Allergy.objects.create(patient=duplicate, ingredient=lido)
        own = Allergy.objects.create(patient=duplicate, substance="Latex")
        Medication.objects.create(patient=duplicate, name="Metformin")
        login = User.objects.create_user("ana-login", password="pw")
        Patient.objects.filter(pk=duplicate.pk).update(user=login)
        before = {
            model: model._default_manager.filter(**{name: duplicate}).count()
            for model, name in patient_links()
        }
        assert before[Course] and before[Appointment] and before[Consent] and before[Screening]
        trail = AuditEvent.objects.filter(patient_id=duplicate.pk).count()
        assert trail

        client = signed_in(world.manager)
        page = client.get(f"/patients/{keep.pk}/merge/").content.decode()
        assert f"#{duplicate.pk}" in page and "the same name and birth" in page
        page = client.get(f"/patients/{keep.pk}/merge/", {"other": duplicate.pk}).content.decode()
        assert "keep which value" in page and "ana@example.com" in page
        r = client.post(
            f"/patients/{keep.pk}/merge/",
            {"other": duplicate.pk, "confirm": "1", "email": "other", "phone": "other"},
        )
        assert r.status_code == 302, r.content.decode()

        keep.refresh_from_db()
        duplicate.refresh_from_db()
        assert (keep.email, keep.phone, keep.phone_e164) == (
            "ana@example.com",
            "+1 212 555 0101",
            "+12125550101",
        )
        assert keep.user == login and duplicate.user is None
        assert duplicate.merged_into == keep and duplicate.merged_at is not None
        for model, name in patient_links():
            left = model._default_manager.filter(**{name: duplicate})
            if model is PatientChange:
                assert [c.summary for c in left] == [f"Merged into record #{keep.pk}."]
            else:
                assert not left.exists(), model
        assert Course.objects.filter(patient=keep).count() == before[Course]
        assert Appointment.objects.filter(patient=keep).count() == before[Appointment]
        # The allergy on both records is kept once; nothing is deleted.
        both.refresh_from_db()
        own.refresh_from_db()
        assert both.patient == keep and both.entered_in_error_at is not None
        assert own.patient == keep and own.entered_in_error_at is None
        assert sorted(a.what for a in keep.allergies.standing()) == ["Latex", "Lidocaine"]
        # The audit trail follows the patient, and the merge itself is audited.
        assert (
            not AuditEvent.objects.filter(patient_id=duplicate.pk)
            .exclude(detail__merged=duplicate.pk)
            .exists()
        )
        merged = AuditEvent.objects.get(
            action=AuditEvent.Action.UPDATE, patient_id=keep.pk, detail__into=keep.pk
        )
        assert merged.user == world.manager and merged.detail["merged"] == duplicate.pk
        assert sorted(merged.detail["values_from_merged"]) == ["email", "phone"]
        assert len(merged.detail["audit_rows_moved"]) >= trail

        # The duplicate's pages lead to the kept record, saying why.
        r = client.get(f"/patients/{duplicate.pk}/")
        assert r.status_code == 302 and r.url == f"/patients/{keep.pk}/"
        page = client.get(r.url).content.decode()
        assert f"Record #{duplicate.pk} was merged into record #{keep.pk}" in page
        history = client.get(f"/patients/{duplicate.pk}/history/").content.decode()
        assert f'merged into <a href="/patients/{keep.pk}/">record #{keep.pk}</a>' in history
        assert (
            f"Merged record #{duplicate.pk} into this one."
            in client.get(f"/patients/{keep.pk}/history/").content.decode()
        )

    def test_only_a_manager_of_the_clinic_may_merge(
        self, world: World, other: World, patient: Patient
    ) -> None:
        keep = twin(world)
        for user in (world.front_desk, world.practitioner):
            r = signed_in(user).post(
                f"/patients/{keep.pk}/merge/", {"other": patient.pk, "confirm": "1"}
            )
            assert r.status_code == 403
        r = signed_in(other.manager).post(
            f"/patients/{keep.pk}/merge/", {"other": patient.pk, "confirm": "1"}
        )
        assert r.status_code == 404
        theirs = Patient.objects.create(
            clinic=other.clinic,
            first_name="Ana",
            last_name="López",
            date_of_birth=dt.date(1990, 5, 17),
        )
        r = signed_in(world.manager).post(
            f"/patients/{keep.pk}/merge/", {"other": theirs.pk, "confirm": "1"}
        )
        assert r.status_code == 200
        assert "No other record of this clinic has that number." in r.content.decode()
        owner = User.objects.create_user("own", password="pw")
        Patient.objects.filter(pk=keep.pk).update(user=owner)
        assert signed_in(owner).get(f"/patients/{keep.pk}/merge/").status_code == 403
        assert not Patient.objects.filter(merged_into__isnull=False).exists()

    def test_it_refuses_two_visits_at_the_same_time(self, scene: Scene) -> None:
        world = scene.world
        keep = twin(world)
        visit = Appointment.objects.get(pk=scene.appointment)
        # Another practitioner sees the kept record at the same time.
        someone_else = (
            world.manager if visit.practitioner_id != world.manager.pk else world.practitioner
        )
        Appointment.objects.create(
            clinic=visit.clinic,
            patient=keep,
            practitioner=someone_else,
            starts_at=visit.starts_at,
            ends_at=visit.ends_at,
            kind=visit.kind,
        )
        with pytest.raises(ValidationError, match="Both records have a visit"):
            do_merge_patients(keep, scene.patient, take_from_other=[], user=world.manager)
        assert not Patient.objects.filter(merged_into__isnull=False).exists()
        assert Appointment.objects.filter(patient=scene.patient).exists()

    def test_a_merged_record_cannot_be_merged_again(self, world: World, patient: Patient) -> None:
        keep = twin(world)
        do_merge_patients(keep, patient, take_from_other=[], user=world.manager)
        with pytest.raises(ValidationError, match="already merged"):
            do_merge_patients(patient, keep, take_from_other=[], user=world.manager)


@pytest.mark.django_db(transaction=True)
def test_two_merges_at_once_merge_only_one_way(world: World) -> None:
    """A into B and B into A at the same moment: the row locks let exactly one through."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks are tested on PostgreSQL; SQLite writes one at a time")
    a, b = twin(world), twin(world)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def merge(keep: Patient, other: Patient) -> None:
        try:
            barrier.wait()
            do_merge_patients(keep, other, take_from_other=[], user=world.manager)
            outcomes.append("merged")
        except ValidationError:
            outcomes.append("refused")
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=merge, args=(a, b)),
        threading.Thread(target=merge, args=(b, a)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["merged", "refused"]
    assert Patient.objects.filter(merged_into__isnull=False).count() == 1
