"""Serious adverse events: the SNOMED CT id check, every validation of a report, the urgent
follow-up, updates that keep the report, and the API with its tenancy, roles and audit."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent
from mesoclinic.courses.actions import do_report_side_effect
from mesoclinic.courses.models import Course, FollowUp, Session
from mesoclinic.formulary.models import Lot
from mesoclinic.patients.models import Patient
from mesoclinic.safety import actions, logic
from mesoclinic.safety.models import AdverseEvent
from tests.conftest import World, api_for, error_fields, iso, problem_of
from tests.test_web import course_with_sessions

FIRST = timezone.now() - dt.timedelta(days=20)


@pytest.fixture
def course(world: World, patient: Patient) -> Course:
    return course_with_sessions(world, patient, 2, FIRST)  # type: ignore[no-any-return]


@pytest.fixture
def session(course: Course) -> Session:
    return course.sessions.get(number=1)


def report(session: Session, user: Any, **changes: Any) -> AdverseEvent:
    args: dict[str, Any] = {
        "kind": "pigmentation_change",
        "ctcae_grade": 2,
        "onset_at": session.performed_at + dt.timedelta(days=3),
        "user": user,
    }
    args.update(changes)
    return actions.do_report_adverse_event(session, **args)


def refused(session: Session, user: Any, **changes: Any) -> set[str]:
    with pytest.raises(ValidationError) as caught:
        report(session, user, **changes)
    return set(caught.value.message_dict)


class SnomedTests:
    def test_known_concept_ids_pass_their_verhoeff_check(self) -> None:
        # 22298006 (myocardial infarction), 138875005 (the root concept), 404684003 (clinical
        # finding), 73211009 (diabetes mellitus): published ids, all valid.
        for code in ("22298006", "138875005", "404684003", "73211009"):
            assert logic.verhoeff_ok(code), code
            assert logic.sctid_problem(code) is None, code

    def test_a_mutated_digit_or_a_swap_fails_the_check(self) -> None:
        for code in ("22298007", "22299006", "22289006", "32298006"):
            assert not logic.verhoeff_ok(code), code
            assert "check digit" in (logic.sctid_problem(code) or ""), code

    def test_the_shape_of_an_id_is_checked_before_its_digit(self) -> None:
        assert "digits only" in (logic.sctid_problem("2229800A") or "")
        assert "digits only" in (logic.sctid_problem("２２２９８００６") or "")  # full-width
        assert "6 to 18" in (logic.sctid_problem("12340") or "")
        assert "6 to 18" in (logic.sctid_problem("1" * 19) or "")
        assert "start with 0" in (logic.sctid_problem("022298006") or "")

    def test_a_description_id_is_not_a_concept(self) -> None:
        # Partition 01 is a description. Find the digit that makes it pass Verhoeff, so only
        # the partition is wrong.
        code = next(f"123401{d}" for d in "0123456789" if logic.verhoeff_ok(f"123401{d}"))
        assert "partition" in (logic.sctid_problem(code) or "")


class ReportTests:
    def test_it_records_an_event_with_its_lots_and_audits_it(self, world, session):
        event = report(
            session,
            world.practitioner,
            lots=[world.lot],
            snomed_code="22298006",
            actions_taken="Reviewed in clinic",
        )
        assert list(event.suspected_lots.all()) == [world.lot]
        assert event.patient_id == session.course.patient_id
        assert event.reported_by == world.practitioner and event.outcome == "ongoing"
        row = AuditEvent.objects.get(object_type="safety.AdverseEvent", object_id=str(event.pk))
        assert row.action == "create" and row.patient_id == event.patient_id
        assert row.detail["lots"] == [world.lot.pk]

    def test_an_unknown_kind_or_grade_is_refused(self, world, session):
        assert refused(session, world.practitioner, kind="rash") == {"kind"}
        assert refused(session, world.practitioner, ctcae_grade=6) == {"ctcae_grade"}
        assert refused(session, world.practitioner, ctcae_grade=0) == {"ctcae_grade"}

    def test_other_needs_a_description(self, world, session):
        assert refused(session, world.practitioner, kind="other") == {"description"}
        assert report(session, world.practitioner, kind="other", description="Fainted").pk

    def test_onset_is_not_before_the_session_nor_in_the_future(self, world, session):
        before = session.performed_at - dt.timedelta(minutes=1)
        assert refused(session, world.practitioner, onset_at=before) == {"onset_at"}
        later = timezone.now() + dt.timedelta(hours=1)
        assert refused(session, world.practitioner, onset_at=later) == {"onset_at"}

    def test_an_ended_outcome_needs_its_date_and_only_it_has_one(self, world, session):
        assert refused(session, world.practitioner, outcome="resolved") == {"outcome_at"}
        onset = session.performed_at + dt.timedelta(days=3)
        assert refused(
            session,
            world.practitioner,
            outcome="resolved",
            outcome_at=onset - dt.timedelta(hours=1),
        ) == {"outcome_at"}
        assert refused(session, world.practitioner, outcome_at=onset) == {"outcome_at"}
        assert refused(session, world.practitioner, outcome="healed") == {"outcome"}
        event = report(
            session, world.practitioner, outcome="resolved", outcome_at=onset + dt.timedelta(days=2)
        )
        assert event.outcome == "resolved"

    def test_a_fatal_outcome_is_grade_5(self, world, session):
        at = session.performed_at + dt.timedelta(days=4)
        assert refused(
            session, world.practitioner, outcome="fatal", outcome_at=at, ctcae_grade=4
        ) == {"outcome"}

    def test_a_bad_snomed_code_is_refused_and_none_is_invented(self, world, session):
        assert refused(session, world.practitioner, snomed_code="22298007") == {"snomed_code"}
        assert report(session, world.practitioner).snomed_code == ""

    def test_only_lots_injected_in_that_session_may_be_suspected(self, world, other, session):
        for stray in (world.lidocaine_lot, other.lot):
            with pytest.raises(ValidationError) as caught:
                report(session, world.practitioner, lots=[stray])
            assert stray.lot_number in caught.value.message_dict["lots"][0]
        assert not AdverseEvent.objects.exists()

    def test_a_side_effect_escalated_must_be_of_that_session(self, world, course, session):
        second = course.sessions.get(number=2)
        effect = do_report_side_effect(
            second,
            kind="swelling",
            onset_at=second.performed_at + dt.timedelta(hours=1),
            grade=1,
            user=world.practitioner,
        )
        assert refused(session, world.practitioner, side_effect=effect) == {"side_effect"}


class UrgentFollowUpTests:
    def test_grade_3_opens_an_urgent_follow_up_for_the_session(self, world, session):
        report(session, world.practitioner, kind="necrosis", ctcae_grade=3)
        [follow_up] = FollowUp.objects.all()
        assert follow_up.priority == "urgent" and follow_up.session == session
        assert follow_up.side_effect is None
        assert "Skin necrosis, CTCAE grade 3 (session 1)" in follow_up.reason

    def test_an_infection_is_urgent_at_any_grade(self, world, session):
        report(session, world.practitioner, kind="mycobacterial_infection", ctcae_grade=1)
        assert FollowUp.objects.get().priority == "urgent"

    def test_a_grade_2_pigmentation_change_opens_none(self, world, session):
        report(session, world.practitioner)
        assert not FollowUp.objects.exists()

    def test_escalating_a_side_effect_raises_its_open_follow_up(self, world, session):
        effect = do_report_side_effect(
            session,
            kind="other",
            description="Hard lump",
            onset_at=session.performed_at + dt.timedelta(days=10),
            grade=2,
            user=world.practitioner,
        )
        [routine] = FollowUp.objects.filter(side_effect=effect)
        assert routine.priority == "routine"
        event = report(
            session,
            world.practitioner,
            kind="abscess",
            ctcae_grade=3,
            side_effect=effect,
            onset_at=effect.onset_at,
        )
        assert event.side_effect == effect
        [raised] = FollowUp.objects.all()
        assert raised.pk == routine.pk and raised.priority == "urgent"


class UpdateTests:
    def test_outcome_and_actions_change_the_report_stays_and_the_audit_keeps_both(
        self, world, session
    ):
        event = report(session, world.practitioner, actions_taken="Photographed")
        reported_at, kind = event.reported_at, event.kind
        ended = event.onset_at + dt.timedelta(days=5)
        actions.do_update_adverse_event(
            event,
            outcome="resolvedWithSequelae",
            outcome_at=ended,
            actions_taken="Photographed; referred to dermatology",
            user=world.manager,
        )
        event.refresh_from_db()
        assert event.outcome == "resolvedWithSequelae" and event.outcome_at == ended
        assert event.kind == kind and event.reported_at == reported_at
        assert event.reported_by == world.practitioner and event.updated_at > reported_at
        row = AuditEvent.objects.get(action="update", object_id=str(event.pk))
        assert row.user == world.manager and row.patient_id == event.patient_id
        assert row.detail["changes"]["outcome"] == {"from": "ongoing", "to": "resolvedWithSequelae"}
        assert row.detail["changes"]["actions_taken"]["from"] == "Photographed"

    def test_an_update_that_changes_nothing_or_dates_nothing_is_refused(self, world, session):
        event = report(session, world.practitioner)
        with pytest.raises(ValidationError):
            actions.do_update_adverse_event(event, outcome="ongoing", user=world.manager)
        with pytest.raises(ValidationError) as caught:
            actions.do_update_adverse_event(event, outcome="resolved", user=world.manager)
        assert set(caught.value.message_dict) == {"outcome_at"}
        assert not AuditEvent.objects.filter(action="update").exists()


class ApiTests:
    def body(self, session: Session, **changes: Any) -> dict[str, Any]:
        body = {
            "session": session.pk,
            "kind": "infection",
            "ctcae_grade": 2,
            "onset_at": iso(session.performed_at + dt.timedelta(days=14)),
        }
        body.update(changes)
        return body

    def test_a_practitioner_records_and_reads_an_event(self, world, session):
        api = api_for(world.practitioner)
        response = api.post(
            "/adverse-events", self.body(session, lots=[world.lot.pk], snomed_code="22298006")
        )
        assert response.status_code == 201, response.content
        created = response.json()
        assert created["urgent"] is True and created["lots"][0]["id"] == world.lot.pk
        assert api.get(f"/adverse-events/{created['id']}").json()["kind"] == "infection"
        listed = api.get("/adverse-events", course=session.course_id).json()
        assert [e["id"] for e in listed] == [created["id"]]
        assert AuditEvent.objects.filter(
            action="view", object_id=str(created["id"]), patient_id=session.course.patient_id
        ).exists()

    def test_bad_input_is_a_problem_naming_the_field(self, world, session):
        api = api_for(world.manager)
        assert error_fields(api.post("/adverse-events", self.body(session, ctcae_grade=7))) == {
            "ctcae_grade"
        }
        assert error_fields(
            api.post("/adverse-events", self.body(session, snomed_code="1234567"))
        ) == {"snomed_code"}
        assert error_fields(api.post("/adverse-events", self.body(session, lots=[999999]))) == {
            "lots"
        }
        body = self.body(session, onset_at=iso(session.performed_at - dt.timedelta(days=1)))
        assert error_fields(api.post("/adverse-events", body)) == {"onset_at"}

    def test_another_clinics_lot_is_refused(self, world, other, session):
        response = api_for(world.manager).post(
            "/adverse-events", self.body(session, lots=[other.lot.pk])
        )
        [error] = problem_of(response, 422)["errors"]
        assert error["field"] == "lots" and other.lot.lot_number not in error["message"]

    def test_patch_updates_outcome_and_actions(self, world, session):
        api = api_for(world.practitioner)
        created = api.post("/adverse-events", self.body(session)).json()
        ended = iso(session.performed_at + dt.timedelta(days=16))
        client = api.client
        patched = client.patch(
            f"/api/v1/adverse-events/{created['id']}",
            data={"outcome": "resolved", "outcome_at": ended, "actions_taken": "Antibiotics"},
            content_type="application/json",
            headers=api._headers(),
        )
        assert patched.status_code == 200, patched.content
        assert patched.json()["outcome"] == "resolved"
        assert patched.json()["actions_taken"] == "Antibiotics"
        bad = client.patch(
            f"/api/v1/adverse-events/{created['id']}",
            data={"outcome": "ongoing", "outcome_at": ended},
            content_type="application/json",
            headers=api._headers(),
        )
        assert problem_of(bad, 422)["errors"][0]["field"] == "outcome_at"

    def test_front_desk_may_not_and_another_clinic_cannot_see(self, world, other, session):
        created = api_for(world.practitioner).post("/adverse-events", self.body(session)).json()
        desk = api_for(world.front_desk)
        assert desk.post("/adverse-events", self.body(session)).status_code == 403
        assert desk.get(f"/adverse-events/{created['id']}").status_code == 403
        stranger = api_for(other.manager)
        assert stranger.get(f"/adverse-events/{created['id']}").status_code == 404
        assert stranger.post("/adverse-events", self.body(session)).status_code == 404
        assert stranger.get("/adverse-events").json() == []
        assert stranger.get(f"/courses/{session.course_id}/watch").status_code == 404
        assert AdverseEvent.objects.count() == 1

    def test_the_lots_offered_are_the_sessions(self, world, session):
        assert actions.injected_lots(session) == [world.lot]
        assert Lot.objects.count() > 1
