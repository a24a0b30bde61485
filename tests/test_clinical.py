"""The clinical defects of issue 12, each through the path a clinic uses: an active infection
or an open serious adverse event refuses the session; only the products planned for a course
may be injected; an allergy reading taken too early is refused at entry; a course entered after
the fact can be charted whole; session numbers follow time; a recall stands; and the gate is
judged for the practitioner who will give the session."""

from __future__ import annotations

import datetime as dt
import sys
from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent, PractitionerLicence
from mesoclinic.courses import actions
from mesoclinic.courses.models import Course, FollowUp, Session, SessionRefused
from mesoclinic.formulary.models import Ingredient, Lot, Product, ProductIngredient
from mesoclinic.outcomes.actions import do_record_measurement
from mesoclinic.outcomes.logic import Raw
from mesoclinic.patients.models import Patient
from mesoclinic.protocols.models import ClinicProtocol
from mesoclinic.safety import actions as safety_actions
from mesoclinic.safety.models import AdverseEvent, WatchPrompt
from mesoclinic.scheduling.models import Appointment
from tests.conftest import World, ago, api_for, problem_of
from tests.scheduling_fixtures import race_processes, run_script
from tests.test_courses import AREAS, allergy_test, chart, ready_course, screen, sign
from tests.test_web import signed_in

CHILD = [sys.executable, "-m", "tests.booking_race_child"]


def hair_product(world: World) -> Product:
    """A product the formulary lists for hair loss only, with a lot in date."""
    product = Product.objects.create(
        clinic=world.clinic,
        name="Biotin hair cocktail",
        supplier="Dermal Supply Co.",
        vial=Product.Vial.SINGLE_DOSE,
        indications=["hair_loss"],
    )
    ProductIngredient.objects.create(
        product=product,
        ingredient=Ingredient.objects.get(key="biotin", clinic=None),
        concentration=Decimal("5"),
    )
    Lot.objects.create(
        product=product,
        lot_number="BHC-1",
        expires_on=timezone.now().date() + dt.timedelta(days=200),
    )
    return product


def codes(exc: SessionRefused) -> list[str]:
    return [r.code for r in exc.refusals]


def under_way(world: World, patient: Patient) -> tuple[Course, Session]:
    """A course planned 30 days ago and its first session, given 20 days ago."""
    course = ready_course(world, patient, ago(days=30))
    return course, chart(world, course, ago(days=20))


def chart_and_api_refuse(world: World, course: Course, says: str) -> list[str]:
    """The chart shows what stands in the way (`says`), never "Nothing stands in the way", and
    the API refuses a session now: the codes of its reasons."""
    page = signed_in(world.practitioner).get(f"/patients/{course.patient_id}/").content.decode()
    assert "Nothing stands in the way" not in page
    assert says in page
    response = api_for(world.practitioner).post(
        f"/courses/{course.pk}/sessions",
        {
            "performed_at": ago(minutes=5).isoformat(),
            "stimulants_avoided": True,
            "injections": [{"area": "thighs", "lot": world.lot.pk, "volume_ml": "2.5"}],
        },
    )
    return [r["code"] for r in problem_of(response, 409)["reasons"]]


