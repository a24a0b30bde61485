"""Courses through their state changes (courses/actions.py), with the database but no HTTP:
a whole course from screening to maintenance, the session gate on every save path,
overrides and their audit rows, consent that goes out of date, and side effects with the
follow-ups they open."""

from __future__ import annotations

import datetime as dt
import threading
import time
import zoneinfo
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db import OperationalError, connection
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent, PractitionerLicence

# actions.TestInjection is used through its module, so that pytest does not collect it.
from mesoclinic.courses import actions, logic
from mesoclinic.courses.actions import (
    InjectionInput,
    check_session,
    do_give_allergy_test,
    do_plan_course,
    do_read_allergy_test,
    do_record_session,
    do_report_side_effect,
    do_resolve_side_effect,
    do_stop_course,
    do_sweep_side_effects,
)
from mesoclinic.courses.models import (
    Course,
    FollowUp,
    Session,
    SessionInjection,
    SessionRefused,
    SideEffect,
)
from mesoclinic.formulary.models import Ingredient, Lot
from mesoclinic.patients import consent as consent_text
from mesoclinic.patients.actions import do_screen_patient, do_sign_consent
from mesoclinic.patients.models import Allergy, ConsentTemplate, Patient, ScreeningForm
from mesoclinic.protocols.models import ClinicProtocol
from tests.conftest import World, ago, build_clinic, give_baseline

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
AREAS = ["thighs", "buttocks"]


# Screening and consent are dated well before any session a test charts: the gates judge a
# session by the records that existed when it was performed.
BEFORE_EVERYTHING = dt.timedelta(days=400)


def screen(patient: Patient, user: Any, **yes: bool) -> Any:
    answers = {q["key"]: False for q in ScreeningForm.current(patient.clinic).questions}
    answers.update(yes)
    return do_screen_patient(patient, answers, user, screened_at=timezone.now() - BEFORE_EVERYTHING)


def sign(world: World, patient: Patient, products: list[Any] | None = None) -> Any:
    return do_sign_consent(
        patient,
        products=products if products is not None else [world.product, world.lidocaine_product],
        signed_name=str(patient),
        signed_at=timezone.now() - BEFORE_EVERYTHING,
        method="typed",
        indication="cellulite",
        areas=AREAS,
        user=world.front_desk,
    )


def plan(world: World, patient: Patient, **changes: Any) -> Course:
    args: dict[str, Any] = dict(
        indication="cellulite",
        areas=AREAS,
        cadence_days=7,
        planned_sessions=15,
        first_session_on=timezone.now().astimezone(world.clinic.tz).date(),
        user=world.manager,
    )
    args.update(changes)
    course = do_plan_course(patient, ClinicProtocol.current(world.clinic, "cellulite"), **args)
    # A baseline a year back, before any session these tests chart, so that only the gate a
    # test is about refuses (the baseline gate has its own tests in test_outcomes.py).
    give_baseline(course, course.created_at - dt.timedelta(days=365))
    return course


def allergy_test(
    world: World,
    course: Course,
    given_at: dt.datetime,
    read_after: dt.timedelta | None = dt.timedelta(hours=25),
    result: str = "none",
) -> Any:
    test = do_give_allergy_test(
        course,
        given_at=given_at,
        injections=[
            actions.TestInjection(world.lot, "left inner forearm"),
            actions.TestInjection(world.lidocaine_lot, "right inner forearm"),
        ],
        user=world.practitioner,
    )
    if read_after is not None:
        do_read_allergy_test(
            test, read_at=given_at + read_after, result=result, user=world.practitioner
        )
    return test


def ready_course(world: World, patient: Patient, tested_at: dt.datetime, **changes: Any) -> Course:
    """A cellulite course past every gate: screened eligible, consent to both products, and
    an allergy test given at `tested_at` and read 25 h later with no reaction."""
    screen(patient, world.practitioner)
    sign(world, patient)
    course = plan(world, patient, **changes)
    allergy_test(world, course, tested_at)
    return course


def chart(
    world: World, course: Course, at: dt.datetime, lots: list[Lot] | None = None, **kw: Any
) -> Session:
    kw.setdefault("practitioner", world.practitioner)
    kw.setdefault("user", kw["practitioner"])
    return do_record_session(
        course,
        performed_at=at,
        injections=[
            InjectionInput("thighs", lot, Decimal("2.5"))
            for lot in (lots if lots is not None else [world.lot, world.lidocaine_lot])
        ],
        stimulants_avoided=True,
        numbing_cream=True,
        **kw,
    )


def refused_codes(world: World, course: Course, at: dt.datetime, lots: list[Lot]) -> list[str]:
    return [r.code for r in check_session(course, at, world.practitioner, lots)]


