"""Tracing a lot for a recall: every patient who received it, and when, in time order."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from mesoclinic.courses.tracing import lot_exposures
from mesoclinic.patients.models import Patient
from tests.conftest import World
from tests.test_web import course_with_sessions


def test_each_patients_exposures_are_in_time_order(world: World, patient: Patient) -> None:
    first = timezone.now() - dt.timedelta(days=15)
    course_with_sessions(world, patient, 2, first)
    [row] = lot_exposures(world.lot)
    kinds = [e["kind"] for e in row["exposures"]]
    times = [e["at"] for e in row["exposures"]]
    # The allergy test came three days before session 1, and both its injections used the lot.
    assert kinds == ["allergy_test", "allergy_test", "session", "session"]
    assert times == sorted(times)
    assert times[2] == first


def test_patients_are_listed_by_name_with_their_contacts(world: World, patient: Patient) -> None:
    later = Patient.objects.create(
        clinic=world.clinic,
        first_name="Bea",
        last_name="Adams",
        date_of_birth=dt.date(1985, 1, 2),
        phone="+1 212 555 0102",
    )
    course_with_sessions(world, patient, 1, timezone.now() - dt.timedelta(days=2))
    course_with_sessions(world, later, 1, timezone.now() - dt.timedelta(days=1))
    rows = lot_exposures(world.lot)
    assert [(r["last_name"], r["phone"]) for r in rows] == [
        ("Adams", "+1 212 555 0102"),
        ("Lopez", patient.phone),
    ]