class ActiveProblemGateTests:
    def test_an_unresolved_infection_refuses_the_session_and_cannot_be_overridden(
        self, world: World, patient: Patient
    ) -> None:
        course, first = under_way(world, patient)
        effect = actions.do_report_side_effect(
            first, kind="infection", onset_at=ago(days=15), grade=2, user=world.practitioner
        )
        with pytest.raises(SessionRefused) as exc:
            chart(world, course, ago(days=10))
        assert codes(exc.value) == ["active_infection"]
        (refusal,) = exc.value.refusals
        assert not refusal.overridable
        assert "infection (grade 2) after session 1" in refusal.message
        assert "can never be overridden" in refusal.message
        with pytest.raises(ValidationError, match="cannot be overridden"):
            chart(
                world,
                course,
                ago(days=10),
                override_codes=["active_infection"],
                override_reason="The patient insists.",
            )
        # Resolved before the next session, the infection no longer stands in the way.
        actions.do_resolve_side_effect(effect, ago(days=12), world.practitioner)
        assert chart(world, course, ago(days=10)).number == 2

    def test_an_urgent_infection_watch_answer_refuses_until_its_follow_up_is_closed(
        self, world: World, patient: Patient
    ) -> None:
        course, first = under_way(world, patient)
        prompt = WatchPrompt.objects.create(
            clinic=world.clinic,
            session=first,
            week=2,
            due_at=ago(days=6),
            next_attempt_at=ago(days=6),
            status=WatchPrompt.Status.SENT,
        )
        safety_actions.do_answer_watch(prompt.pk, {"lump": True})
        follow_up = FollowUp.objects.get(watch_prompts=prompt)
        with pytest.raises(SessionRefused) as exc:
            chart(world, course, ago(minutes=5))
        assert codes(exc.value) == ["active_infection"]
        assert "reported by the patient" in exc.value.refusals[0].message
        actions.do_close_follow_up(follow_up, "Seen: a bruise, no infection.", world.manager)
        assert chart(world, course, timezone.now()).number == 2

    def test_an_open_serious_adverse_event_refuses_until_it_has_ended(
        self, world: World, patient: Patient
    ) -> None:
        course, first = under_way(world, patient)
        event = safety_actions.do_report_adverse_event(
            first,
            kind=AdverseEvent.Kind.NECROSIS,
            ctcae_grade=3,
            onset_at=ago(days=18),
            user=world.practitioner,
        )
        with pytest.raises(SessionRefused) as exc:
            chart(world, course, ago(days=10))
        assert codes(exc.value) == ["open_serious_event"]
        assert "serious adverse event (skin necrosis, grade 3)" in exc.value.refusals[0].message
        safety_actions.do_update_adverse_event(
            event, outcome="resolved", outcome_at=ago(days=12), user=world.practitioner
        )
        assert chart(world, course, ago(days=10)).number == 2

    def test_an_urgent_side_effect_refuses_while_unresolved_and_under_follow_up(
        self, world: World, patient: Patient
    ) -> None:
        course, first = under_way(world, patient)
        ulcer = actions.do_report_side_effect(
            first, kind="ulceration", onset_at=ago(days=15), grade=2, user=world.practitioner
        )
        follow_up = FollowUp.objects.get(side_effect=ulcer)
        assert follow_up.priority == FollowUp.Priority.URGENT
        with pytest.raises(SessionRefused) as exc:
            chart(world, course, ago(days=10))
        assert codes(exc.value) == ["unresolved_side_effect"]
        (refusal,) = exc.value.refusals
        assert refusal.message.startswith("Ulceration (grade 2) after session 1, since ")
        assert "its urgent follow-up is open" in refusal.message
        # The default protocol does not let anyone override it.
        assert not refusal.overridable
        # The chart says what stands in the way, and the API refuses with the same code.
        assert chart_and_api_refuse(world, course, "its urgent follow-up is open") == [
            "unresolved_side_effect"
        ]
        # Closing the follow-up with its outcome lifts it, even before the ulcer has healed;
        # a session before the closing is judged as things stood then.
        actions.do_close_follow_up(follow_up, "Seen: healing well, dressing.", world.manager)
        with pytest.raises(SessionRefused):
            chart(world, course, ago(days=10))
        assert chart(world, course, timezone.now()).number == 2

    def test_a_side_effect_the_protocol_does_not_list_is_named_by_its_description(
        self, world: World, patient: Patient
    ) -> None:
        course, first = under_way(world, patient)
        actions.do_report_side_effect(
            first,
            kind="other",
            description="Hives on both thighs",
            onset_at=ago(days=15),
            grade=3,
            user=world.practitioner,
        )
        with pytest.raises(SessionRefused) as exc:
            chart(world, course, ago(days=10))
        assert exc.value.refusals[0].message.startswith(
            "A side effect (Hives on both thighs, grade 3) after session 1, since "
        )

    def test_a_resolved_urgent_side_effect_or_a_minor_one_does_not_refuse(
        self, world: World, patient: Patient
    ) -> None:
        course, first = under_way(world, patient)
        # Grade 3 makes a bruise urgent; it resolved before the next session.
        actions.do_report_side_effect(
            first,
            kind="bruising",
            onset_at=ago(days=19),
            grade=3,
            resolved_at=ago(days=12),
            user=world.practitioner,
        )
        # A grade-1 bruise still there is expected, with no urgent follow-up.
        actions.do_report_side_effect(
            first, kind="bruising", onset_at=ago(days=11), grade=1, user=world.practitioner
        )
        assert chart(world, course, ago(days=10)).number == 2

    def test_a_protocol_may_let_a_practitioner_override_it_with_a_reason(
        self, world: World, patient: Patient
    ) -> None:
        course, first = under_way(world, patient)
        actions.do_report_side_effect(
            first, kind="necrosis", onset_at=ago(days=15), grade=2, user=world.practitioner
        )
        spec = course.protocol.document
        spec["overridable"] = [*spec.get("overridable", []), "unresolved_side_effect"]
        ClinicProtocol.objects.filter(pk=course.protocol_id).update(document=spec)
        course = Course.objects.get(pk=course.pk)
        session = chart(
            world,
            course,
            ago(days=10),
            override_codes=["unresolved_side_effect"],
            override_reason="Reviewed: the necrosis is in another area, healing.",
        )
        assert session.number == 2
        override = AuditEvent.objects.get(action=AuditEvent.Action.OVERRIDE, object_id=session.pk)
        assert override.detail["codes"] == ["unresolved_side_effect"]

    def test_the_chart_and_the_api_refuse_with_an_active_infection(
        self, world: World, patient: Patient
    ) -> None:
        course, first = under_way(world, patient)
        actions.do_report_side_effect(
            first, kind="infection", onset_at=ago(days=15), grade=2, user=world.practitioner
        )
        says = "No session may be given while an infection is active"
        assert chart_and_api_refuse(world, course, says) == ["active_infection"]


