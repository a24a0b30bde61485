"""The chart's header, sections and next action; forms that keep what was typed; the consent
read in the page; the aftercare's phone number; and Today, a practitioner's own day first."""

from __future__ import annotations

import datetime as dt
import io
import re
from pathlib import Path

from django.core import mail
from django.test import Client
from django.utils import timezone
from pypdf import PdfReader

from mesoclinic.courses import actions
from mesoclinic.courses.models import Course, FollowUp
from mesoclinic.formulary.models import Ingredient
from mesoclinic.patients.models import Allergy, Patient
from mesoclinic.safety.models import AdverseEvent, SafetyAlert
from mesoclinic.scheduling.models import Appointment
from tests.conftest import World, ago
from tests.test_web import course_with_sessions, signed_in
from tests.test_web_chart import answers, local, plan

CSS = Path(__file__).resolve().parent.parent / "mesoclinic" / "static" / "css" / "app.css"


def chart(client: Client, patient: Patient) -> str:
    response = client.get(f"/patients/{patient.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def header(page: str) -> str:
    return page.split('<header class="chart-head"')[1].split("</header>")[0]


def primary(page: str) -> str:
    found = re.search(r'class="button[^"]*primary-action" href="[^"]*">([^<]+)</a>', page)
    return found.group(1) if found else ""


def css_rule(selector: str) -> str:
    text = CSS.read_text()
    return text[text.index(selector + " {") :].split("}")[0]


class ChartHeaderTests:
    def test_the_header_stays_on_screen_and_names_each_section(
        self, world: World, patient: Patient
    ) -> None:
        page = chart(signed_in(world.practitioner), patient)
        assert "position: sticky" in css_rule(".chart-head")
        nav = header(page).split('aria-label="Sections of the chart"')[1]
        for section in ("overview", "sessions", "photos", "progress", "safety", "documents"):
            assert f'href="#{section}"' in nav
            assert f'id="{section}"' in page

    def test_it_shows_allergies_hard_stops_cautions_and_the_next_visit(
        self, world: World, patient: Patient
    ) -> None:
        client = signed_in(world.practitioner)
        empty = header(chart(client, patient))
        assert "none recorded" in empty and "not screened yet" in empty
        assert "none booked" in empty
        Allergy.objects.create(
            patient=patient, ingredient=Ingredient.objects.get(key="lidocaine", clinic=None)
        )
        client.post(
            f"/patients/{patient.pk}/screening/",
            answers(world, pregnant=True, anticoagulants_or_bleeding_disorder=True),
        )
        when = ago(days=-3)
        Appointment.objects.create(
            clinic=world.clinic,
            patient=patient,
            kind=Appointment.Kind.SESSION,
            practitioner=world.practitioner,
            starts_at=when,
            ends_at=when + dt.timedelta(minutes=45),
        )
        head = header(chart(client, patient))
        assert "Lidocaine" in head
        assert "Hard stop:" in head and "Are you pregnant" in head
        assert "Caution:" in head and "blood thinners" in head
        assert "not screened yet" not in head
        local_when = when.astimezone(world.clinic.tz)
        assert f"{local_when:%a} {local_when.day} {local_when:%b %Y, %H:%M}" in head
        assert "session with" in head

    def test_it_shows_an_active_infection_an_open_event_and_an_urgent_follow_up(
        self, world: World, patient: Patient
    ) -> None:
        course = course_with_sessions(world, patient, 1, ago(days=20))
        session = course.sessions.get()
        for kind in (AdverseEvent.Kind.MYCOBACTERIAL, AdverseEvent.Kind.NECROSIS):
            AdverseEvent.objects.create(
                clinic=world.clinic,
                patient=patient,
                course=course,
                session=session,
                kind=kind,
                ctcae_grade=2,
                onset_at=session.performed_at + dt.timedelta(days=3),
            )
        FollowUp.objects.create(
            clinic=world.clinic,
            session=session,
            priority=FollowUp.Priority.URGENT,
            reason="A hard lump at an injection site",
        )
        head = header(chart(signed_in(world.front_desk), patient))
        assert "Active infection:" in head and "mycobacterial infection, grade 2" in head
        assert "Open serious adverse event:" in head and "Skin necrosis, grade 2" in head
        assert "Urgent follow-up:" in head and "A hard lump at an injection site" in head

    def test_a_recovered_event_and_a_closed_follow_up_leave_the_header(
        self, world: World, patient: Patient
    ) -> None:
        course = course_with_sessions(world, patient, 1, ago(days=20))
        session = course.sessions.get()
        AdverseEvent.objects.create(
            clinic=world.clinic,
            patient=patient,
            course=course,
            session=session,
            kind=AdverseEvent.Kind.INFECTION,
            ctcae_grade=2,
            onset_at=session.performed_at + dt.timedelta(days=3),
            outcome=AdverseEvent.Outcome.RECOVERED,
        )
        follow_up = FollowUp.objects.create(
            clinic=world.clinic, session=session, priority="urgent", reason="Call back"
        )
        actions.do_close_follow_up(follow_up, "Called; all well.", world.practitioner)
        head = header(chart(signed_in(world.practitioner), patient))
        assert "Active infection" not in head and "Urgent follow-up" not in head


class PrimaryActionTests:
    def test_it_follows_the_blockers_in_order_and_take_consent_goes_once_signed(
        self, world: World, patient: Patient
    ) -> None:
        client = signed_in(world.practitioner)
        plan(client, patient)
        course = Course.objects.get()
        assert primary(chart(client, patient)) == "Screen the patient"
        client.post(f"/patients/{patient.pk}/screening/", answers(world))
        page = chart(client, patient)
        assert primary(page) == "Take consent"
        assert "Take consent for this course" not in page
        client.post(
            f"/patients/{patient.pk}/courses/{course.pk}/consent/", {"signed_name": "Ana Lopez"}
        )
        page = chart(client, patient)
        assert primary(page) == "Give the allergy test"
        assert "Take consent" not in page
        client.post(
            f"/courses/{course.pk}/allergy-tests/",
            {
                "given_at": local(ago(hours=2), world),
                "lot_1": "L100",
                "site_1": "left forearm",
                "lot_2": "LD1",
                "site_2": "right forearm",
            },
        )
        assert primary(chart(client, patient)) == "Read the allergy test"

    def test_with_nothing_in_the_way_it_charts_the_next_session_by_number(
        self, world: World, patient: Patient
    ) -> None:
        course_with_sessions(world, patient, 2, ago(days=20))
        page = chart(signed_in(world.practitioner), patient)
        assert "Nothing stands in the way" in page
        assert primary(page) == "Chart session 3"

    def test_a_hard_stop_asks_for_the_screening_not_the_session(
        self, world: World, patient: Patient
    ) -> None:
        course_with_sessions(world, patient, 1, ago(days=20))
        client = signed_in(world.practitioner)
        client.post(f"/patients/{patient.pk}/screening/", answers(world, pregnant=True))
        page = chart(client, patient)
        assert primary(page) == "Review the screening"
        assert "Chart session" not in page

    def test_the_front_desk_gets_no_clinical_buttons(self, world: World, patient: Patient) -> None:
        course_with_sessions(world, patient, 1, ago(days=20))
        page = chart(signed_in(world.front_desk), patient)
        assert primary(page) == ""


class FormsKeepValuesTests:
    def test_the_allergy_test_keeps_its_lots_and_sites_with_the_error_beside_the_lot(
        self, world: World, patient: Patient
    ) -> None:
        client = signed_in(world.practitioner)
        plan(client, patient)
        course = Course.objects.get()
        response = client.post(
            f"/courses/{course.pk}/allergy-tests/",
            {
                "given_at": local(ago(hours=1), world),
                "lot_1": "L100",
                "site_1": "left forearm",
                "lot_2": "NOPE-2",
                "site_2": "right forearm",
            },
        )
        assert response.status_code == 400
        page = response.content.decode()
        assert 'value="L100"' in page and 'value="NOPE-2"' in page
        assert 'value="left forearm"' in page and 'value="right forearm"' in page
        second = page.split('id="id_lot_2"')[1].split("</div>\n</div>")[0]
        assert "No lot with this number in the clinic." in second
        first = page.split('id="id_lot_1"')[1].split('id="id_lot_2"')[0]
        assert "No lot with this number" not in first

    def test_the_reading_keeps_its_answer_after_an_error(
        self, world: World, patient: Patient
    ) -> None:
        client = signed_in(world.practitioner)
        plan(client, patient)
        course = Course.objects.get()
        client.post(
            f"/courses/{course.pk}/allergy-tests/",
            {
                "given_at": local(ago(hours=30), world),
                "lot_1": "L100",
                "site_1": "arm",
                "lot_2": "LD1",
                "site_2": "arm",
            },
        )
        test = course.allergy_tests.get()
        response = client.post(
            f"/allergy-tests/{test.pk}/reading/", {"read_at": "", "result": "local"}
        )
        assert response.status_code == 400
        page = response.content.decode()
        assert re.search(r'value="local"[^>]*checked', page)
        field = page.split('for="id_read_at"')[1].split("</div>\n</div>")[0]
        assert "errorlist" in field

    def test_the_session_form_keeps_each_areas_technique_and_puts_errors_beside_fields(
        self, world: World, patient: Patient
    ) -> None:
        course = course_with_sessions(world, patient, 1, ago(days=8))
        course.areas = ["thighs", "abdomen"]
        course.save(update_fields=["areas"])
        response = signed_in(world.practitioner).post(
            f"/courses/{course.pk}/sessions/new/",
            {
                "performed_at": local(ago(minutes=5), world),
                "stimulants_avoided": "on",
                "area_thighs": "on",
                "lot_thighs": "L100",
                "volume_thighs": "lots",
                "technique_thighs": "papule",
                "area_abdomen": "on",
                "lot_abdomen": "NOPE",
                "volume_abdomen": "1.5",
                "technique_abdomen": "linear",
                "override_codes": ["interval_too_short"],
                "override_reason": "Asked by the doctor",
            },
        )
        page = response.content.decode()
        assert re.search(r'<option value="papule" selected>', page)
        assert re.search(r'<option value="linear" selected>', page)
        assert 'value="L100"' in page and 'value="1.5"' in page and 'value="lots"' in page
        volume = page.split('id="volume_thighs"')[1].split("</td>")[0]
        assert "the volume must be a number of mL" in volume
        lot = page.split('id="lot_abdomen"')[1].split("</td>")[0]
        assert "no lot &#x27;NOPE&#x27; in this clinic" in lot
        assert 'value="interval_too_short" checked' in page
        assert "Asked by the doctor</textarea>" in page


class ConsentPageTests:
    def test_the_text_reads_in_the_page_and_the_signature_comes_after_it(
        self, world: World, patient: Patient
    ) -> None:
        client = signed_in(world.practitioner)
        plan(client, patient)
        course = Course.objects.get()
        page = client.get(f"/patients/{patient.pk}/courses/{course.pk}/consent/").content.decode()
        assert "<pre" not in page
        text_at = page.index('class="consent-text"')
        assert text_at < page.index("End of the consent text.") < page.index('name="signed_name"')
        # The stored text is wrapped at a fixed width; on the page a paragraph flows whole.
        assert "middle layer of the skin, usually 10 to 20 sessions" in page
        rule = css_rule(".consent-text")
        assert "max-height" not in rule and "overflow: auto" not in rule


class AftercarePhoneTests:
    def test_the_page_the_email_and_the_pdf_give_the_clinics_phone(
        self, world: World, patient: Patient
    ) -> None:
        world.clinic.phone = "+1 212 555 0199"
        world.clinic.save(update_fields=["phone"])
        course = course_with_sessions(world, patient, 1, ago(days=1))
        session = course.sessions.get()
        client = signed_in(world.practitioner)
        sentence = f"If something worries you, call {world.clinic.name} on +1 212 555 0199."
        page = client.get(f"/sessions/{session.pk}/").content.decode()
        assert sentence in page and 'href="tel:+12125550199"' in page
        client.post(f"/sessions/{session.pk}/email/")
        assert sentence in mail.outbox[-1].body
        pdf = client.get(f"/sessions/{session.pk}/aftercare.pdf")
        assert pdf.status_code == 200
        text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)
        assert sentence in " ".join(text.split())

    def test_without_a_phone_the_sentence_still_names_the_clinic(
        self, world: World, patient: Patient
    ) -> None:
        course = course_with_sessions(world, patient, 1, ago(days=1))
        session = course.sessions.get()
        page = signed_in(world.practitioner).get(f"/sessions/{session.pk}/").content.decode()
        assert f"If something worries you, call {world.clinic.name}." in page


