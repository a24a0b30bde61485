"""The Django admin: scoped to the manager's clinic, and gated by the same rules as the API."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent
from mesoclinic.courses import actions
from mesoclinic.courses.models import Course, Session
from mesoclinic.patients.actions import do_screen_patient, do_sign_consent
from mesoclinic.patients.models import ConsentTemplate, Patient, ScreeningForm
from mesoclinic.protocols.models import ClinicProtocol
from tests.conftest import World, ago, give_baseline


def admin_client(user: Any) -> Client:
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(user)
    return client


def ready_course(world: World, patient: Patient) -> Course:
    """A course whose next session passes every gate."""
    form = ScreeningForm.current(world.clinic)
    before = ago(hours=40)
    do_screen_patient(
        patient, {q["key"]: False for q in form.questions}, world.practitioner, screened_at=before
    )
    protocol = ClinicProtocol.current(world.clinic, "cellulite")
    assert protocol is not None
    course = actions.do_plan_course(
        patient,
        protocol,
        indication="cellulite",
        areas=["thighs"],
        cadence_days=7,
        planned_sessions=15,
        user=world.practitioner,
    )
    do_sign_consent(
        patient,
        products=[world.product, world.lidocaine_product],
        signed_name="Ana Lopez",
        method="typed",
        indication="cellulite",
        areas=["thighs"],
        user=world.practitioner,
        signed_at=before,
    )
    test = actions.do_give_allergy_test(
        course,
        given_at=ago(hours=30),
        user=world.practitioner,
        injections=[
            actions.TestInjection(world.lot, "left forearm"),
            actions.TestInjection(world.lidocaine_lot, "right forearm"),
        ],
    )
    actions.do_read_allergy_test(test, read_at=ago(hours=4), result="none", user=world.practitioner)
    give_baseline(course, before)
    return course


def session_post(course: Course, world: World, lot_id: int, when: dt.datetime) -> dict[str, Any]:
    # The admin shows and reads times in the clinic's time zone.
    when = when.astimezone(world.clinic.tz)
    return {
        "course": course.pk,
        "performed_at_0": when.strftime("%Y-%m-%d"),
        "performed_at_1": when.strftime("%H:%M:%S"),
        "practitioner": world.practitioner.pk,
        "stimulants_avoided": "on",
        "notes": "",
        "override_reason": "",
        "injections-TOTAL_FORMS": "1",
        "injections-INITIAL_FORMS": "0",
        "injections-MIN_NUM_FORMS": "1",
        "injections-MAX_NUM_FORMS": "1000",
        "injections-0-area": "thighs",
        "injections-0-lot": lot_id,
        "injections-0-volume_ml": "2.5",
        "injections-0-technique": "nappage",
    }


class AdminTenancyTests:
    def test_a_manager_sees_only_their_clinics_patients(
        self, world: World, other: World, patient: Patient
    ) -> None:
        Patient.objects.create(
            clinic=other.clinic,
            first_name="Zoe",
            last_name="Other",
            date_of_birth=dt.date(1980, 1, 1),
        )
        page = admin_client(world.manager).get("/admin/patients/patient/")
        assert page.status_code == 200
        assert b"Lopez" in page.content
        assert b"Other" not in page.content

    def test_a_manager_of_another_clinic_cannot_open_the_chart(
        self, world: World, other: World, patient: Patient
    ) -> None:
        client = admin_client(other.manager)
        response = client.get(f"/admin/patients/patient/{patient.pk}/change/")
        # The admin redirects to its index with "doesn't exist" for rows outside the queryset.
        assert response.status_code == 302
        assert not AuditEvent.objects.filter(user=other.manager, patient_id=patient.pk).exists()

    def test_a_practitioner_without_staff_status_is_sent_to_login(self, world: World) -> None:
        client = Client()
        client.force_login(world.practitioner)
        response = client.get("/admin/patients/patient/")
        assert response.status_code == 302
        assert "/admin/login/" in response["Location"]

    def test_a_staff_user_who_manages_no_clinic_sees_no_chart(
        self, world: World, patient: Patient
    ) -> None:
        client = admin_client(world.front_desk)
        assert client.get("/admin/patients/patient/").status_code == 403

    def test_reading_a_chart_in_the_admin_is_audited(self, world: World, patient: Patient) -> None:
        page = admin_client(world.manager).get(f"/admin/patients/patient/{patient.pk}/change/")
        assert page.status_code == 200
        event = AuditEvent.objects.get(user=world.manager, action="view", patient_id=patient.pk)
        assert event.via == "admin"
        assert event.clinic == world.clinic

    def test_lot_choices_in_a_session_are_only_the_clinics_own(
        self, world: World, other: World
    ) -> None:
        page = admin_client(world.manager).get("/admin/courses/session/add/")
        assert page.status_code == 200
        assert world.lot.lot_number.encode() in page.content
        assert other.lot.lot_number.encode() not in page.content


class AdminSessionGateTests:
    def test_it_refuses_a_session_with_an_expired_lot_and_names_the_reason(
        self, world: World, patient: Patient
    ) -> None:
        course = ready_course(world, patient)
        client = admin_client(world.manager)
        response = client.post(
            "/admin/courses/session/add/",
            session_post(course, world, world.expired_lot.pk, ago(hours=1)),
        )
        assert response.status_code == 200  # the form again, with errors
        assert b"expired on" in response.content
        assert b"lot_expired" in response.content
        assert not Session.objects.exists()

    def test_it_refuses_a_session_for_an_unscreened_patient(
        self, world: World, patient: Patient
    ) -> None:
        course = ready_course(world, patient)
        patient.screenings.all().delete()
        response = admin_client(world.manager).post(
            "/admin/courses/session/add/", session_post(course, world, world.lot.pk, ago(hours=1))
        )
        assert b"no_screening" in response.content
        assert not Session.objects.exists()

    def test_it_charts_a_safe_session_through_the_same_action(
        self, world: World, patient: Patient
    ) -> None:
        course = ready_course(world, patient)
        response = admin_client(world.manager).post(
            "/admin/courses/session/add/", session_post(course, world, world.lot.pk, ago(hours=1))
        )
        assert response.status_code == 302, response.content.decode()[:2000]
        session = Session.objects.get()
        assert session.number == 1
        assert session.injections.get().lot == world.lot
        course.refresh_from_db()
        assert course.status == Course.Status.ACTIVE
        assert AuditEvent.objects.filter(
            action="create", object_type="courses.Session", via="admin"
        ).exists()

    def test_an_area_outside_the_course_is_a_form_error(
        self, world: World, patient: Patient
    ) -> None:
        course = ready_course(world, patient)
        data = session_post(course, world, world.lot.pk, ago(hours=1))
        data["injections-0-area"] = "face"
        response = admin_client(world.manager).post("/admin/courses/session/add/", data)
        assert response.status_code == 200
        assert b"is not in this course" in response.content
        assert not Session.objects.exists()

    def test_a_session_in_the_future_is_a_form_error(self, world: World, patient: Patient) -> None:
        course = ready_course(world, patient)
        data = session_post(course, world, world.lot.pk, ago(hours=-3))
        response = admin_client(world.manager).post("/admin/courses/session/add/", data)
        assert response.status_code == 200
        assert b"cannot be in the future" in response.content
        assert not Session.objects.exists()

    def test_an_override_needs_a_reason(self, world: World, patient: Patient) -> None:
        course = ready_course(world, patient)
        data = session_post(course, world, world.lot.pk, ago(hours=1))
        data["override_codes"] = ["interval_too_short"]
        response = admin_client(world.manager).post("/admin/courses/session/add/", data)
        assert b"An override must say why." in response.content
        assert not Session.objects.exists()

    def test_a_recalled_lot_cannot_be_overridden_in_the_admin(
        self, world: World, patient: Patient
    ) -> None:
        course = ready_course(world, patient)
        world.lot.do_recall("Supplier notice", world.manager)
        data = session_post(course, world, world.lot.pk, ago(hours=1))
        data["override_codes"] = ["lot_recalled"]
        data["override_reason"] = "Trying anyway"
        response = admin_client(world.manager).post("/admin/courses/session/add/", data)
        assert b"lot_recalled cannot be overridden" in response.content
        assert not Session.objects.exists()

    def test_a_charted_session_is_read_only(self, world: World, patient: Patient) -> None:
        course = ready_course(world, patient)
        session = actions.do_record_session(
            course,
            performed_at=ago(hours=1),
            practitioner=world.practitioner,
            injections=[actions.InjectionInput("thighs", world.lot, 2)],
            stimulants_avoided=True,
            user=world.practitioner,
        )
        client = admin_client(world.manager)
        page = client.get(f"/admin/courses/session/{session.pk}/change/")
        assert page.status_code == 200
        assert b'name="_save"' not in page.content


class AdminProtocolTests:
    def test_saving_a_protocol_writes_a_new_version_and_keeps_the_old(self, world: World) -> None:
        v1 = ClinicProtocol.current(world.clinic, "cellulite")
        assert v1 is not None
        document = dict(v1.document)
        document["cadence"] = {
            **document["cadence"],
            "tolerance_days": {
                "value": 3,
                "source": ["no source"],
                "note": "Our clinic allows 3 days.",
            },
        }
        import json

        response = admin_client(world.manager).post(
            f"/admin/protocols/clinicprotocol/{v1.pk}/change/",
            {"document": json.dumps(document), "change_note": "Wider window"},
        )
        assert response.status_code == 302, response.content.decode()[:3000]
        latest = ClinicProtocol.current(world.clinic, "cellulite")
        assert latest is not None and latest.version == 2
        assert latest.spec.cadence.tolerance_days.v == 3
        v1.refresh_from_db()
        assert v1.spec.cadence.tolerance_days.v == 2

    def test_a_malformed_protocol_is_refused_naming_the_field(self, world: World) -> None:
        v1 = ClinicProtocol.current(world.clinic, "cellulite")
        assert v1 is not None
        document = dict(v1.document)
        del document["insurance"]
        import json

        response = admin_client(world.manager).post(
            f"/admin/protocols/clinicprotocol/{v1.pk}/change/",
            {"document": json.dumps(document), "change_note": ""},
        )
        assert response.status_code == 200
        assert b"insurance: Field required" in response.content
        assert ClinicProtocol.objects.filter(clinic=world.clinic, key="cellulite").count() == 1

    def test_a_new_consent_text_is_a_new_version(self, world: World) -> None:
        response = admin_client(world.manager).post(
            "/admin/patients/consenttemplate/add/",
            {"clinic": world.clinic.pk, "body": "New wording.", "change_note": "Shorter"},
        )
        assert response.status_code == 302
        latest = ConsentTemplate.objects.filter(clinic=world.clinic).order_by("-version").first()
        assert (latest.version, latest.change_note) == (2, "Shorter")
        assert latest.created_by == world.manager  # the versions page names who saved it


@pytest.fixture(autouse=True)
def _utc_now() -> None:
    assert timezone.now().tzinfo is not None