class PlannedProductTests:
    def test_a_course_plans_the_products_for_its_indication_by_default(
        self, world: World, patient: Patient
    ) -> None:
        hair = hair_product(world)
        world.product.indications = ["cellulite"]
        world.product.save()
        course = ready_course(world, patient, ago(days=3))
        planned = set(course.products.all())
        assert planned == {world.product, world.lidocaine_product}
        assert hair not in planned

    def test_a_lot_of_a_product_not_planned_is_refused_for_the_test_and_the_session(
        self, world: World, patient: Patient
    ) -> None:
        hair = hair_product(world)
        hair_lot = hair.lots.get()
        screen(patient, world.practitioner)
        sign(world, patient, [world.product, world.lidocaine_product, hair])
        course = ready_course(world, patient, ago(days=3))
        with pytest.raises(SessionRefused) as exc:
            actions.do_give_allergy_test(
                course,
                given_at=ago(hours=1),
                injections=[
                    actions.TestInjection(hair_lot, "left inner forearm"),
                    actions.TestInjection(world.lidocaine_lot, "right inner forearm"),
                ],
                user=world.practitioner,
            )
        assert codes(exc.value) == ["product_not_planned"]
        message = exc.value.refusals[0].message
        assert "Biotin hair cocktail lot BHC-1 is not a product planned for this course" in message
        with pytest.raises(SessionRefused) as session_exc:
            chart(world, course, ago(minutes=5), lots=[hair_lot])
        assert codes(session_exc.value) == ["product_not_planned"]
        assert not session_exc.value.refusals[0].overridable
        response = api_for(world.practitioner).post(
            f"/courses/{course.pk}/sessions",
            {
                "performed_at": ago(minutes=5).isoformat(),
                "stimulants_avoided": True,
                "injections": [{"area": "thighs", "lot": hair_lot.pk, "volume_ml": "2.5"}],
            },
        )
        assert [r["code"] for r in problem_of(response, 409)["reasons"]] == ["product_not_planned"]

    def test_the_session_form_offers_and_the_consent_names_only_the_planned_products(
        self, world: World, patient: Patient
    ) -> None:
        hair_product(world)
        world.product.indications = ["cellulite"]
        world.product.save()
        course = ready_course(world, patient, ago(days=3))
        client = signed_in(world.practitioner)
        lots = client.get(f"/courses/{course.pk}/sessions/new/").context["usable_lots"]
        assert "BHC-1" not in {lot.lot_number for lot in lots}
        assert world.lot.lot_number in {lot.lot_number for lot in lots}
        consent = client.get(f"/patients/{patient.pk}/courses/{course.pk}/consent/")
        assert "Biotin hair cocktail" not in consent.context["text"]
        assert world.product.name in consent.context["text"]

    def test_a_course_planned_on_the_web_keeps_the_products_ticked(
        self, world: World, patient: Patient
    ) -> None:
        client = signed_in(world.practitioner)
        response = client.post(
            f"/patients/{patient.pk}/courses/new/",
            {
                "protocol": "cellulite",
                "areas": ["thighs"],
                "cadence_days": "7",
                "planned_sessions": "15",
                "products": [str(world.product.pk)],
            },
        )
        assert response.status_code == 302
        course = Course.objects.get(patient=patient)
        assert list(course.products.all()) == [world.product]

    def test_the_api_plans_products_and_refuses_one_for_another_indication(
        self, world: World, patient: Patient
    ) -> None:
        hair = hair_product(world)
        api = api_for(world.practitioner)
        body = {
            "protocol": "cellulite",
            "areas": ["thighs"],
            "cadence_days": 7,
            "planned_sessions": 15,
        }
        refused = api.post(f"/patients/{patient.pk}/courses", {**body, "products": [hair.pk]})
        assert (
            "not listed in the formulary for this indication" in problem_of(refused, 422)["detail"]
        )
        made = api.post(f"/patients/{patient.pk}/courses", {**body, "products": [world.product.pk]})
        assert made.status_code == 201, made.content
        assert [p["id"] for p in made.json()["products"]] == [world.product.pk]

    def test_a_manager_sets_a_products_indications_in_the_formulary(self, world: World) -> None:
        client = signed_in(world.manager)
        ingredient = Ingredient.objects.get(key="caffeine", clinic=None)
        response = client.post(
            "/manage/formulary/products/new/",
            {
                "name": "Cellulite mix",
                "supplier": "Meso Pharmacy",
                "vial": "single",
                "indications": ["cellulite"],
                "components-TOTAL_FORMS": "1",
                "components-INITIAL_FORMS": "0",
                "components-0-ingredient": str(ingredient.pk),
                "components-0-concentration": "20",
                "components-0-unit": "mg/mL",
            },
        )
        assert response.status_code == 302, response.content.decode()[:2000]
        assert Product.objects.get(name="Cellulite mix").indications == ["cellulite"]
        page = client.get("/manage/formulary/").content.decode()
        assert "for Cellulite" in page