class CourseLifecycleTests:
    def test_a_full_course_runs_from_planned_to_maintenance(self, world, patient):
        start = timezone.now().replace(microsecond=0) - dt.timedelta(days=130)
        course = ready_course(world, patient, start - dt.timedelta(days=2))
        assert course.status == Course.Status.PLANNED

        sessions = []
        for n in range(15):
            sessions.append(chart(world, course, start + dt.timedelta(days=7 * n)))
            course.refresh_from_db()
            expected = Course.Status.COMPLETED if n == 14 else Course.Status.ACTIVE
            assert course.status == expected, n
        assert [s.number for s in sessions] == list(range(1, 16))
        assert {s.kind for s in sessions} == {Session.Kind.COURSE}

        tz = world.clinic.tz
        progress = course.progress()
        last_day = sessions[-1].performed_at.astimezone(tz).date()
        assert progress["sessions_done"] == 15
        assert progress["next_session_window"] is None
        assert progress["maintenance_window"] == {
            "from": logic.add_months(last_day, 6).isoformat(),
            "to": logic.add_months(last_day, 8).isoformat(),
        }

        extra = chart(world, course, ago(days=1))
        course.refresh_from_db()
        assert extra.kind == Session.Kind.MAINTENANCE
        assert extra.number == 16
        assert course.status == Course.Status.MAINTENANCE
        progress = course.progress()
        extra_day = extra.performed_at.astimezone(tz).date()
        assert progress["sessions_done"] == 15
        assert progress["maintenance_window"]["from"] == logic.add_months(extra_day, 6).isoformat()

    def test_progress_gives_the_next_window_at_the_same_local_time(self, world, patient):
        first = ago(days=3).replace(microsecond=0)
        course = ready_course(world, patient, first - dt.timedelta(days=2))
        chart(world, course, first)
        course.refresh_from_db()
        window = course.progress()["next_session_window"]
        local = first.astimezone(world.clinic.tz)
        earliest, due, latest = (
            dt.datetime.fromisoformat(window[k]) for k in ("earliest", "due", "latest")
        )
        # Due a week later, within the protocol's two days either side, at the same local time.
        assert due.date() - local.date() == dt.timedelta(days=7)
        assert earliest.date() - local.date() == dt.timedelta(days=5)
        assert latest.date() - local.date() == dt.timedelta(days=9)
        assert {earliest.time(), due.time(), latest.time()} == {local.time()}

    def test_before_session_one_the_window_opens_when_the_allergy_test_can_be_read(
        self, world, patient
    ):
        with time_machine.travel(dt.datetime(2026, 6, 1, 9, 0, tzinfo=world.clinic.tz), tick=False):
            course = plan(world, patient, first_session_on=dt.date(2026, 6, 2))
            window = course.progress()["next_session_window"]
            assert window == {
                "earliest": "2026-06-02T00:00:00-04:00",
                "due": "2026-06-02T00:00:00-04:00",
                "latest": "2026-06-05T00:00:00-04:00",
            }
            allergy_test(world, course, timezone.now(), read_after=None)
            window = course.progress()["next_session_window"]
            assert window["earliest"] == "2026-06-02T09:00:00-04:00"

    def test_a_weekly_course_keeps_its_local_hour_across_daylight_saving(self, other):
        # Paris moves its clocks forward on Sunday 29 March 2026.
        patient = Patient.objects.create(
            clinic=other.clinic,
            first_name="Élise",
            last_name="Martin",
            date_of_birth=dt.date(1988, 2, 3),
        )
        with time_machine.travel(dt.datetime(2026, 3, 20, 9, 0, tzinfo=PARIS), tick=False) as t:
            screen(patient, other.practitioner)
            sign(other, patient)
            course = plan(other, patient, first_session_on=dt.date(2026, 3, 24))
            test = allergy_test(other, course, timezone.now(), read_after=None)
            t.move_to(dt.datetime(2026, 3, 21, 10, 0, tzinfo=PARIS))
            do_read_allergy_test(
                test, read_at=timezone.now(), result="none", user=other.practitioner
            )

            t.move_to(dt.datetime(2026, 3, 24, 10, 0, tzinfo=PARIS))
            first = chart(other, course, timezone.now())
            course.refresh_from_db()
            window = course.progress()["next_session_window"]
            assert window["due"] == "2026-03-31T10:00:00+02:00"

            t.move_to(dt.datetime.fromisoformat(window["due"]))
            second = chart(other, course, timezone.now())
            local = second.performed_at.astimezone(PARIS)
            assert (local.hour, local.minute) == (10, 0)
            assert local.utcoffset() == dt.timedelta(hours=2)
            assert first.performed_at.astimezone(PARIS).utcoffset() == dt.timedelta(hours=1)
            course.refresh_from_db()
            next_due = course.progress()["next_session_window"]["due"]
            assert next_due == "2026-04-07T10:00:00+02:00"
            shower = next(i for i in second.aftercare() if i["key"] == "no_hot_shower")
            assert shower["text"] == "No hot shower until 18:00."

    def test_a_stopped_course_refuses_sessions(self, world, patient):
        course = ready_course(world, patient, ago(days=3))
        do_stop_course(course, "Patient moved away.", world.manager)
        with pytest.raises(ValidationError) as exc:
            chart(world, course, ago(hours=1))
        assert "course" in exc.value.message_dict
        assert not Session.objects.filter(course=course).exists()

    def test_a_course_that_is_not_stopped_takes_sessions(self, world, patient):
        course = ready_course(world, patient, ago(days=3))
        chart(world, course, ago(hours=1))
        assert Session.objects.filter(course=course).count() == 1


