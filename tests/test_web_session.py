"""Charting a session in the web app, and its aftercare."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core import mail
from django.utils import timezone

from mesoclinic.courses.models import Course, Session
from mesoclinic.formulary import stock
from mesoclinic.formulary.models import Lot, Product, Vial
from mesoclinic.patients.models import Patient
from tests.conftest import World, ago
from tests.test_web import course_with_sessions, signed_in


def ready(world: World, patient: Patient) -> Course:
    """A course with one session 8 days ago, so the next one may go ahead now."""
    return course_with_sessions(world, patient, 1, ago(days=8))


def post(world: World, course: Course, lot: str = "L100", **extra: Any) -> Any:
    when = timezone.now().astimezone(world.clinic.tz).strftime("%Y-%m-%dT%H:%M")
    data = {
        "performed_at": when,
        "stimulants_avoided": "on",
        "numbing_cream": "on",
        "area_thighs": "on",
        "lot_thighs": lot,
        "volume_thighs": "2.5",
        "technique_thighs": "nappage",
        **extra,
    }
    return signed_in(world.practitioner).post(f"/courses/{course.pk}/sessions/new/", data)


class ChartSessionTests:
    def test_a_safe_session_is_charted_and_opens_its_aftercare(
        self, world: World, patient: Patient
    ) -> None:
        course = ready(world, patient)
        response = post(world, course, lot="l100")  # lot numbers match however they are typed
        session = Session.objects.get(course=course, number=2)
        assert response["Location"] == f"/sessions/{session.pk}/"
        injection = session.injections.get()
        assert injection.lot == world.lot and str(injection.volume_ml) == "2.50"
        page = signed_in(world.practitioner).get(response["Location"]).content.decode()
        local = session.performed_at.astimezone(world.clinic.tz)
        until = (local + timezone.timedelta(hours=8)).strftime("%H:%M")
        assert f"No hot shower until {until}" in page
        assert "No makeup" not in page  # no facial area was treated

    def test_an_expired_lot_is_refused_and_the_page_says_why(
        self, world: World, patient: Patient
    ) -> None:
        course = ready(world, patient)
        response = post(world, course, lot="L-OLD")
        assert response.status_code == 409
        page = response.content.decode()
        assert "This session may not go ahead" in page
        assert "expired on" in page
        assert not Session.objects.filter(course=course, number=2).exists()

    def test_too_soon_may_be_overridden_with_a_reason(self, world: World, patient: Patient) -> None:
        course = course_with_sessions(world, patient, 1, ago(days=2))
        refused = post(world, course)
        assert refused.status_code == 409
        assert "may be overridden below" in refused.content.decode()
        response = post(
            world,
            course,
            override_codes="interval_too_short",
            override_reason="Travelling next week",
        )
        assert response.status_code == 302
        session = Session.objects.get(course=course, number=2)
        assert session.override_codes == ["interval_too_short"]
        assert session.overridden_by == world.practitioner

    def test_bad_rows_are_named_by_area(self, world: World, patient: Patient) -> None:
        course = ready(world, patient)
        page = post(world, course, lot="NOPE", volume_thighs="lots").content.decode()
        assert "Thighs: no lot &#x27;NOPE&#x27; in this clinic." in page
        assert "Thighs: the volume must be a number of mL between 0.01 and 50." in page
        nothing = post(world, course, area_thighs="").content.decode()
        assert "Tick at least one area on the map." in nothing

    def test_the_front_desk_and_another_clinic_cannot_chart(
        self, world: World, other: World, patient: Patient
    ) -> None:
        course = ready(world, patient)
        assert (
            signed_in(world.front_desk).get(f"/courses/{course.pk}/sessions/new/").status_code
            == 403
        )
        assert (
            signed_in(other.practitioner).get(f"/courses/{course.pk}/sessions/new/").status_code
            == 404
        )
        session = course.sessions.get()
        assert signed_in(other.practitioner).get(f"/sessions/{session.pk}/").status_code == 404

    def test_the_form_lists_the_reasons_before_the_practitioner_starts(
        self, world: World, patient: Patient
    ) -> None:
        course = course_with_sessions(world, patient, 1, ago(days=2))
        page = (
            signed_in(world.practitioner)
            .get(f"/courses/{course.pk}/sessions/new/")
            .content.decode()
        )
        assert "this protocol needs at least 5 days between sessions" in page

    def test_the_lot_fields_suggest_only_lots_usable_today(
        self, world: World, other: World, patient: Patient
    ) -> None:
        course = ready(world, patient)
        recalled = Lot.objects.create(
            product=world.product,
            lot_number="L-RECALLED",
            expires_on=world.lot.expires_on,
            recalled=True,
            recall_reason="Supplier notice.",
        )
        response = signed_in(world.practitioner).get(f"/courses/{course.pk}/sessions/new/")
        suggested = {lot.lot_number for lot in response.context["usable_lots"]}
        assert suggested == {world.lot.lot_number, world.lidocaine_lot.lot_number}
        page = response.content.decode()
        assert 'list="usable-lots"' in page
        for absent in (world.expired_lot, recalled, other.lot):
            assert f'<option value="{absent.lot_number}">' not in page


class AftercareTests:
    def test_aftercare_is_emailed_to_the_patient(self, world: World, patient: Patient) -> None:
        course = ready(world, patient)
        session = course.sessions.get()
        response = signed_in(world.practitioner).post(f"/sessions/{session.pk}/email/")
        assert response.status_code == 302
        [message] = mail.outbox
        assert message.to == ["ana@example.com"]
        assert "No hot shower until" in message.body
        assert world.clinic.name in message.subject

    def test_a_facial_session_adds_the_no_makeup_rule(self, world: World, patient: Patient) -> None:
        course = ready(world, patient)
        course.areas = ["thighs", "face"]
        course.save(update_fields=["areas"])
        when = timezone.now().astimezone(world.clinic.tz).strftime("%Y-%m-%dT%H:%M")
        response = signed_in(world.practitioner).post(
            f"/courses/{course.pk}/sessions/new/",
            {
                "performed_at": when,
                "stimulants_avoided": "on",
                "area_face": "on",
                "lot_face": "L100",
                "volume_face": "1",
                "technique_face": "papule",
            },
        )
        assert response.status_code == 302, response.content.decode()[:500]
        page = signed_in(world.practitioner).get(response["Location"]).content.decode()
        assert "No makeup on the treated face until" in page


def multi_dose(world: World) -> None:
    """The course's product comes in multi-dose vials (world.lot's product is this object)."""
    world.product.vial = Product.Vial.MULTI_DOSE
    world.product.save()


class VialChoiceTests:
    """Each area's row chooses the vial its lot is drawn from; left alone, charting chooses as
    it always has (formulary.stock.vial_plan)."""

    def test_left_alone_the_oldest_open_vial_in_its_time_is_used(
        self, world: World, patient: Patient
    ) -> None:
        multi_dose(world)
        course = ready(world, patient)
        [first] = Vial.objects.filter(lot=world.lot)  # opened for the allergy test
        stock.open_vial(world.lot, user=world.practitioner, at=ago(hours=2))
        assert post(world, course).status_code == 302
        assert Session.objects.get(course=course, number=2).injections.get().vial == first

    def test_the_form_lists_each_open_vial_and_draws_from_the_one_chosen(
        self, world: World, patient: Patient
    ) -> None:
        multi_dose(world)
        course = ready(world, patient)
        second = stock.open_vial(world.lot, user=world.practitioner, at=ago(hours=2))
        page = (
            signed_in(world.practitioner)
            .get(f"/courses/{course.pk}/sessions/new/")
            .content.decode()
        )
        assert '<optgroup label="Lipo mix lot L100">' in page
        # The allergy test drew 0.2 mL and session 1 drew 2 mL from vial 1.
        assert "Vial 1, 7.80 mL left, use by" in page
        assert "Vial 2, 10.00 mL left, use by" in page
        assert post(world, course, vial_thighs=str(second.pk)).status_code == 302
        assert Session.objects.get(course=course, number=2).injections.get().vial == second
        assert stock.left_in(second) == Decimal("7.50")

    def test_open_a_new_vial_opens_one_though_one_is_open(
        self, world: World, patient: Patient
    ) -> None:
        multi_dose(world)
        course = ready(world, patient)
        assert post(world, course, vial_thighs="new").status_code == 302
        injection = Session.objects.get(course=course, number=2).injections.get()
        assert injection.vial is not None and injection.vial.number == 2
        assert Vial.objects.filter(lot=world.lot).count() == 2

    def test_a_vial_past_its_time_is_refused_on_its_row_and_never_overridden(
        self, world: World, patient: Patient
    ) -> None:
        multi_dose(world)
        course = ready(world, patient)
        old = stock.open_vial(world.lot, user=world.practitioner, at=ago(days=30))
        page = (
            signed_in(world.practitioner)
            .get(f"/courses/{course.pk}/sessions/new/")
            .content.decode()
        )
        assert (
            f"Vial {old.number}, 10.00 mL left, past its beyond-use date: may not be used" in page
        )
        refused = post(world, course, vial_thighs=str(old.pk))
        assert refused.status_code == 409
        [line] = refused.context["lines"]
        [said] = line["errors"]["vial"]
        assert said.startswith(f"Thighs: {old.label} was opened at ")
        assert said.endswith("Throw it away and open a new vial. This can never be overridden.")
        assert "may be overridden below" not in refused.content.decode()
        overridden = post(
            world,
            course,
            vial_thighs=str(old.pk),
            override_codes="vial_beyond_use",
            override_reason="The only vial",
        )
        # The gate is not offered for an override; sent anyway, it is refused in words.
        assert 'value="vial_beyond_use"' not in page
        assert overridden.context["errors"] == [
            "This cannot be overridden for this session: Opened vial past its beyond-use date."
        ]
        assert not Session.objects.filter(course=course, number=2).exists()

    def test_a_single_dose_vial_of_another_patient_is_refused_on_its_row(
        self, world: World, patient: Patient
    ) -> None:
        course = ready(world, patient)
        other = Patient.objects.create(
            clinic=world.clinic,
            first_name="Bea",
            last_name="Other",
            date_of_birth=patient.date_of_birth,
        )
        theirs = stock.open_vial(world.lot, user=world.practitioner, at=ago(hours=3))
        Vial.objects.filter(pk=theirs.pk).update(patient=other)
        page = (
            signed_in(world.practitioner)
            .get(f"/courses/{course.pk}/sessions/new/")
            .content.decode()
        )
        assert "single-dose, used for another patient: may not be used" in page
        refused = post(world, course, vial_thighs=str(theirs.pk))
        assert refused.status_code == 409
        assert refused.context["lines"][0]["errors"]["vial"] == [
            f"Thighs: {theirs.label} is a single-dose vial already used for another patient. "
            "Open a new vial. This can never be overridden."
        ]
        assert not Session.objects.filter(course=course, number=2).exists()

    def test_a_vial_of_another_lot_or_clinic_or_a_closed_one_is_named_on_its_row(
        self, world: World, other: World, patient: Patient
    ) -> None:
        course = ready(world, patient)
        lido = stock.open_vial(world.lidocaine_lot, user=world.practitioner, at=ago(hours=3))
        theirs = stock.open_vial(other.lot, user=other.practitioner, at=ago(hours=3))
        closed = stock.open_vial(world.lot, user=world.practitioner, at=ago(hours=3))
        stock.close_vial(closed, "used_up", user=world.practitioner)
        for vial, said in (
            (lido, f"Thighs: {lido.label} is not of lot L100. Choose a vial of the lot injected"),
            (theirs, "Thighs: no such open vial in this clinic."),
            (closed, f"Thighs: {closed.label} is closed (used up)."),
            (None, "Thighs: no such open vial in this clinic."),
        ):
            r = post(world, course, vial_thighs=str(vial.pk) if vial else "vial two")
            [error] = r.context["lines"][0]["errors"]["vial"]
            assert error.startswith(said), error
            assert error in r.content.decode().replace("&#x27;", "'")
        assert not Session.objects.filter(course=course, number=2).exists()

    def test_two_areas_of_one_lot_draw_from_one_vial(self, world: World, patient: Patient) -> None:
        multi_dose(world)
        course = ready(world, patient)
        course.areas = ["thighs", "buttocks"]
        course.save(update_fields=["areas"])
        [first] = Vial.objects.filter(lot=world.lot)
        second = stock.open_vial(world.lot, user=world.practitioner, at=ago(hours=2))
        buttocks = {
            "area_buttocks": "on",
            "lot_buttocks": "L100",
            "volume_buttocks": "1",
            "technique_buttocks": "nappage",
        }
        r = post(world, course, vial_thighs=str(second.pk), vial_buttocks=str(first.pk), **buttocks)
        assert r.context["lines"][1]["errors"]["vial"] == [
            "Buttocks: every injection of lot L100 in a visit is drawn from one vial. Choose the "
            "same as for Thighs."
        ]
        # A row left alone follows the other row's choice.
        r = post(world, course, vial_thighs=str(second.pk), **buttocks)
        assert r.status_code == 302
        session = Session.objects.get(course=course, number=2)
        assert {i.vial_id for i in session.injections.all()} == {second.pk}