class EarlyReadingTests:
    def test_the_web_refuses_an_early_reading_and_names_when_the_test_is_readable(
        self, world: World, patient: Patient
    ) -> None:
        screen(patient, world.practitioner)
        sign(world, patient)
        course = ready_course(world, patient, ago(days=3))
        test = allergy_test(world, course, ago(minutes=10), read_after=None)
        client = signed_in(world.practitioner)
        read_at = (test.given_at + dt.timedelta(minutes=3)).astimezone(world.clinic.tz)
        response = client.post(
            f"/allergy-tests/{test.pk}/reading/",
            {"read_at": read_at.strftime("%Y-%m-%dT%H:%M"), "result": "none", "notes": ""},
            follow=True,
        )
        page = response.content.decode()
        readable = test.readable_from().astimezone(world.clinic.tz)
        assert f"the test can be read from {readable:%H:%M} on" in page
        assert not test.readings.exists()


class BackChartingTests:
    def test_a_course_entered_after_the_fact_is_charted_whole(
        self, world: World, patient: Patient
    ) -> None:
        began = ago(days=60).replace(microsecond=0)
        screen(patient, world.practitioner)
        sign(world, patient)
        course = actions.do_plan_course(
            patient,
            ClinicProtocol.current(world.clinic, "cellulite"),
            indication="cellulite",
            areas=AREAS,
            cadence_days=7,
            planned_sessions=15,
            first_session_on=began.astimezone(world.clinic.tz).date(),
            user=world.practitioner,
        )
        allergy_test(world, course, began - dt.timedelta(days=2))
        # The baseline was taken on the day of session 1, weeks before the course was entered.
        items = {"number": 2, "depth": 2, "morphology": 2, "laxity": 1, "nurnberger_muller": 2}
        do_record_measurement(
            course,
            Raw(kind="hexsel_css", area="thighs", items=items),
            taken_at=began - dt.timedelta(hours=1),
            user=world.practitioner,
        )
        first = chart(world, course, began)
        second = chart(world, course, began + dt.timedelta(days=7))
        assert (first.number, second.number) == (1, 2)
        assert first.injections.count() == 2


