"""The access layer (mesoclinic/access.py), caller by caller: what each kind of caller may
have, what is a 404 (not theirs to know about) and what is a 403 (not theirs to do)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.test import RequestFactory

from mesoclinic import access
from mesoclinic.access import (
    BY_LINK,
    CLINICAL,
    MANAGE,
    OWN,
    READ,
    Caller,
    caller_for_appointment_link,
    caller_for_feed,
    caller_for_watch_link,
    caller_from_request,
    caller_from_token,
)
from mesoclinic.accounts.models import AuditEvent, Membership, User
from mesoclinic.courses.models import Course
from mesoclinic.patients.models import Patient
from mesoclinic.safety.models import WatchPrompt
from mesoclinic.scheduling import feeds
from mesoclinic.scheduling.models import Appointment
from tests.conftest import Scene, World


def staff(user: User) -> Caller:
    membership = Membership.objects.select_related("clinic").get(user=user)
    return caller_from_token(user, membership)


def patient_caller(patient: Patient, username: str) -> Caller:
    user = User.objects.create_user(username, password="pw")
    Patient.objects.filter(pk=patient.pk).update(user=user)
    return caller_from_token(user, None)


@pytest.fixture
def other_patient(world: World) -> Patient:
    return Patient.objects.create(
        clinic=world.clinic, first_name="Otto", last_name="Other", date_of_birth=dt.date(1970, 1, 1)
    )


@pytest.mark.django_db
class AccessTests:
    def test_an_anonymous_caller_may_have_nothing(self, patient: Patient) -> None:
        with pytest.raises(PermissionDenied, match="Sign in first"):
            access.access_patient(access.ANONYMOUS, patient.pk, READ)
        with pytest.raises(PermissionDenied):
            access.patients_for(access.ANONYMOUS)

    def test_a_deactivated_user_may_have_nothing_whatever_their_role(
        self, world: World, patient: Patient
    ) -> None:
        User.objects.filter(pk=world.manager.pk).update(is_active=False)
        world.manager.refresh_from_db()
        with pytest.raises(PermissionDenied, match="deactivated"):
            access.access_patient(staff(world.manager), patient.pk, READ)
        assert access.managed_clinic_ids(world.manager) == []

    def test_each_role_acts_at_its_level_and_is_refused_above_it(
        self, world: World, patient: Patient
    ) -> None:
        desk, practitioner, manager = (
            staff(world.front_desk),
            staff(world.practitioner),
            staff(world.manager),
        )
        assert access.access_patient(desk, patient.pk, READ) == patient
        with pytest.raises(PermissionDenied, match=r"Your role \(front desk\)"):
            access.access_patient(desk, patient.pk, CLINICAL)
        assert access.access_patient(practitioner, patient.pk, CLINICAL) == patient
        with pytest.raises(PermissionDenied):
            access.access_product(practitioner, world.product.pk, MANAGE)
        assert access.access_product(manager, world.product.pk, MANAGE) == world.product
        assert access.access_lot(manager, world.lot.pk, MANAGE) == world.lot

    def test_a_role_that_may_not_act_is_refused_before_the_object_is_looked_up(
        self, world: World
    ) -> None:
        # A 403 for any id, so a lesser role cannot probe which ids exist.
        with pytest.raises(PermissionDenied):
            access.access_patient(staff(world.front_desk), 10**9, CLINICAL)

    def test_another_clinics_object_is_not_found(
        self, world: World, other: World, patient: Patient
    ) -> None:
        outsider = staff(other.manager)
        with pytest.raises(Http404):
            access.access_patient(outsider, patient.pk, READ)
        with pytest.raises(Http404):
            access.access_lot(outsider, world.lot.pk, READ)
        assert not access.patients_for(outsider).filter(pk=patient.pk).exists()
        assert access.products_for(outsider).count() == 2
        assert set(access.products_for(staff(world.manager))) == {
            world.product,
            world.lidocaine_product,
        }

    def test_a_user_with_no_membership_and_no_patient_record_may_have_nothing(
        self, patient: Patient
    ) -> None:
        nobody = caller_from_token(User.objects.create_user("nobody", password="pw"), None)
        with pytest.raises(PermissionDenied, match="not a member of a clinic"):
            access.access_patient(nobody, patient.pk, OWN)

    def test_a_patient_reads_only_their_own_records(
        self, scene: Scene, other_patient: Patient
    ) -> None:
        own = patient_caller(scene.patient, "ana-login")
        course_id = scene.course["id"]
        assert access.access_patient(own, scene.patient.pk, OWN) == scene.patient
        assert access.access_course(own, course_id, OWN).pk == course_id
        assert list(access.courses_for(own, OWN)) == [Course.objects.get(pk=course_id)]
        with pytest.raises(Http404):
            access.access_patient(own, other_patient.pk, OWN)
        # Their own record still, but through a staff-only door: a 403, not a 404.
        with pytest.raises(PermissionDenied, match="not a member of a clinic"):
            access.access_course(own, course_id, READ)

    def test_another_patient_may_not_know_the_records_exist(
        self, scene: Scene, other_patient: Patient
    ) -> None:
        someone = patient_caller(other_patient, "otto-login")
        with pytest.raises(Http404):
            access.access_course(someone, scene.course["id"], OWN)
        with pytest.raises(Http404):
            access.access_session(someone, scene.session["id"], OWN)
        assert not access.courses_for(someone, OWN).exists()

    def test_a_reminder_link_opens_its_appointment_and_nothing_else(self, scene: Scene) -> None:
        link = caller_for_appointment_link(scene.appointment)
        assert access.access_appointment(link, scene.appointment, BY_LINK).pk == scene.appointment
        with pytest.raises(Http404):
            access.access_appointment(link, scene.started, BY_LINK)
        with pytest.raises(PermissionDenied):
            access.access_appointment(link, scene.appointment, READ)
        with pytest.raises(PermissionDenied):
            access.access_patient(link, scene.patient.pk, READ)

    def test_a_watch_link_opens_its_questionnaire_and_nothing_else(self, scene: Scene) -> None:
        from mesoclinic.safety.watch import do_plan_watch

        do_plan_watch()
        first, second = WatchPrompt.objects.order_by("due_at")[:2]
        link = caller_for_watch_link(first.pk)
        assert access.access_watch_prompt(link, first.pk) == first
        with pytest.raises(Http404):
            access.access_watch_prompt(link, second.pk)
        with pytest.raises(PermissionDenied):
            access.access_watch_prompt(staff(scene.world.manager), first.pk)

    def test_a_calendar_feed_shows_only_its_owners_visits(self, scene: Scene) -> None:
        world = scene.world
        for user in (world.manager, world.practitioner):
            feed, _ = feeds.do_create_feed(user=user, for_user=user)
            shown = access.appointments_for(caller_for_feed(feed), BY_LINK)
            theirs = Appointment.objects.filter(practitioner=user)
            assert set(shown) == set(theirs)
        assert Appointment.objects.filter(practitioner=world.practitioner).exists()
        assert Appointment.objects.exclude(practitioner=world.practitioner).exists()
        patients, _ = feeds.do_create_feed(user=world.front_desk, patient=scene.patient)
        assert set(
            access.appointments_for(caller_for_feed(patients), BY_LINK).values_list(
                "patient_id", flat=True
            )
        ) == {scene.patient.pk}

    def test_a_browser_session_acts_in_the_clinic_it_chose(
        self, world: World, other: World
    ) -> None:
        Membership.objects.create(
            user=world.manager, clinic=other.clinic, role=Membership.Role.FRONT_DESK
        )
        request: Any = RequestFactory().get("/")
        request.user = world.manager
        request.session = {access.SESSION_KEY: other.clinic.pk}
        chosen = caller_from_request(request)
        assert (chosen.clinic_id, chosen.role) == (other.clinic.pk, "front_desk")
        with pytest.raises(PermissionDenied):
            chosen.require(MANAGE)
        anonymous: Any = RequestFactory().get("/")
        anonymous.user = AnonymousUser()
        anonymous.session = {}
        assert caller_from_request(anonymous).is_anonymous

    def test_a_read_through_the_layer_is_audited_naming_the_patient(
        self, world: World, patient: Patient
    ) -> None:
        who = staff(world.front_desk)
        access.access_patient(who, patient.pk, READ, view=True)
        event = AuditEvent.objects.get(action=AuditEvent.Action.VIEW)
        assert (event.patient_id, event.user, event.clinic, event.via) == (
            patient.pk,
            world.front_desk,
            world.clinic,
            "api",
        )

    def test_a_list_read_is_one_row_per_patient_in_one_query(
        self, world: World, patient: Patient, other_patient: Patient, django_assert_num_queries: Any
    ) -> None:
        who = staff(world.front_desk)
        with django_assert_num_queries(1):
            access.audit_list(who, "today", [patient.pk, other_patient.pk, patient.pk, None])
        rows = AuditEvent.objects.order_by("patient_id")
        assert [(e.patient_id, e.detail) for e in rows] == [
            (patient.pk, {"page": "today"}),
            (other_patient.pk, {"page": "today"}),
        ]

    def test_a_link_read_belongs_to_the_clinics_trail(self, scene: Scene) -> None:
        link = caller_for_appointment_link(scene.appointment)
        access.access_appointment(link, scene.appointment, BY_LINK, view=True)
        event = AuditEvent.objects.get(action=AuditEvent.Action.VIEW, via="link")
        assert (event.clinic, event.user, event.via, event.detail) == (
            scene.world.clinic,
            None,
            "link",
            {"link": "appointment"},
        )
