"""The demo clinic: `mesoclinic demo` loads it once, with patients in every state.

A load takes several seconds (every one of its ~100 sessions goes through every gate), so
DemoClinicTests loads it once, in a transaction rolled back after the last test; each test
still runs in its own savepoint through pytest-django's `db` fixture.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import authenticate
from django.db import transaction
from django.db.models import Count, Max
from django.utils import timezone

from mesoclinic import demo
from mesoclinic.accounts.models import AuditEvent, Clinic, Membership, PractitionerLicence, User
from mesoclinic.courses import logic
from mesoclinic.courses.models import (
    AllergyReading,
    AllergyTest,
    Course,
    FollowUp,
    Session,
    SideEffect,
)
from mesoclinic.formulary.models import Lot, Product
from mesoclinic.patients.models import Allergy, Consent, Patient, Screening

PROTOCOLS = {"cellulite", "localized_fat", "facial_rejuvenation", "hair_loss"}


@pytest.fixture(scope="class")
def loaded(django_db_setup: Any, django_db_blocker: Any) -> Iterator[None]:
    with django_db_blocker.unblock(), transaction.atomic():
        assert Clinic.objects.filter(name=demo.CLINIC_NAME).count() == 0
        assert demo.load() is True
        yield
        transaction.set_rollback(True)


@pytest.fixture
def clinic(loaded: None, db: Any) -> Clinic:
    return Clinic.objects.get(name=demo.CLINIC_NAME)


def counts() -> dict[str, int]:
    models = (
        Clinic,
        User,
        Membership,
        PractitionerLicence,
        Product,
        Lot,
        Patient,
        Screening,
        Consent,
        Allergy,
        Course,
        AllergyTest,
        AllergyReading,
        Session,
        SideEffect,
        FollowUp,
        AuditEvent,
    )
    return {m.__name__: m.objects.count() for m in models}


class DemoClinicTests:
    def test_load_creates_the_clinic(self, clinic: Clinic) -> None:
        assert (clinic.city, clinic.timezone, clinic.currency) == (
            "New York",
            "America/New_York",
            "USD",
        )
        assert clinic.protocols.count() >= 4
        assert Product.objects.filter(clinic=clinic).count() >= 4

    def test_the_three_logins_authenticate_with_password_demo(self, clinic: Clinic) -> None:
        roles = {"manager": "manager", "practitioner": "practitioner", "frontdesk": "front_desk"}
        for username, role in roles.items():
            user = authenticate(username=username, password="demo")
            assert user is not None, username
            membership = Membership.objects.get(user=user, clinic=clinic)
            assert membership.role == role
        assert User.objects.get(username="manager").is_staff
        assert authenticate(username="manager", password="wrong") is None

    def test_practitioners_hold_valid_licences_and_practitioner2_an_expired_one(
        self, clinic: Clinic
    ) -> None:
        today = dt.date.today()
        for username in ("manager", "practitioner"):
            licence = PractitionerLicence.objects.get(user__username=username, clinic=clinic)
            assert licence.is_valid_on(today)
        expired = PractitionerLicence.objects.get(user__username="practitioner2", clinic=clinic)
        assert not expired.is_valid_on(today)
        assert authenticate(username="practitioner2", password="demo") is not None
        # Their attempt to chart a session today was refused, and the refusal audited.
        refusal = AuditEvent.objects.get(
            clinic=clinic, action=AuditEvent.Action.REFUSE, user__username="practitioner2"
        )
        codes = [r["code"] for r in refusal.detail["reasons"]]
        assert codes == ["practitioner_licence_expired"]
        assert not Session.objects.filter(practitioner__username="practitioner2").exists()

    def test_about_thirty_patients_with_varied_details(self, clinic: Clinic) -> None:
        patients = Patient.objects.filter(clinic=clinic)
        assert 28 <= patients.count() <= 32
        assert patients.values("last_name").distinct().count() == patients.count()
        assert patients.values("date_of_birth").distinct().count() >= 25
        assert all(p.phone for p in patients)
        assert {p.sex for p in patients} >= {"female", "male"}
        today = dt.date.today()
        assert all(p.age_on(today) >= 18 for p in patients)

    def test_patients_in_every_screening_state(self, clinic: Clinic) -> None:
        patients = Patient.objects.filter(clinic=clinic)
        assert patients.filter(screenings__isnull=True).count() >= 1  # registered only
        results = Screening.objects.filter(patient__clinic=clinic)
        for result in ("eligible", "caution", "ineligible"):
            assert results.filter(result=result).exists(), result
        pregnant = results.get(result="ineligible", answers__pregnant=True)
        assert [r["outcome"] for r in pregnant.reasons] == ["hard_stop"]
        # Screened and nothing more, in each result.
        only_screened = patients.filter(screenings__isnull=False, consents__isnull=True)
        assert {s.result for p in only_screened for s in p.screenings.all()} == {
            "eligible",
            "caution",
            "ineligible",
        }
        # Consented with the course booked, the allergy test still to give.
        assert Course.objects.filter(
            clinic=clinic, patient__consents__isnull=False, allergy_tests__isnull=True
        ).exists()

    def test_courses_in_every_status_and_each_protocol_mid_course(self, clinic: Clinic) -> None:
        courses = Course.objects.filter(clinic=clinic)
        for status in ("planned", "active", "completed", "stopped", "maintenance"):
            assert courses.filter(status=status).exists(), status
        active = courses.filter(status="active").annotate(n=Count("sessions"))
        assert {c.protocol.key for c in active} == PROTOCOLS
        assert all(c.n >= 3 for c in active)
        assert {c.cadence_days for c in active} == {7, 14}
        stopped = courses.get(status="stopped")
        assert stopped.stop_reason and stopped.sessions.count() < stopped.planned_sessions

    def test_completed_courses_are_due_for_maintenance(self, clinic: Clinic) -> None:
        today = dt.date.today()
        completed = Course.objects.filter(clinic=clinic, status="completed")
        assert completed.count() >= 1
        for course in completed:
            assert course.sessions.count() == course.planned_sessions
            last = course.sessions.aggregate(last=Max("performed_at"))["last"]
            assert 170 <= (today - last.date()).days <= 250
            window = course.progress()["maintenance_window"]
            assert isinstance(window, dict)
            assert dt.date.fromisoformat(window["from"]) <= today

    def test_allergy_tests_waiting_read_and_reacted(self, clinic: Clinic) -> None:
        now = timezone.now()
        tests = AllergyTest.objects.filter(course__clinic=clinic)
        waiting = tests.filter(readings__isnull=True)
        assert waiting.count() >= 1
        for test in waiting:
            assert now - dt.timedelta(hours=24) < test.given_at <= now
            assert now < test.readable_from() <= now + dt.timedelta(hours=24)
        planned_clear = Course.objects.filter(
            clinic=clinic, status="planned", allergy_tests__readings__result="none"
        )
        assert planned_clear.exists()
        assert tests.filter(readings__result="local").exists()

    def test_side_effects_expected_beyond_expected_and_urgent(self, clinic: Clinic) -> None:
        effects = SideEffect.objects.filter(session__course__clinic=clinic)
        assert effects.filter(
            kind="swelling", status=logic.EXPECTED, resolved_at__isnull=True
        ).exists()
        beyond = effects.get(status=logic.BEYOND_EXPECTED, resolved_at__isnull=True)
        assert beyond.kind == "bruising"
        assert beyond.follow_ups.filter(
            status=FollowUp.Status.OPEN, priority=FollowUp.Priority.ROUTINE
        ).exists()
        urgent = effects.get(status=logic.URGENT)
        assert urgent.kind == "infection" or urgent.grade >= 3
        assert urgent.follow_ups.filter(
            status=FollowUp.Status.OPEN, priority=FollowUp.Priority.URGENT
        ).exists()

    def test_an_ingredient_allergy_is_recorded(self, clinic: Clinic) -> None:
        allergy = Allergy.objects.get(patient__clinic=clinic)
        assert allergy.ingredient.key == "artichoke_extract"
        # Nothing she was given contains it.
        injected = Product.objects.filter(
            lots__session_injections__session__course__patient=allergy.patient,
            components__ingredient=allergy.ingredient,
        )
        assert not injected.exists()

    def test_lots_recalled_expired_and_near_expiry(self, clinic: Clinic) -> None:
        today = dt.date.today()
        lots = Lot.objects.filter(product__clinic=clinic)
        recalled = lots.get(recalled=True)
        assert recalled.recall_reason and recalled.recalled_at is not None
        # The recall traces back to patients who received the lot.
        assert recalled.session_injections.values("session__course__patient").distinct().count()
        assert lots.filter(expires_on__lt=today).exists()
        assert lots.filter(
            expires_on__gte=today, expires_on__lte=today + dt.timedelta(days=30)
        ).exists()
        assert lots.filter(recalled=False, expires_on__gt=today + dt.timedelta(days=30)).exists()

    def test_sessions_were_charted_through_the_gates(self, clinic: Clinic) -> None:
        sessions = Session.objects.filter(course__clinic=clinic).select_related("course")
        assert sessions.count() >= 50
        assert not sessions.exclude(override_codes=[]).exists()
        assert not sessions.filter(performed_at__gt=timezone.now()).exists()
        for course in Course.objects.filter(clinic=clinic, sessions__isnull=False).distinct():
            first = course.sessions.order_by("performed_at").first()
            assert first is not None
            read = AllergyReading.objects.filter(test__course=course, result="none").get()
            assert read.read_at >= read.test.given_at + dt.timedelta(hours=24)
            assert read.read_at < first.performed_at
            consent = course.patient.consents.get()
            assert consent.signed_at < read.test.given_at

    def test_running_load_again_returns_false_and_changes_nothing(self, clinic: Clinic) -> None:
        before = counts()
        assert demo.load() is False
        assert counts() == before

    def test_logins_text_names_the_urls_and_the_three_logins(self, clinic: Clinic) -> None:
        text = demo.logins_text("127.0.0.1", 8000)
        assert "http://127.0.0.1:8000/" in text
        assert "http://127.0.0.1:8000/admin/" in text
        assert "http://127.0.0.1:8000/api/v1/docs" in text
        for login in ("manager / demo", "practitioner / demo", "frontdesk / demo"):
            assert login in text
        assert "http://127.0.0.1:8000/my/login/" in text
        assert f"{demo.PORTAL_LOGIN} / demo" in text

    def test_logins_text_names_the_clinics_public_site(self, clinic: Clinic) -> None:
        text = demo.logins_text("127.0.0.1", 8000)
        assert f"http://127.0.0.1:8000/site/{clinic.slug}/" in text

    def test_one_patient_signs_in_to_the_portal(self, clinic: Clinic) -> None:
        user = authenticate(username=demo.PORTAL_LOGIN, password="demo")
        assert user is not None and not Membership.objects.filter(user=user).exists()
        patient = Patient.objects.get(user=user)
        assert (patient.first_name, patient.last_name) == demo.PORTAL_PATIENT
        assert patient.clinic == clinic and patient.email == demo.PORTAL_LOGIN

    def test_the_calendar_has_hours_rooms_and_every_open_course_booked(
        self, clinic: Clinic
    ) -> None:
        from mesoclinic.scheduling.models import Appointment, OpeningHours, Room, WorkingHours
        from mesoclinic.scheduling.planning import cadence_flags, remaining

        assert OpeningHours.objects.filter(clinic=clinic).count() == 6
        assert Room.objects.filter(clinic=clinic).count() == 3
        assert WorkingHours.objects.filter(clinic=clinic).values("user").distinct().count() == 3
        statuses = set(Appointment.objects.filter(clinic=clinic).values_list("status", flat=True))
        assert {"booked", "cancelled", "no_show"} <= statuses
        open_courses = Course.objects.filter(clinic=clinic, status__in=["planned", "active"])
        unbooked = [c for c in open_courses if remaining(c).visits]
        # The course with the missed session (flagged) and the cancelled visit's course.
        assert len(unbooked) <= 2
        flags = cadence_flags(clinic, timezone.now())
        assert any("missed and is not rebooked" in f.message for f in flags)


class DemoCommandTests:
    def test_demo_no_serve_loads_once_and_prints_the_logins(
        self, db: Any, capsys: pytest.CaptureFixture[str]
    ) -> None:
        from mesoclinic.cli import main

        assert main(["demo", "--no-serve"]) == 0
        assert "Loaded the demo clinic." in capsys.readouterr().out
        assert Clinic.objects.filter(name=demo.CLINIC_NAME).exists()
        assert main(["demo", "--no-serve"]) == 0
        out = capsys.readouterr().out
        assert "already loaded" in out
        for username in ("manager", "practitioner", "frontdesk"):
            assert username in out