class SessionNumberTests:
    def test_a_session_charted_later_for_an_earlier_date_takes_its_place_in_time(
        self, world: World, patient: Patient
    ) -> None:
        course = ready_course(world, patient, ago(days=40))
        first = chart(world, course, ago(days=30))
        third = chart(world, course, ago(days=16))
        second = chart(world, course, ago(days=23))
        for s in (first, second, third):
            s.refresh_from_db()
        assert (first.number, second.number, third.number) == (1, 2, 3)
        assert chart(world, course, ago(days=2)).number == 4


class RecallTests:
    def test_a_second_recall_through_the_api_leaves_the_first_standing(self, world: World) -> None:
        api = api_for(world.manager)
        first = api.post(f"/lots/{world.lot.pk}/recall", {"reason": "Sterility not assured."})
        assert first.status_code == 200
        lot = Lot.objects.get(pk=world.lot.pk)
        when = lot.recalled_at
        other = api_for(_second_manager(world))
        again = other.post(f"/lots/{world.lot.pk}/recall", {"reason": "Another reason."})
        assert "already recalled" in problem_of(again, 409)["detail"]
        lot.refresh_from_db()
        assert (lot.recall_reason, lot.recalled_by, lot.recalled_at) == (
            "Sterility not assured.",
            world.manager,
            when,
        )

    def test_a_second_recall_on_the_web_is_refused_in_words(self, world: World) -> None:
        world.lot.do_recall("Sterility not assured.", world.manager)
        client = signed_in(_second_manager(world))
        response = client.post(
            f"/manage/lots/{world.lot.pk}/", {"reason": "Another reason."}, follow=True
        )
        assert "was already recalled" in response.content.decode()
        lot = Lot.objects.get(pk=world.lot.pk)
        assert (lot.recall_reason, lot.recalled_by) == ("Sterility not assured.", world.manager)


def _second_manager(world: World) -> object:
    from mesoclinic.accounts.models import Membership
    from tests.conftest import make_user

    return make_user(world.clinic, "manager2", Membership.Role.MANAGER)


class GateForWhomTests:
    def test_the_front_desk_is_not_told_it_has_no_licence(
        self, world: World, patient: Patient
    ) -> None:
        ready_course(world, patient, ago(days=3))
        page = signed_in(world.front_desk).get(f"/patients/{patient.pk}/").content.decode()
        assert "no licence on file" not in page
        assert world.front_desk.display_name not in page.split("Before the next session")[1][:600]

    def test_the_gate_judges_the_practitioner_of_the_booked_visit(
        self, world: World, patient: Patient
    ) -> None:
        course = ready_course(world, patient, ago(days=3))
        PractitionerLicence.objects.filter(user=world.practitioner).update(
            expires_on=dt.date.today() - dt.timedelta(days=3)
        )
        starts = timezone.now() + dt.timedelta(hours=2)
        Appointment.objects.create(
            clinic=world.clinic,
            patient=patient,
            course=course,
            kind=Appointment.Kind.SESSION,
            practitioner=world.practitioner,
            starts_at=starts,
            ends_at=starts + dt.timedelta(minutes=30),
        )
        # The manager looks; the booked practitioner, whose licence has expired, will inject.
        page = signed_in(world.manager).get(f"/patients/{patient.pk}/").content.decode()
        assert f"{world.practitioner.display_name}&#x27;s licence expired" in page
        assert "Nothing stands in the way" not in page
        front = signed_in(world.front_desk).get(f"/patients/{patient.pk}/").content.decode()
        assert f"{world.practitioner.display_name}&#x27;s licence expired" in front