class SessionGateTests:
    def test_it_refuses_a_session_with_every_reason_and_audits_the_refusal(self, world, patient):
        course = plan(world, patient)
        with pytest.raises(SessionRefused) as exc:
            chart(world, course, ago(hours=1), lots=[world.expired_lot])
        codes = [r.code for r in exc.value.refusals]
        assert codes == ["no_screening", "no_consent", "allergy_test_missing", "lot_expired"]
        assert not Session.objects.exists()
        course.refresh_from_db()
        assert course.status == Course.Status.PLANNED
        event = AuditEvent.objects.get(action=AuditEvent.Action.REFUSE)
        assert event.user == world.practitioner
        assert event.patient_id == patient.pk
        assert [r["code"] for r in event.detail["reasons"]] == codes

    def test_it_refuses_session_before_allergy_read(self, world, patient):
        screen(patient, world.practitioner)
        sign(world, patient)
        course = plan(world, patient)
        test = allergy_test(world, course, ago(hours=30), read_after=None)
        assert refused_codes(world, course, ago(hours=1), [world.lot]) == ["allergy_test_unread"]
        do_read_allergy_test(test, read_at=ago(hours=2), result="none", user=world.practitioner)
        assert refused_codes(world, course, ago(hours=1), [world.lot]) == []

    def test_it_refuses_a_reading_taken_too_early_at_entry(self, world, patient):
        screen(patient, world.practitioner)
        sign(world, patient)
        course = plan(world, patient)
        test = allergy_test(world, course, ago(hours=30), read_after=None)
        with pytest.raises(ValidationError) as exc:
            do_read_allergy_test(
                test,
                read_at=test.given_at + dt.timedelta(hours=23, minutes=59),
                result="none",
                user=world.practitioner,
            )
        readable = test.readable_from().astimezone(world.clinic.tz)
        assert f"can be read from {readable:%H:%M} on" in exc.value.message_dict["read_at"][0]
        assert not test.readings.exists()
        with pytest.raises(SessionRefused) as refused:
            chart(world, course, ago(hours=1))
        assert [r.code for r in refused.value.refusals] == ["allergy_test_unread"]

    def test_it_refuses_after_a_screening_hard_stop(self, world, patient):
        course = ready_course(world, patient, ago(days=3))
        screen(patient, world.practitioner, pregnant=True)
        with pytest.raises(SessionRefused) as exc:
            chart(world, course, ago(hours=1))
        (refusal,) = exc.value.refusals
        assert refusal.code == "screening_hard_stop"
        assert "pregnant" in refusal.message

    def test_it_refuses_an_expired_lot_and_accepts_it_on_its_expiry_date(self, world, patient):
        course = ready_course(world, patient, ago(days=3))
        at = ago(hours=1)
        today = at.astimezone(world.clinic.tz).date()
        Lot.objects.filter(pk=world.lot.pk).update(expires_on=today)
        world.lot.refresh_from_db()
        assert refused_codes(world, course, at, [world.lot]) == []
        Lot.objects.filter(pk=world.lot.pk).update(expires_on=today - dt.timedelta(days=1))
        world.lot.refresh_from_db()
        assert refused_codes(world, course, at, [world.lot]) == ["lot_expired"]

    def test_it_refuses_a_lot_with_an_ingredient_the_patient_is_allergic_to(self, world, patient):
        course = ready_course(world, patient, ago(days=3))
        Allergy.objects.create(
            patient=patient,
            ingredient=Ingredient.objects.get(key="lidocaine", clinic=None),
            reaction="hives",
        )
        with pytest.raises(SessionRefused) as exc:
            chart(world, course, ago(hours=1), lots=[world.lot, world.lidocaine_lot])
        (refusal,) = exc.value.refusals
        assert refusal.code == "ingredient_allergy"
        assert "Lidocaine" in refusal.message
        # The mixture without lidocaine is fine.
        chart(world, course, ago(hours=1), lots=[world.lot])

    def test_an_expired_licence_blocks_the_practitioner(self, world, patient):
        course = ready_course(world, patient, ago(days=3))
        # Ended two days ago: a session an hour back is after it, even just after midnight.
        ended = ago(days=2).astimezone(world.clinic.tz).date()
        PractitionerLicence.objects.filter(user=world.practitioner).update(expires_on=ended)
        with pytest.raises(SessionRefused) as exc:
            chart(world, course, ago(hours=1))
        (refusal,) = exc.value.refusals
        assert refusal.code == "practitioner_licence_expired"
        assert world.practitioner.first_name in refusal.message

    def test_a_licence_in_another_clinic_does_not_count(self, world, other, patient):
        course = ready_course(world, patient, ago(days=3))
        PractitionerLicence.objects.filter(user=world.practitioner).delete()
        PractitionerLicence.objects.create(
            user=world.practitioner,
            clinic=other.clinic,
            kind=PractitionerLicence.Kind.PHYSICIAN,
            number="FR-1",
            jurisdiction="France",
            expires_on=dt.date(2099, 1, 1),
        )
        assert refused_codes(world, course, ago(hours=1), [world.lot]) == [
            "practitioner_licence_expired"
        ]
        PractitionerLicence.objects.create(
            user=world.practitioner,
            clinic=world.clinic,
            kind=PractitionerLicence.Kind.PHYSICIAN,
            number="NY-2",
            jurisdiction="New York",
            expires_on=dt.date(2099, 1, 1),
        )
        assert refused_codes(world, course, ago(hours=1), [world.lot]) == []

    def test_the_model_save_path_refuses_a_session_without_screening(self, world, patient):
        course = plan(world, patient)
        session = Session(
            course=course,
            number=1,
            performed_at=ago(hours=1),
            practitioner=world.practitioner,
            stimulants_avoided=True,
        )
        with pytest.raises(SessionRefused) as exc:
            session.save()
        assert "no_screening" in [r.code for r in exc.value.refusals]
        assert not Session.objects.exists()

    def test_the_model_save_path_accepts_a_safe_session(self, world, patient):
        course = ready_course(world, patient, ago(days=3))
        Session(
            course=course,
            number=1,
            performed_at=ago(hours=1),
            practitioner=world.practitioner,
            stimulants_avoided=True,
        ).save()
        assert Session.objects.filter(course=course).count() == 1

    def test_the_model_save_path_refuses_an_injection_from_a_recalled_lot(self, world, patient):
        course = ready_course(world, patient, ago(days=3))
        session = chart(world, course, ago(hours=1), lots=[world.lot])
        world.lidocaine_lot.do_recall("Mycobacterium abscessus in the vial", world.manager)
        with pytest.raises(SessionRefused) as exc:
            SessionInjection(
                session=session, area="thighs", lot=world.lidocaine_lot, volume_ml=Decimal("1")
            ).save()
        assert [r.code for r in exc.value.refusals] == ["lot_recalled"]
        assert list(session.injections.values_list("lot", flat=True)) == [world.lot.pk]
        # An injection from a good lot on the same session still saves.
        SessionInjection(
            session=session, area="buttocks", lot=world.lot, volume_ml=Decimal("1")
        ).save()
        assert session.injections.count() == 2