class TodayTests:
    def test_a_practitioner_sees_their_own_day_first(self, world: World, patient: Patient) -> None:
        # Noon on the clinic's today, whatever the hour of the run.
        local_today = timezone.now().astimezone(world.clinic.tz).date()
        start = dt.datetime.combine(local_today, dt.time(12), tzinfo=world.clinic.tz)
        Appointment.objects.create(
            clinic=world.clinic,
            patient=patient,
            kind=Appointment.Kind.SESSION,
            practitioner=world.practitioner,
            starts_at=start,
            ends_at=start + dt.timedelta(minutes=45),
        )
        page = signed_in(world.practitioner).get("/today/").content.decode()
        grid = page.split('<div class="grid">')[1]
        assert grid.index('id="h-my-day"') < grid.index('id="h-visits"')
        mine = grid.split('id="h-my-day"')[1].split("</section>")[0]
        assert "Ana Lopez" in mine
        # The front desk has no day of its own.
        desk = signed_in(world.front_desk).get("/today/").content.decode()
        assert 'id="h-my-day"' not in desk

    def test_due_patients_and_follow_ups_carry_their_actions(
        self, world: World, patient: Patient
    ) -> None:
        course = course_with_sessions(world, patient, 1, ago(days=8))
        follow_up = FollowUp.objects.create(
            clinic=world.clinic,
            session=course.sessions.get(),
            priority=FollowUp.Priority.URGENT,
            reason="Swelling reported by phone",
        )
        client = signed_in(world.practitioner)
        page = client.get("/today/").content.decode()
        due = page.split('id="h-due"')[1].split("</section>")[0]
        assert f"/calendar/book/?patient={patient.pk}" in due
        assert 'href="tel:+12125550101"' in due
        row = page.split(f'id="follow-up-{follow_up.pk}"')[1].split("</tr>")[0]
        assert 'href="tel:+12125550101"' in row
        assert f'action="/follow-ups/{follow_up.pk}/close/"' in row
        response = client.post(
            f"/follow-ups/{follow_up.pk}/close/",
            {"outcome": "Called; settling.", "resolution": "improving", "next": "today"},
        )
        assert response["Location"] == "/today/"
        follow_up.refresh_from_db()
        assert follow_up.status == FollowUp.Status.DONE

    def test_a_safety_alert_reads_in_words_with_its_statistic_underneath(
        self, world: World
    ) -> None:
        SafetyAlert.objects.create(
            clinic=world.clinic,
            method=SafetyAlert.Method.CUSUM,
            subject=SafetyAlert.Subject.LOT,
            lot=world.lot,
            subject_key=f"lot:{world.lot.pk}",
            sessions=20,
            adverse_sessions=5,
            baseline_rate=0.02,
            statistic=4.12,
            threshold=3.85,
            message="internal",
        )
        page = signed_in(world.manager).get("/today/").content.decode()
        card = page.split('id="h-safety-alerts"')[1].split("</section>")[0]
        words = f"Lot {world.lot.lot_number} of {world.lot.product.name}: more adverse events"
        assert words in card
        assert "5 of 20 sessions (25 %) were followed by an adverse event" in card
        assert "the clinic&#x27;s usual rate is 2.0 %" in card or "usual rate is 2 %" in card
        assert card.index("were followed") < card.index("Bernoulli CUSUM 4.12")