class FollowUpClosingTests:
    def test_a_serious_events_follow_up_closes_from_today_with_how_it_ended(
        self, world: World, patient: Patient
    ) -> None:
        course, first = under_way(world, patient)
        safety_actions.do_report_adverse_event(
            first,
            kind=AdverseEvent.Kind.ABSCESS,
            ctcae_grade=3,
            onset_at=ago(days=18),
            user=world.practitioner,
        )
        follow_up = FollowUp.objects.get(side_effect=None)
        client = signed_in(world.practitioner)
        today = client.get("/today/").content.decode()
        assert f'action="/follow-ups/{follow_up.pk}/close/"' in today
        chart_page = client.get(f"/patients/{patient.pk}/").content.decode()
        assert f'action="/follow-ups/{follow_up.pk}/close/"' in chart_page
        missing = client.post(
            f"/follow-ups/{follow_up.pk}/close/", {"outcome": "Drained.", "next": "today"}
        )
        assert missing["Location"] == "/today/"
        follow_up.refresh_from_db()
        assert follow_up.status == FollowUp.Status.OPEN
        done = client.post(
            f"/follow-ups/{follow_up.pk}/close/",
            {"resolution": "improving", "outcome": "Drained; antibiotics.", "next": "today"},
        )
        assert done["Location"] == "/today/"
        follow_up.refresh_from_db()
        assert (follow_up.status, follow_up.resolution, follow_up.closed_by) == (
            FollowUp.Status.DONE,
            "improving",
            world.practitioner,
        )
        assert (
            f'action="/follow-ups/{follow_up.pk}/close/"'
            not in client.get("/today/").content.decode()
        )

    def test_an_infection_watch_follow_up_closes_from_the_chart(
        self, world: World, patient: Patient
    ) -> None:
        course, first = under_way(world, patient)
        prompt = WatchPrompt.objects.create(
            clinic=world.clinic,
            session=first,
            week=2,
            due_at=ago(days=6),
            next_attempt_at=ago(days=6),
            status=WatchPrompt.Status.SENT,
        )
        safety_actions.do_answer_watch(prompt.pk, {"discharge": True})
        follow_up = FollowUp.objects.get(watch_prompts=prompt)
        response = signed_in(world.manager).post(
            f"/follow-ups/{follow_up.pk}/close/",
            {"resolution": "no_problem", "outcome": "Seen in clinic: healed."},
        )
        assert response["Location"] == f"/patients/{patient.pk}/#course-{course.pk}"
        follow_up.refresh_from_db()
        assert (follow_up.status, follow_up.resolution) == (FollowUp.Status.DONE, "no_problem")


class CourseStatusTests:
    def test_stopping_a_course_asks_then_cancels_its_future_visits(
        self, world: World, patient: Patient
    ) -> None:
        course = ready_course(world, patient, ago(days=3))
        starts = timezone.now() + dt.timedelta(days=3)
        visit = Appointment.objects.create(
            clinic=world.clinic,
            patient=patient,
            course=course,
            kind=Appointment.Kind.SESSION,
            practitioner=world.practitioner,
            starts_at=starts,
            ends_at=starts + dt.timedelta(minutes=30),
        )
        client = signed_in(world.practitioner)
        chart_page = client.get(f"/patients/{patient.pk}/").content.decode()
        assert f"/courses/{course.pk}/status/?action=stop" in chart_page
        ask = client.get(f"/courses/{course.pk}/status/?action=stop").content.decode()
        assert "These visits of the course are still booked" in ask
        refused = client.post(
            f"/courses/{course.pk}/status/",
            {"action": "stop", "reason": " ", "cancel_visits": "on"},
        )
        assert "Say why the course is stopped." in refused.content.decode()
        done = client.post(
            f"/courses/{course.pk}/status/",
            {"action": "stop", "reason": "Pregnant since.", "cancel_visits": "on"},
        )
        assert done.status_code == 302
        course.refresh_from_db()
        visit.refresh_from_db()
        assert (course.status, course.stop_reason) == (Course.Status.STOPPED, "Pregnant since.")
        assert visit.status == Appointment.Status.CANCELLED
        assert "Stopped: Pregnant since." in client.get(f"/patients/{patient.pk}/").content.decode()

    def test_a_course_is_completed_from_the_chart(self, world: World, patient: Patient) -> None:
        course = ready_course(world, patient, ago(days=30))
        chart(world, course, ago(days=20))
        client = signed_in(world.practitioner)
        response = client.post(f"/courses/{course.pk}/status/", {"action": "complete"})
        assert response.status_code == 302
        course.refresh_from_db()
        assert course.status == Course.Status.COMPLETED
        assert chart(world, course, ago(days=1)).kind == "maintenance"