class OverrideTests:
    def test_an_interval_override_with_a_reason_is_recorded_and_audited(self, world, patient):
        course = ready_course(world, patient, ago(days=12))
        chart(world, course, ago(days=10))
        with pytest.raises(SessionRefused) as exc:
            chart(world, course, ago(days=8))
        assert [r.code for r in exc.value.refusals] == ["interval_too_short"]
        assert exc.value.refusals[0].overridable is True

        session = chart(
            world,
            course,
            ago(days=8),
            override_codes=["interval_too_short"],
            override_reason="  Patient flies abroad for a month.  ",
        )
        session.refresh_from_db()
        assert session.override_codes == ["interval_too_short"]
        assert session.override_reason == "Patient flies abroad for a month."
        assert session.overridden_by == world.practitioner
        event = AuditEvent.objects.get(action=AuditEvent.Action.OVERRIDE)
        assert event.user == world.practitioner
        assert event.object_id == str(session.pk)
        assert event.patient_id == patient.pk
        assert event.detail["reason"] == "Patient flies abroad for a month."
        assert event.detail["codes"] == ["interval_too_short"]
        assert [r["code"] for r in event.detail["refusals"]] == ["interval_too_short"]

    def test_a_session_without_an_override_writes_no_override_audit(self, world, patient):
        course = ready_course(world, patient, ago(days=3))
        chart(world, course, ago(hours=1))
        assert not AuditEvent.objects.filter(action=AuditEvent.Action.OVERRIDE).exists()

    def test_an_override_without_a_reason_is_refused(self, world, patient):
        course = ready_course(world, patient, ago(days=12))
        chart(world, course, ago(days=10))
        with pytest.raises(ValidationError) as exc:
            chart(
                world,
                course,
                ago(days=8),
                override_codes=["interval_too_short"],
                override_reason="   ",
            )
        assert "override_reason" in exc.value.message_dict
        assert course.sessions.count() == 1

    def test_a_recalled_lot_cannot_be_overridden(self, world, patient):
        course = ready_course(world, patient, ago(days=3))
        world.lot.do_recall("Contaminated batch", world.manager)
        with pytest.raises(ValidationError) as exc:
            chart(
                world,
                course,
                ago(hours=1),
                override_codes=["lot_recalled"],
                override_reason="We have no other lot.",
            )
        assert not isinstance(exc.value, SessionRefused)
        assert "lot_recalled" in " ".join(exc.value.message_dict["override_codes"])
        assert not course.sessions.exists()
        assert not AuditEvent.objects.filter(action=AuditEvent.Action.OVERRIDE).exists()

    def test_an_override_of_a_gate_that_did_not_refuse_is_refused(self, world, patient):
        course = ready_course(world, patient, ago(days=3))
        with pytest.raises(ValidationError) as exc:
            chart(
                world,
                course,
                ago(hours=1),
                override_codes=["interval_too_short"],
                override_reason="Just in case.",
            )
        assert "override_codes" in exc.value.message_dict
        assert not course.sessions.exists()

    def test_an_override_does_not_lift_other_refusals(self, world, patient):
        course = ready_course(world, patient, ago(days=12))
        chart(world, course, ago(days=10))
        world.lidocaine_lot.do_recall("Contaminated batch", world.manager)
        with pytest.raises(SessionRefused) as exc:
            chart(
                world,
                course,
                ago(days=8),
                override_codes=["interval_too_short"],
                override_reason="Patient flies abroad.",
            )
        assert [r.code for r in exc.value.refusals] == ["lot_recalled"]
        assert course.sessions.count() == 1


