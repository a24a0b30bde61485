"""Charting a session in the web app, and its aftercare."""

from __future__ import annotations

from typing import Any

from django.core import mail
from django.utils import timezone

from mesoclinic.courses.models import Course, Session
from mesoclinic.formulary.models import Lot
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