class SessionNotesTests:
    def test_notes_show_on_the_session_the_chart_and_the_timeline(
        self, world: World, patient: Patient
    ) -> None:
        course = ready_course(world, patient, ago(days=30))
        session = chart(world, course, ago(days=20), notes="Bruised easily on the left thigh.")
        client = signed_in(world.practitioner)
        assert (
            "Bruised easily on the left thigh."
            in client.get(f"/sessions/{session.pk}/").content.decode()
        )
        page = client.get(f"/patients/{patient.pk}/").content.decode()
        # Once in the course's session list and once in its timeline.
        assert page.count("Bruised easily on the left thigh.") >= 2


class RecallRaceTests:
    def test_parallel_recalls_of_one_lot_leave_exactly_one_standing(self, shared_db: str) -> None:
        """Four managers' screens recall the same lot at once, from two processes: one recall
        is written, the others get 409, and the lot keeps the winner's reason."""
        seeded = run_script(CHILD, shared_db, "seed", {})
        token = seeded["tokens"][str(seeded["practitioners"][1])]  # the clinic's manager

        def lots() -> dict[str, Any]:
            [found] = race_processes(
                CHILD,
                shared_db,
                [
                    {
                        "requests": [
                            {
                                "method": "GET",
                                "path": "/api/v1/lots?number=race_L100",
                                "body": {},
                                "token": token,
                            }
                        ]
                    }
                ],
            )
            result: dict[str, Any] = found[0]["json"][0]
            return result

        lot_id = lots()["id"]
        batches = [
            [
                {
                    "method": "POST",
                    "path": f"/api/v1/lots/{lot_id}/recall",
                    "body": {"reason": f"Notice {p}-{n}"},
                    "token": token,
                }
                for n in range(2)
            ]
            for p in range(2)
        ]
        outputs = race_processes(CHILD, shared_db, [{"requests": b} for b in batches])
        results = [r for output in outputs for r in output]
        assert sorted(r["status"] for r in results) == [200, 409, 409, 409], results
        winner = next(r for r in results if r["status"] == 200)["json"]["recall_reason"]
        for r in results:
            if r["status"] == 409:
                assert "already recalled" in r["json"]["detail"]
        assert lots()["recall_reason"] == winner


class AmendmentTests:
    def test_a_session_is_corrected_with_a_reason_and_the_original_stays(
        self, world: World, patient: Patient
    ) -> None:
        course = ready_course(world, patient, ago(days=30))
        session = chart(world, course, ago(days=20), notes="Left thigh bruised.")
        client = signed_in(world.practitioner)
        refused = client.post(
            f"/sessions/{session.pk}/amend/",
            {"field": "notes", "value": "Right thigh bruised.", "reason": " "},
        )
        assert "reason" in refused.context["form"].errors
        done = client.post(
            f"/sessions/{session.pk}/amend/",
            {"field": "notes", "value": "Right thigh bruised.", "reason": "Wrong side."},
        )
        assert done["Location"] == f"/sessions/{session.pk}/"
        session.refresh_from_db()
        assert session.notes == "Left thigh bruised."  # the charted row never changes
        page = client.get(f"/sessions/{session.pk}/").content.decode()
        assert "Right thigh bruised." in page
        assert "Notes amended" in page and "Wrong side." in page
        assert "Original: “Left thigh bruised.”" in page
        assert AuditEvent.objects.filter(
            object_type="courses.Session", object_id=str(session.pk), detail__amended="notes"
        ).exists()
        chart_page = client.get(f"/patients/{patient.pk}/").content.decode()
        assert "Notes (amended): Right thigh bruised." in chart_page
        assert "notes (amended): Right thigh bruised." in chart_page
        bad = client.post(
            f"/sessions/{session.pk}/amend/",
            {"field": "burning_minutes", "value": "ten", "reason": "Typo."},
        )
        assert "value" in bad.context["form"].errors