class ConsentTests:
    def test_a_session_needs_a_signed_consent(self, world, patient):
        screen(patient, world.practitioner)
        course = plan(world, patient)
        allergy_test(world, course, ago(days=3))
        assert refused_codes(world, course, ago(hours=1), [world.lot]) == ["no_consent"]
        sign(world, patient)
        assert refused_codes(world, course, ago(hours=1), [world.lot]) == []

    def test_a_new_consent_text_makes_the_old_signature_outdated(self, world, patient):
        course = ready_course(world, patient, ago(days=3))
        assert refused_codes(world, course, ago(hours=1), [world.lot]) == []
        ConsentTemplate.objects.create(
            clinic=world.clinic,
            version=2,
            body=consent_text.DEFAULT_BODY + "\nI may withdraw my consent at any time.\n",
        )
        with pytest.raises(SessionRefused) as exc:
            chart(world, course, ago(hours=1))
        (refusal,) = exc.value.refusals
        assert refusal.code == "consent_outdated"
        assert world.product.name in refusal.message
        assert world.lidocaine_product.name in refusal.message
        # Signing the new text lifts it.
        sign(world, patient)
        chart(world, course, ago(hours=1))

    def test_a_new_consent_version_outdates_the_signature_even_with_the_same_words(
        self, world, patient
    ):
        course = ready_course(world, patient, ago(days=3))
        current = consent_text.current_template(world.clinic)
        ConsentTemplate.objects.create(clinic=world.clinic, version=2, body=current.body)
        assert refused_codes(world, course, ago(hours=1), [world.lot]) == ["consent_outdated"]

    def test_a_change_in_an_ingredients_regulatory_status_outdates_the_consent(
        self, world, patient
    ):
        course = ready_course(world, patient, ago(days=3))
        assert refused_codes(world, course, ago(hours=1), [world.lot, world.lidocaine_lot]) == []
        Ingredient.objects.filter(key="l_carnitine", clinic=None).update(
            fda_status=Ingredient.Status.UNAPPROVED
        )
        found = check_session(
            course, ago(hours=1), world.practitioner, [world.lot, world.lidocaine_lot]
        )
        assert [r.code for r in found] == ["consent_outdated"]
        # The patient signed one text covering both products, and that text has changed, so
        # the signature covers neither any more.
        assert world.product.name in found[0].message
        assert world.lidocaine_product.name in found[0].message
        text = patient.consents.get().text
        assert "L-carnitine: FDA-approved for another use" in text
        sign(world, patient)
        assert "L-carnitine: Not approved by the FDA." in patient.consents.first().text
        assert refused_codes(world, course, ago(hours=1), [world.lot, world.lidocaine_lot]) == []

    def test_a_product_the_consent_does_not_cover_is_refused(self, world, patient):
        screen(patient, world.practitioner)
        sign(world, patient, [world.product])
        course = plan(world, patient)
        allergy_test(world, course, ago(days=3))
        with pytest.raises(SessionRefused) as exc:
            chart(world, course, ago(hours=1), lots=[world.lot, world.lidocaine_lot])
        (refusal,) = exc.value.refusals
        assert refusal.code == "consent_outdated"
        assert world.lidocaine_product.name in refusal.message
        assert world.product.name + "," not in refusal.message
        chart(world, course, ago(hours=1), lots=[world.lot])


class SideEffectTests:
    @pytest.fixture
    def session(self, world: World, patient: Patient) -> Session:
        course = ready_course(world, patient, ago(days=3))
        return chart(world, course, ago(hours=3))

    def report(self, world: World, session: Session, **kw: Any) -> SideEffect:
        kw.setdefault("onset_at", session.performed_at + dt.timedelta(hours=1))
        kw.setdefault("grade", 1)
        return do_report_side_effect(session, user=world.practitioner, **kw)

    def test_mild_swelling_is_expected_and_opens_no_follow_up(self, world, session):
        effect = self.report(world, session, kind="swelling")
        effect.refresh_from_db()
        assert effect.status == "expected"
        assert effect.expected_until == effect.onset_at + dt.timedelta(hours=120)
        assert not FollowUp.objects.exists()

    def test_grade_3_swelling_is_urgent_and_opens_an_urgent_follow_up(self, world, session):
        effect = self.report(world, session, kind="swelling", grade=3)
        assert effect.status == "urgent"
        follow_up = FollowUp.objects.get(side_effect=effect)
        assert follow_up.priority == FollowUp.Priority.URGENT
        assert follow_up.status == FollowUp.Status.OPEN
        assert follow_up.clinic == world.clinic
        assert follow_up.reason == "Swelling (grade 3) is urgent"

    def test_an_infection_is_urgent_at_grade_1(self, world, session):
        effect = self.report(world, session, kind="infection")
        assert effect.status == "urgent"
        assert FollowUp.objects.get(side_effect=effect).priority == FollowUp.Priority.URGENT

    def test_a_side_effect_of_kind_other_is_beyond_expected_with_a_routine_follow_up(
        self, world, session
    ):
        effect = self.report(world, session, kind="other", description="Itchy rash on the calf")
        assert effect.status == "beyond_expected"
        assert effect.expected_until is None
        follow_up = FollowUp.objects.get(side_effect=effect)
        assert follow_up.priority == FollowUp.Priority.ROUTINE

    def test_a_side_effect_of_kind_other_must_be_described(self, world, session):
        with pytest.raises(ValidationError) as exc:
            self.report(world, session, kind="other")
        assert "description" in exc.value.message_dict
        assert not SideEffect.objects.exists()

    def test_the_sweep_moves_unresolved_swelling_past_5_days_to_beyond_expected(
        self, world, session
    ):
        effect = self.report(world, session, kind="swelling")
        onset = effect.onset_at
        with time_machine.travel(onset + dt.timedelta(days=4, hours=23), tick=False):
            assert do_sweep_side_effects() == 0
        effect.refresh_from_db()
        assert effect.status == "expected"
        assert not FollowUp.objects.exists()

        with time_machine.travel(onset + dt.timedelta(days=5, minutes=1), tick=False):
            assert do_sweep_side_effects() == 1
            assert do_sweep_side_effects() == 0
        effect.refresh_from_db()
        assert effect.status == "beyond_expected"
        follow_up = FollowUp.objects.get(side_effect=effect)
        assert follow_up.priority == FollowUp.Priority.ROUTINE
        assert follow_up.reason == "Swelling (grade 1) is beyond expected"

    def test_the_sweep_leaves_resolved_side_effects_alone(self, world, session):
        effect = self.report(
            world,
            session,
            kind="swelling",
            resolved_at=session.performed_at + dt.timedelta(hours=2),
        )
        with time_machine.travel(effect.onset_at + dt.timedelta(days=10), tick=False):
            assert do_sweep_side_effects() == 0
        effect.refresh_from_db()
        assert effect.status == "expected"

    def test_swelling_resolved_after_5_days_is_beyond_expected(self, world, session):
        effect = self.report(world, session, kind="swelling")
        with time_machine.travel(effect.onset_at + dt.timedelta(days=7), tick=False):
            do_resolve_side_effect(
                effect, effect.onset_at + dt.timedelta(days=6), world.practitioner
            )
        effect.refresh_from_db()
        assert effect.status == "beyond_expected"
        assert FollowUp.objects.get(side_effect=effect).priority == FollowUp.Priority.ROUTINE

    def test_swelling_resolved_within_5_days_stays_expected(self, world, session):
        effect = self.report(world, session, kind="swelling")
        with time_machine.travel(effect.onset_at + dt.timedelta(days=7), tick=False):
            do_resolve_side_effect(
                effect, effect.onset_at + dt.timedelta(days=2), world.practitioner
            )
        effect.refresh_from_db()
        assert effect.status == "expected"
        assert not FollowUp.objects.exists()


@pytest.mark.django_db(transaction=True)
class ConcurrencyTests:
    def test_two_sessions_recorded_at_once_cannot_both_pass_the_interval_gate(self):
        """Two threads chart a session on one course an hour apart, at the same moment. One
        is saved; the other, once the first has committed, is refused for the interval. A
        thread that finds the database locked tries again, as a client would."""
        world = build_clinic("Race Clinic", "race_")
        patient = Patient.objects.create(
            clinic=world.clinic,
            first_name="Rae",
            last_name="Cing",
            date_of_birth=dt.date(1985, 1, 1),
        )
        course = ready_course(world, patient, ago(days=3))
        barrier = threading.Barrier(2)
        outcomes: list[str] = []

        def record(at: dt.datetime) -> None:
            try:
                barrier.wait(timeout=10)
                for _ in range(400):
                    try:
                        chart(world, Course.objects.get(pk=course.pk), at)
                        outcomes.append("saved")
                        return
                    except SessionRefused as exc:
                        outcomes.append(",".join(r.code for r in exc.refusals))
                        return
                    except OperationalError as exc:
                        # SQLite's shared in-memory test database reports a held lock at once
                        # instead of waiting for it.
                        assert "locked" in str(exc), exc
                        time.sleep(0.025)
                outcomes.append("still locked")
            finally:
                connection.close()

        threads = [threading.Thread(target=record, args=(ago(hours=h),)) for h in (2, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert sorted(outcomes) == ["interval_too_short", "saved"]
        assert Session.objects.filter(course=course).count() == 1

    def test_a_course_stopped_on_two_screens_at_once_is_stopped_once(self):
        """Two people stop one course at the same moment, each from a page loaded while it was
        still active. One stops it; the other is told it is already stopped, and the course's
        history says it was stopped once, for the first reason."""
        world = build_clinic("Stop Race Clinic", "stop_")
        patient = Patient.objects.create(
            clinic=world.clinic,
            first_name="Sam",
            last_name="Top",
            date_of_birth=dt.date(1985, 1, 1),
        )
        course = plan(world, patient)
        barrier = threading.Barrier(2)
        outcomes: list[str] = []

        def stop(reason: str) -> None:
            try:
                seen = Course.objects.get(pk=course.pk)  # the page each person had open
                barrier.wait(timeout=10)
                for _ in range(400):
                    try:
                        do_stop_course(seen, reason, world.manager)
                        outcomes.append(reason)
                        return
                    except ValidationError as exc:
                        outcomes.append(exc.message_dict["status"][0])
                        return
                    except OperationalError as exc:
                        # SQLite's shared in-memory test database reports a held lock at once
                        # instead of waiting for it.
                        assert "locked" in str(exc), exc
                        time.sleep(0.025)
                outcomes.append("still locked")
            finally:
                connection.close()

        threads = [threading.Thread(target=stop, args=(r,)) for r in ("Moved away.", "Pregnant.")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert len(outcomes) == 2 and "The course is already stopped." in outcomes, outcomes
        (winner,) = [o for o in outcomes if o != "The course is already stopped."]
        course.refresh_from_db()
        assert course.status == Course.Status.STOPPED
        assert course.stop_reason == winner
        stops = AuditEvent.objects.filter(
            object_type="courses.Course", object_id=str(course.pk), detail__status="stopped"
        )
        assert [e.detail["reason"] for e in stops] == [winner]


class AllergyTestLotTests:
    def test_it_refuses_test_injections_from_an_expired_lot(
        self, world: World, patient: Patient
    ) -> None:
        course = plan(world, patient)
        with pytest.raises(SessionRefused) as caught:
            do_give_allergy_test(
                course,
                given_at=ago(hours=1),
                injections=[
                    actions.TestInjection(world.expired_lot, "left forearm"),
                    actions.TestInjection(world.lidocaine_lot, "right forearm"),
                ],
                user=world.practitioner,
            )
        assert caught.value.subject == "allergy test"
        assert [r.code for r in caught.value.refusals] == ["lot_expired"]
        assert not course.allergy_tests.exists()

    def test_it_refuses_test_injections_from_a_recalled_lot_or_an_allergen(
        self, world: World, patient: Patient
    ) -> None:
        course = plan(world, patient)
        world.lot.do_recall("Supplier notice", world.manager)
        Allergy.objects.create(
            patient=patient, ingredient=Ingredient.objects.get(key="lidocaine", clinic=None)
        )
        with pytest.raises(SessionRefused) as caught:
            allergy_test(world, course, ago(hours=1), read_after=None)
        assert sorted(r.code for r in caught.value.refusals) == [
            "ingredient_allergy",
            "lot_recalled",
        ]
        assert all(not r.overridable for r in caught.value.refusals)


class ChartedRecordTests:
    def test_a_charted_session_cannot_be_moved_or_reassigned(
        self, world: World, patient: Patient
    ) -> None:
        course = ready_course(world, patient, ago(days=3))
        session = chart(world, course, ago(hours=2))
        session.performed_at = ago(days=20)
        with pytest.raises(ValidationError, match="performed_at"):
            session.save()
        session.refresh_from_db()
        session.notes = "Patient tolerated well."
        session.save()  # notes may be added
        assert Session.objects.get(pk=session.pk).notes == "Patient tolerated well."

    def test_a_charted_injection_cannot_switch_lot(self, world: World, patient: Patient) -> None:
        course = ready_course(world, patient, ago(days=3))
        injection = chart(world, course, ago(hours=2)).injections.first()
        assert injection is not None
        injection.lot = world.expired_lot
        with pytest.raises(ValidationError, match="lot"):
            injection.save()


class ScreeningTimeTests:
    def test_a_paper_screening_can_be_charted_later_at_its_own_time(
        self, patient: Patient, world: World
    ) -> None:
        answers = {q["key"]: False for q in ScreeningForm.current(patient.clinic).questions}
        screening = do_screen_patient(patient, answers, world.practitioner, screened_at=ago(days=2))
        assert abs((timezone.now() - screening.screened_at) - dt.timedelta(days=2)) < dt.timedelta(
            minutes=1
        )

    def test_a_screening_in_the_future_is_refused(self, patient: Patient, world: World) -> None:
        answers = {q["key"]: False for q in ScreeningForm.current(patient.clinic).questions}
        with pytest.raises(ValidationError, match="screened_at"):
            do_screen_patient(patient, answers, world.practitioner, screened_at=ago(days=-1))

    def test_the_age_rule_uses_the_day_of_the_screening(self, world: World) -> None:
        today = timezone.now().astimezone(world.clinic.tz).date()
        try:
            eighteenth = today.replace(year=today.year - 18)
        except ValueError:  # 29 February
            eighteenth = today.replace(year=today.year - 18, day=28)
        turned_18_yesterday = eighteenth - dt.timedelta(days=1)
        teen = Patient.objects.create(
            clinic=world.clinic, first_name="T", last_name="Teen", date_of_birth=turned_18_yesterday
        )
        answers = {q["key"]: False for q in ScreeningForm.current(world.clinic).questions}
        assert do_screen_patient(teen, answers, world.practitioner).result == "eligible"
        earlier = do_screen_patient(teen, answers, world.practitioner, screened_at=ago(days=3))
        assert earlier.result == "ineligible"


class BackDatingTests:
    """A session charted after the fact is judged by the records of its own time."""

    def test_it_refuses_a_session_dated_before_the_allergy_test_was_read(
        self, world: World, patient: Patient
    ) -> None:
        course = ready_course(world, patient, ago(days=3))  # read 25 h after, about 47 h ago
        assert "allergy_test_unread" in refused_codes(
            world, course, ago(days=2, hours=12), [world.lot]
        )
        assert "allergy_test_missing" in refused_codes(world, course, ago(days=4), [world.lot])
        assert refused_codes(world, course, ago(hours=1), [world.lot]) == []

    def test_it_refuses_a_session_dated_before_the_screening_and_the_consent(
        self, world: World, patient: Patient
    ) -> None:
        course = ready_course(world, patient, ago(days=3))
        codes = refused_codes(world, course, ago(days=500), [world.lot])
        assert {"no_screening", "no_consent", "allergy_test_missing"} <= set(codes)

    def test_a_reaction_read_later_still_counts_for_an_earlier_session(
        self, world: World, patient: Patient
    ) -> None:
        course = ready_course(world, patient, ago(days=5))
        test = course.allergy_tests.get()
        do_read_allergy_test(test, read_at=ago(hours=1), result="systemic", user=world.practitioner)
        assert "allergy_reaction" in refused_codes(world, course, ago(days=2), [world.lot])
