"""Each clinic's public site (/site/<slug>/): protocol pages from the protocol data with their
sources and disagreements, regulatory status from the formulary, practitioners' licences, the
consented gallery, questions and answers, booking a consultation, and what search engines
read (sitemap, structured data, descriptions, canonical links)."""

from __future__ import annotations

import datetime as dt
import json
import re
from html.parser import HTMLParser
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent, Clinic, Membership, PractitionerLicence
from mesoclinic.formulary.models import Ingredient, Product, ProductIngredient
from mesoclinic.outcomes import photo_actions
from mesoclinic.patients.models import Patient
from mesoclinic.protocols.models import ClinicProtocol, do_edit_protocol
from mesoclinic.scheduling.actions import BookingRefused
from mesoclinic.scheduling.models import Appointment
from mesoclinic.site import booking, pages
from mesoclinic.site.actions import QUESTIONS_PER_HOUR
from mesoclinic.site.models import Question
from tests.conftest import World
from tests.scheduling_fixtures import NOW, at
from tests.test_photos import cellulite_course, grant, jpeg, photo_dir
from tests.test_reminders import Mailbox, mail, smtp_server
from tests.test_web import signed_in
from tests.test_web_outcomes import clinic_details

__all__ = ["mail", "photo_dir", "smtp_server"]  # fixtures, used by name


def text_of(html: str) -> str:
    """The words a person reads on the page: no tags, no scripts' data."""
    html = re.sub(r"<script.*?</script>", " ", html, flags=re.S)
    words = " ".join(re.sub(r"<[^>]+>", " ", html).split())
    return re.sub(r" ([:;,.)])", r"\1", words)


def site(clinic: Clinic, name: str = "home", *args: Any) -> str:
    return reverse(f"site:{name}", args=[clinic.slug, *args])


# Slug, colour and logo.


@pytest.mark.django_db
class ClinicAddressTests:
    def test_a_new_clinic_gets_its_address_from_its_name(self) -> None:
        first = Clinic.objects.create(name="Sunrise Skin & Body")
        second = Clinic.objects.create(name="Sunrise Skin & Body")
        assert first.slug == "sunrise-skin-body"
        assert second.slug == "sunrise-skin-body-2"

    def test_the_manager_changes_the_address_and_colour(self, world: World) -> None:
        client = signed_in(world.manager)
        data = clinic_details(world, slug="new-york-meso", brand_colour="#AA3366")
        assert client.post("/manage/clinic/", data).status_code == 302
        world.clinic.refresh_from_db()
        assert (world.clinic.slug, world.clinic.brand_colour) == ("new-york-meso", "#aa3366")
        assert Client().get("/site/new-york-meso/").status_code == 200
        css = Client().get("/site/new-york-meso/brand.css")
        assert css["Content-Type"].startswith("text/css")
        assert "--brand: #aa3366;" in css.content.decode()

    def test_a_bad_colour_logo_or_taken_address_is_refused_beside_the_field(
        self, world: World, other: World
    ) -> None:
        client = signed_in(world.manager)
        data = clinic_details(
            world,
            slug=other.clinic.slug,
            brand_colour="blue",
            logo_url="http://example.com/logo.png",
        )
        page = client.post("/manage/clinic/", data)
        assert page.status_code == 200
        html = page.content.decode()
        for field in ("slug", "brand_colour", "logo_url"):
            assert f'id="id_{field}_error"' in html, field
        assert "Enter a colour as # and six hexadecimal digits" in html
        assert "begins with https://" in html
        world.clinic.refresh_from_db()
        assert world.clinic.brand_colour == "#2f5d8a"

    def test_the_logo_is_shown_and_allowed_by_the_page_policy(self, world: World) -> None:
        Clinic.objects.filter(pk=world.clinic.pk).update(logo_url="https://cdn.example.com/l.png")
        world.clinic.refresh_from_db()
        page = Client().get(site(world.clinic))
        assert '<img src="https://cdn.example.com/l.png"' in page.content.decode()
        assert "img-src 'self' https://cdn.example.com" in page["Content-Security-Policy"]

    def test_an_unknown_clinic_is_a_404(self, db: Any) -> None:
        assert Client().get("/site/no-such-clinic/").status_code == 404


# Protocol pages.


@pytest.mark.django_db
class ProtocolPageTests:
    def test_the_home_page_lists_each_protocol_the_clinic_offers(self, world: World) -> None:
        html = Client().get(site(world.clinic)).content.decode()
        for p in ClinicProtocol.current_for_clinic(world.clinic):
            assert site(world.clinic, "protocol", p.key) in html
            assert p.name in html

    def test_every_page_leads_patients_to_sign_in_or_register(self, world: World) -> None:
        html = Client().get(site(world.clinic)).content.decode()
        assert 'href="/my/login/"' in html
        register = f"/my/register/{world.clinic.pk}/"
        assert f'href="{register}"' in html
        assert Client().get(register).status_code == 200

    def test_it_shows_both_sides_where_the_articles_disagree(self, world: World) -> None:
        page = Client().get(site(world.clinic, "protocol", "cellulite"))
        assert page.status_code == 200
        words = text_of(page.content.decode())
        assert words.count("What published clinic articles say") == 1
        # Sessions: 10–15 (three articles) against 15–20 (one), the clinic's choice marked.
        sessions = words[words.index("Number of sessions") : words.index("How often")]
        assert "10–15 sessions 3 articles" in sessions
        assert "15–20 sessions One article" in sessions
        chosen = sessions.index("15–20 sessions")
        assert "Demo Mesotherapy Clinic follows this." in sessions[chosen:]
        assert "follows this" not in sessions[: sessions.index("15–20 sessions")]
        assert "Treat Cellulite with Mesotherapy (Pasadena)" in sessions
        assert "Reducing Cellulite with Mesotherapy" in sessions
        # Results: not permanent, against permanent unless a large weight gain.
        lasting = words[words.index("How long results last") :]
        assert "Results are not permanent" in lasting
        assert "Results are permanent unless there is a large weight gain." in lasting
        assert "4 articles" in lasting and "One article" in lasting
        # The clinic's own reading where no article gives a figure, said so.
        soreness = words[words.index("Soreness: expected to last The articles disagree") :][:600]
        assert "5 days No article gives a figure" in soreness
        assert (
            "No article gives this figure: it is Demo Mesotherapy Clinic's own figure" in soreness
        )

    def test_the_clinic_choice_follows_its_own_protocol(self, world: World) -> None:
        current = ClinicProtocol.current(world.clinic, "cellulite")
        assert current is not None
        document = json.loads(json.dumps(current.document))
        document["sessions"]["choose"] = "general"
        do_edit_protocol(world.clinic, "cellulite", document, world.manager)
        words = text_of(Client().get(site(world.clinic, "protocol", "cellulite")).content.decode())
        sessions = words[words.index("Number of sessions") : words.index("How often")]
        assert sessions.index("follows this") < sessions.index("15–20 sessions")

    def test_every_statement_names_its_source_by_article_title(self, world: World) -> None:
        for p in ClinicProtocol.current_for_clinic(world.clinic):
            html = Client().get(site(world.clinic, "protocol", p.key)).content.decode()
            facts = re.findall(r'<div class="fact[^"]*">(.*?)</div>\s*(?=<div class="fact|</dl>)',
                               html, flags=re.S)  # fmt: skip
            assert facts, p.key
            for fact in facts:
                # An article by title, or, where the data has no source, the clinic's own.
                own = f"{world.clinic.name}'s own figure" in fact
                assert "<cite>" in fact or own, (p.key, text_of(fact))
                assert "No source" not in fact
            words = text_of(html)
            # Article titles, never file names, numbers or internal names.
            assert ".txt" not in words and "SPEC" not in words
            assert not re.search(r"(?<![\d.,])\b00[0-4]\b", words), p.key
            for part in pages.protocol_parts(p.document):
                assert part.statements, (p.key, part.title)

    def test_it_covers_areas_sessions_cadence_results_cost_side_effects_aftercare(
        self, world: World
    ) -> None:
        words = text_of(Client().get(site(world.clinic, "protocol", "cellulite")).content.decode())
        for heard in (
            "Areas",
            "Number of sessions",
            "How often every 7 or 14 days",
            "First visible results: after",
            "Price per session USD",
            # The clinic's 15–20 sessions at the protocol's USD 500–800 each.
            "A whole course USD 7,500–16,000 (15–20 sessions at USD 500–800 each)",
            "health insurance generally does not cover it",
            "Bruising: expected to last 7 days",
            "No hot shower until 8 h after the session",
            "Maintenance 6–8 months",
            "Not an expected effect: call the clinic at once.",
        ):
            assert heard in words, heard
        # The clinic's internal settings are not the visitor's business.
        assert "override" not in words.lower() and "Safety gates" not in words
        assert "CTCAE" not in words and "booked for" not in words

    def test_an_unknown_protocol_is_a_404(self, world: World) -> None:
        assert Client().get(site(world.clinic, "protocol", "tattoo_removal")).status_code == 404


# Regulatory status.

CLAIM = re.compile(r"(?i)\bFDA[\s-]*approv\w*|\bapproved by the FDA\b|\bapproved\b")


def unbacked_claims(words: str, backed: set[str]) -> list[str]:
    """Every "approved" in the text that is neither negated ("not FDA-approved") nor one the
    formulary backs (an ingredient named in `backed`, "FDA-approved for this use")."""
    wrong = []
    for m in CLAIM.finditer(words):
        before = words[max(0, m.start() - 12) : m.start()].lower()
        after = words[m.end() : m.end() + 20].lower()
        if "not " in before or before.rstrip().endswith("no"):
            continue
        if before.rstrip().endswith("its") and after.startswith(" is for another use"):
            continue  # "Its approval is for another use (...)", after "not FDA-approved".
        sentence_start = max(0, words.rfind("•", 0, m.start()))
        sentence = words[sentence_start : m.end() + 30]
        if after.startswith(" for this use") and any(name in sentence for name in backed):
            continue
        wrong.append(words[max(0, m.start() - 60) : m.end() + 60])
    return wrong


class ClaimScannerTests:
    def test_it_flags_an_unbacked_approval_and_lets_negations_pass(self) -> None:
        assert unbacked_claims("Caffeine: FDA approved for cellulite.", set())
        assert unbacked_claims("All our medications are approved.", set())
        assert not unbacked_claims("Biotin: Off-label here: not FDA-approved for this use.", set())
        assert not unbacked_claims("• Deoxycholic acid: FDA-approved for this use: x.", {"Deox"})
        assert unbacked_claims("• Deoxycholic acid: FDA-approved for this use: x.", set())


@pytest.mark.django_db
class RegulatoryStatusTests:
    def test_each_ingredient_shows_its_status_from_the_formulary(self, world: World) -> None:
        words = text_of(Client().get(site(world.clinic, "products")).content.decode())
        assert "Lipo mix" in words and "Lidocaine 1%" in words
        assert "Phosphatidylcholine" in words
        pc = words[words.index("Phosphatidylcholine") :]
        assert "Not FDA-approved." in pc[:80]
        lido = words[words.index("Lidocaine:") :]
        assert "Off-label here: not FDA-approved for this use." in lido[:120]
        assert "local anaesthesia by other routes" in lido[:250]
        assert unbacked_claims(words, set()) == []

    def test_an_approval_is_claimed_only_for_the_approved_use(self, world: World) -> None:
        product = Product.objects.create(
            clinic=world.clinic,
            name="Chin contour",
            supplier="Acme",
            vial=Product.Vial.SINGLE_DOSE,
            indications=["localized_fat"],
        )
        ProductIngredient.objects.create(
            product=product,
            ingredient=Ingredient.objects.get(clinic=None, key="deoxycholic_acid"),
            concentration=10,
        )
        # The clinic's fat protocol treats the arms and thighs too: off-label there.
        words = text_of(Client().get(site(world.clinic, "products")).content.decode())
        doc = words[words.index("Deoxycholic acid") :][:200]
        assert "Off-label here: not FDA-approved for this use." in doc
        # Once the clinic treats fat only under the chin, the approval holds for its use.
        current = ClinicProtocol.current(world.clinic, "localized_fat")
        assert current is not None
        document = json.loads(json.dumps(current.document))
        document["areas"]["value"] = ["chin"]
        do_edit_protocol(world.clinic, "localized_fat", document, world.manager)
        words = text_of(Client().get(site(world.clinic, "products")).content.decode())
        doc = words[words.index("Deoxycholic acid") :][:200]
        assert "FDA-approved for this use: Moderate-to-severe submental fat in adults" in doc


class DemoSiteCrawlTests:
    """Every public page of the demo clinic, found by following its links, is scanned for an
    approval claim that the formulary does not back."""

    def test_no_page_claims_an_approval_the_formulary_does_not_hold(
        self, demo_clinic: Clinic, photo_dir: Any
    ) -> None:
        client = Client()
        start = site(demo_clinic)
        seen: set[str] = set()
        queue = [start, site(demo_clinic, "sitemap")]
        found_claims: list[str] = []
        backed = {
            i.name
            for p in Product.objects.filter(clinic=demo_clinic)
            for i in p.ingredients.all()
            if i.fda_status == Ingredient.Status.APPROVED_THIS_USE
        }
        while queue:
            url = queue.pop()
            if url in seen:
                continue
            seen.add(url)
            r = client.get(url)
            assert r.status_code == 200, url
            if not r["Content-Type"].startswith(("text/html", "application/xml")):
                continue
            body = r.content.decode()
            links = re.findall(r'(?:href|src)="(/site/[^"#?]+)"', body)
            links += [u.split("testserver", 1)[1] for u in re.findall(r"<loc>([^<]+)</loc>", body)]
            queue += [u for u in links if u.startswith(start) and u not in seen]
            words = text_of(body.replace("<li>", "<li> • "))
            found_claims += [f"{url}: {c}" for c in unbacked_claims(words, backed)]
        assert len([u for u in seen if "/treatments/" in u]) == 4
        assert any("/gallery/" in u and u.rstrip("/").split("/")[-1].isdigit() for u in seen)
        assert found_claims == []


@pytest.fixture
def demo_clinic(db: Any, settings: Any, photo_dir: Any) -> Clinic:
    from mesoclinic import demo

    demo.load()
    return Clinic.objects.get(name=demo.CLINIC_NAME)


# Practitioners.


@pytest.mark.django_db
class PractitionerTests:
    def test_it_lists_licences_with_lookup_and_marks_an_expired_one(self, world: World) -> None:
        licence = PractitionerLicence.objects.get(user=world.practitioner)
        licence.lookup_url = "https://www.op.nysed.gov/verification-search"
        licence.save()
        today = timezone.now().astimezone(world.clinic.tz).date()
        PractitionerLicence.objects.filter(user=world.manager).update(
            expires_on=today - dt.timedelta(days=3)
        )
        words_html = Client().get(site(world.clinic, "practitioners")).content.decode()
        words = text_of(words_html)
        assert "Practitioner" in words
        assert "Physician (MD/DO), licence MD-practitioner, New York: valid until" in words
        assert 'href="https://www.op.nysed.gov/verification-search"' in words_html
        manager = words[words.index("MD-manager") :][:80]
        assert "expired on" in manager
        # Front desk holds no licence and is not listed.
        assert "Frontdesk" not in words

    def test_the_manager_sets_a_photo_that_the_page_shows_and_allows(self, world: World) -> None:
        member = Membership.objects.get(user=world.practitioner)
        page = f"/manage/staff/{member.pk}/photo/"
        client = signed_in(world.manager)
        # An address that is not https is refused, naming the field, and nothing changes.
        refused = client.post(page, {"photo_url": "http://example.com/maria.jpg"}, follow=True)
        assert "Photo address: The address must begin with https://." in refused.content.decode()
        member.refresh_from_db()
        assert member.photo_url == ""
        client.post(page, {"photo_url": "https://photos.example.org/maria.jpg"})
        member.refresh_from_db()
        assert member.photo_url == "https://photos.example.org/maria.jpg"
        assert AuditEvent.objects.filter(
            object_type="accounts.Membership", detail__photo_url=member.photo_url
        ).exists()
        response = Client().get(site(world.clinic, "practitioners"))
        html = response.content.decode()
        assert 'src="https://photos.example.org/maria.jpg"' in html
        assert f'alt="Photo of {world.practitioner.display_name}"' in html
        assert "img-src 'self' https://photos.example.org" in response["Content-Security-Policy"]
        # Only a manager sets it; cleared, it is gone from the page and its policy.
        assert signed_in(world.practitioner).post(page, {"photo_url": ""}).status_code == 403
        client.post(page, {"photo_url": ""})
        response = Client().get(site(world.clinic, "practitioners"))
        assert "photos.example.org" not in response.content.decode()
        assert "photos.example.org" not in response["Content-Security-Policy"]

    def test_a_renewed_licence_shows_only_the_new_one(self, world: World) -> None:
        from mesoclinic.accounts.staff import do_renew_licence

        old = PractitionerLicence.objects.get(user=world.practitioner)
        do_renew_licence(
            old,
            {
                "kind": old.kind,
                "number": "MD-NEW-1",
                "jurisdiction": "New York",
                "expires_on": old.expires_on + dt.timedelta(days=400),
            },
            user=world.manager,
        )
        words = text_of(Client().get(site(world.clinic, "practitioners")).content.decode())
        assert "MD-NEW-1" in words and "MD-practitioner" not in words

    def test_the_manager_records_the_lookup_page_with_the_licence(self, world: World) -> None:
        member = Membership.objects.get(user=world.practitioner)
        client = signed_in(world.manager)
        r = client.post(
            reverse("web:manage_add_licence", args=[member.pk]),
            {
                "kind": "nurse_practitioner",
                "number": "NP-77",
                "jurisdiction": "New Jersey",
                "expires_on": "2031-01-01",
                "lookup_url": "https://newjersey.mylicense.com/verification/",
            },
        )
        assert r.status_code == 302
        licence = PractitionerLicence.objects.get(number="NP-77")
        assert licence.lookup_url == "https://newjersey.mylicense.com/verification/"


# The gallery.


@pytest.mark.django_db
class GalleryTests:
    def _photos(self, world: World, patient: Patient) -> list[Any]:
        course = cellulite_course(world, patient)
        grant(patient, world.practitioner, decided_at=timezone.now() - dt.timedelta(days=90))
        first = photo_actions.do_upload_photos(
            course,
            area="thighs",
            images={"front": jpeg()},
            taken_at=timezone.now() - dt.timedelta(days=60),
            user=world.practitioner,
        )
        last = photo_actions.do_upload_photos(
            course, area="thighs", images={"front": jpeg()}, user=world.practitioner
        )
        return [*first, *last]

    def test_only_marketing_consented_photos_show_and_a_withdrawal_removes_them_at_once(
        self, world: World, patient: Patient, photo_dir: Any
    ) -> None:
        before, after = self._photos(world, patient)
        client = Client()
        gallery = site(world.clinic, "gallery")
        image = site(world.clinic, "gallery_image", before.pk)
        # Clinical consent alone: nothing public.
        assert image not in client.get(gallery).content.decode()
        assert client.get(image).status_code == 404
        grant(patient, world.practitioner, purpose="marketing")
        html = client.get(gallery).content.decode()
        assert image in html and site(world.clinic, "gallery_image", after.pk) in html
        served = client.get(image)
        assert served.status_code == 200 and served["Content-Type"] == "image/jpeg"
        assert "no-store" in served["Cache-Control"]
        # No names and no dates.
        words = text_of(html)
        assert "Lopez" not in words and "Ana" not in words
        assert not re.search(r"\b20\d\d\b", words)
        assert not re.search(r"photo-\d|\d{4}-\d\d-\d\d", served["Content-Disposition"])
        # The patient withdraws: the page and the image go at once.
        photo_actions.do_record_photo_consent(
            patient, purpose="marketing", granted=False, user=world.practitioner
        )
        assert image not in client.get(gallery).content.decode()
        assert client.get(image).status_code == 404

    def test_another_clinics_photo_is_a_404(
        self, world: World, other: World, patient: Patient, photo_dir: Any
    ) -> None:
        before, _ = self._photos(world, patient)
        grant(patient, world.practitioner, purpose="marketing")
        assert Client().get(site(other.clinic, "gallery_image", before.pk)).status_code == 404


# Questions and answers.


@pytest.mark.django_db
class QuestionTests:
    def test_a_visitor_asks_without_name_or_email(self, world: World) -> None:
        r = Client().post(site(world.clinic, "questions"), {"text": "Does it hurt much?"})
        assert r.status_code == 302
        question = Question.objects.get(clinic=world.clinic)
        assert (question.text, question.name, question.email) == ("Does it hurt much?", "", "")
        assert not question.published
        assert (
            "Does it hurt much?"
            not in Client().get(site(world.clinic, "questions")).content.decode()
        )

    def test_a_filled_trap_field_drops_the_question(self, world: World) -> None:
        data = {"text": "Cheap pills here", "website": "http://spam.example"}
        assert Client().post(site(world.clinic, "questions"), data).status_code == 302
        assert not Question.objects.exists()

    def test_too_many_questions_from_one_address_are_refused_beside_the_field(
        self, world: World
    ) -> None:
        client = Client()
        for n in range(QUESTIONS_PER_HOUR):
            assert (
                client.post(site(world.clinic, "questions"), {"text": f"Question {n}?"}).status_code
                == 302
            )
        r = client.post(site(world.clinic, "questions"), {"text": "One more question?"})
        assert r.status_code == 400
        assert 'id="id_text_error"' in r.content.decode()
        assert "Please try later" in r.content.decode()
        assert Question.objects.count() == QUESTIONS_PER_HOUR

    def test_a_bad_email_is_refused_beside_the_field(self, world: World) -> None:
        r = Client().post(site(world.clinic, "questions"), {"text": "Hello there", "email": "x"})
        assert r.status_code == 400 and 'id="id_email_error"' in r.content.decode()

    def test_staff_answer_and_publish(self, world: World) -> None:
        question = Question.objects.create(clinic=world.clinic, text="How long is a session?",
                                           name="Bea", email="bea@example.com")  # fmt: skip
        client = signed_in(world.practitioner)
        page = client.get(reverse("web:site_questions")).content.decode()
        assert "How long is a session?" in page and "bea@example.com" in page
        r = client.post(
            reverse("web:site_answer", args=[question.pk]),
            {f"q{question.pk}-answer": "About half an hour.", f"q{question.pk}-published": "on"},
        )
        assert r.status_code == 302
        public = Client().get(site(world.clinic, "questions")).content.decode()
        assert "How long is a session?" in public and "About half an hour." in public
        assert "Bea" not in text_of(public) and "bea@example.com" not in public
        # Unpublished again: gone from the site.
        client.post(
            reverse("web:site_answer", args=[question.pk]),
            {f"q{question.pk}-answer": "About half an hour."},
        )
        assert (
            "How long is a session?"
            not in Client().get(site(world.clinic, "questions")).content.decode()
        )

    def test_publishing_without_an_answer_is_refused_beside_the_field(self, world: World) -> None:
        question = Question.objects.create(clinic=world.clinic, text="Is it safe?")
        r = signed_in(world.manager).post(
            reverse("web:site_answer", args=[question.pk]), {f"q{question.pk}-published": "on"}
        )
        assert r.status_code == 400
        assert f'id="id_q{question.pk}-answer_error"' in r.content.decode()
        question.refresh_from_db()
        assert not question.published

    def test_front_desk_may_not_answer_and_another_clinic_gets_a_404(
        self, world: World, other: World
    ) -> None:
        question = Question.objects.create(clinic=world.clinic, text="Is it safe?")
        url = reverse("web:site_answer", args=[question.pk])
        data = {f"q{question.pk}-answer": "Yes.", f"q{question.pk}-published": "on"}
        assert signed_in(world.front_desk).post(url, data).status_code == 403
        assert signed_in(other.manager).post(url, data).status_code == 404
        assert (
            "Is it safe?"
            not in signed_in(other.manager).get(reverse("web:site_questions")).content.decode()
        )
        question.refresh_from_db()
        assert not question.published and question.answer == ""


# Booking a consultation.


def booking_data(slot: booking.Slot, **changes: str) -> dict[str, str]:
    return {
        "slot": slot.value,
        "first_name": "Carla",
        "last_name": "Mendes",
        "date_of_birth": "1988-03-04",
        "phone": "+1 212 555 0199",
        "email": "carla@example.com",
    } | changes


@pytest.mark.django_db
class BookingTests:
    def test_it_offers_free_slots_inside_working_hours(self, cal: World) -> None:
        slots = booking.free_slots(cal.clinic)
        assert slots
        for s in slots:
            local = s.starts_at.astimezone(cal.clinic.tz)
            assert local.weekday() < 5 and 9 <= local.hour < 18
            assert s.starts_at >= NOW + booking.NOTICE
        page = Client().get(site(cal.clinic, "book")).content.decode()
        assert slots[0].value in page

    def test_a_visitor_books_through_the_staff_booking_and_gets_an_email(
        self, cal: World, mail: Mailbox
    ) -> None:
        slot = booking.free_slots(cal.clinic)[0]
        client = Client()
        with self.captured_on_commit():
            r = client.post(site(cal.clinic, "book"), booking_data(slot))
        assert r.status_code == 302
        appointment = Appointment.objects.get(kind=Appointment.Kind.CONSULTATION)
        assert appointment.starts_at == slot.starts_at
        assert appointment.practitioner_id == slot.practitioner_id
        assert appointment.ends_at - appointment.starts_at == dt.timedelta(minutes=30)
        patient = appointment.patient
        assert (patient.first_name, patient.email, patient.date_of_birth) == (
            "Carla", "carla@example.com", dt.date(1988, 3, 4)
        )  # fmt: skip
        done = client.get(r["Location"])
        assert done.status_code == 200
        assert "Your consultation is booked" in done.content.decode()
        [received] = mail.wait_for(1)
        assert received.rcpt_tos == ["carla@example.com"]
        assert "Demo Mesotherapy Clinic" in received.text
        # The slot is no longer offered.
        assert slot not in booking.free_slots(cal.clinic)

    def test_a_taken_slot_is_refused_beside_the_time(self, cal: World, patient: Patient) -> None:
        slot = booking.free_slots(cal.clinic)[0]
        from mesoclinic.scheduling.actions import do_book

        practitioner = (
            cal.practitioner if slot.practitioner_id == cal.practitioner.pk else cal.manager
        )
        do_book(patient, kind="consultation", practitioner=practitioner,
                starts_at=slot.starts_at, user=cal.manager)  # fmt: skip
        with pytest.raises(BookingRefused):
            booking.do_book_consultation(cal.clinic, slot, address="127.0.0.1", details={
                "first_name": "Carla", "last_name": "Mendes", "date_of_birth": dt.date(1988, 3, 4),
                "email": "c@example.com", "phone": "+1 212 555 0199"})  # fmt: skip
        # Nothing half-written: no patient was registered for the refused booking.
        assert not Patient.objects.filter(last_name="Mendes").exists()
        r = Client().post(site(cal.clinic, "book"), booking_data(slot))
        assert r.status_code == 400
        assert 'id="id_slot_error"' in r.content.decode()

    def test_a_filled_trap_field_books_nothing(self, cal: World) -> None:
        slot = booking.free_slots(cal.clinic)[0]
        data = booking_data(slot, website="http://spam.example")
        assert Client().post(site(cal.clinic, "book"), data).status_code == 302
        assert not Appointment.objects.exists() and not Patient.objects.exists()

    def test_one_address_books_a_few_a_day_and_is_then_told_to_call(self, cal: World) -> None:
        cal.clinic.phone = "+1 212 555 0100"
        cal.clinic.save()
        client = Client()
        for n in range(booking.BOOKINGS_PER_DAY):
            slot = booking.free_slots(cal.clinic)[0]
            data = booking_data(slot, last_name=f"Mendes{n}", email=f"c{n}@example.com")
            assert client.post(site(cal.clinic, "book"), data).status_code == 302
        slot = booking.free_slots(cal.clinic)[0]
        r = client.post(site(cal.clinic, "book"), booking_data(slot, last_name="Extra"))
        assert r.status_code == 400
        html = r.content.decode()
        assert 'id="id_slot_error"' in html and "please call the clinic on +1 212 555 0100" in html
        assert Appointment.objects.count() == booking.BOOKINGS_PER_DAY
        assert not Patient.objects.filter(last_name="Extra").exists()
        # Another connection still books.
        other = Client(REMOTE_ADDR="203.0.113.9")
        assert other.post(site(cal.clinic, "book"), booking_data(slot)).status_code == 302

    def test_bad_details_are_refused_beside_each_field(self, cal: World) -> None:
        slot = booking.free_slots(cal.clinic)[0]
        r = Client().post(
            site(cal.clinic, "book"),
            booking_data(slot, date_of_birth="2090-01-01", email="nope", phone="call me"),
        )
        assert r.status_code == 400
        html = r.content.decode()
        for field in ("date_of_birth", "email", "phone"):
            assert f'id="id_{field}_error"' in html, field
        assert not Appointment.objects.exists()

    def test_it_finds_a_registered_patient_instead_of_a_duplicate(
        self, cal: World, patient: Patient
    ) -> None:
        slot = booking.free_slots(cal.clinic)[0]
        data = booking_data(slot, first_name="ana", last_name="LOPEZ", date_of_birth="1990-05-17",
                            email="ana@example.com")  # fmt: skip
        assert Client().post(site(cal.clinic, "book"), data).status_code == 302
        assert Appointment.objects.get().patient_id == patient.pk
        assert Patient.objects.count() == 1

    def test_no_slot_outside_the_hours(self, cal: World) -> None:
        # Saturday 28 Nov at 10:00: the clinic is open but no practitioner works.
        slot = booking.Slot(cal.practitioner.pk, at(10, day=dt.date(2026, 11, 28)))
        assert slot not in booking.free_slots(cal.clinic)

    @staticmethod
    def captured_on_commit() -> Any:
        from django.test import TestCase

        return TestCase.captureOnCommitCallbacks(execute=True)


# What search engines read.


@pytest.mark.django_db
class IndexingTests:
    def test_the_sitemap_lists_every_page_and_protocol(self, world: World) -> None:
        r = Client().get(site(world.clinic, "sitemap"))
        assert r["Content-Type"] == "application/xml"
        body = r.content.decode()
        for p in ClinicProtocol.current_for_clinic(world.clinic):
            assert f"http://testserver{site(world.clinic, 'protocol', p.key)}" in body
        assert f"<loc>http://testserver{site(world.clinic, 'book')}</loc>" in body

    def test_pages_carry_structured_data_description_and_canonical_link(self, world: World) -> None:
        html = Client().get(site(world.clinic)).content.decode()
        data = self._json_ld(html)
        assert data["@type"] == "MedicalClinic" and data["name"] == world.clinic.name
        assert {s["@type"] for s in data["availableService"]} == {"MedicalProcedure"}
        assert f'<link rel="canonical" href="http://testserver{site(world.clinic)}">' in html
        assert '<meta name="description" content="' in html
        page = Client().get(site(world.clinic, "protocol", "cellulite")).content.decode()
        procedure = self._json_ld(page)
        assert procedure["@type"] == "MedicalProcedure"
        assert procedure["provider"]["@type"] == "MedicalClinic"
        assert "Thighs" in procedure["bodyLocation"]
        assert 'content="Cellulite' in page

    def test_pages_work_without_javascript(self, world: World) -> None:
        for name in ("home", "products", "practitioners", "gallery", "questions"):
            html = Client().get(site(world.clinic, name)).content.decode()
            scripts = re.findall(r"<script([^>]*)>", html)
            assert scripts == [' type="application/ld+json"'], name

    @staticmethod
    def _json_ld(html: str) -> dict[str, Any]:
        class Finder(HTMLParser):
            found = ""
            inside = False

            def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
                self.inside = tag == "script" and ("type", "application/ld+json") in attrs

            def handle_data(self, data: str) -> None:
                if self.inside:
                    self.found += data

        finder = Finder()
        finder.feed(html)
        loaded: dict[str, Any] = json.loads(finder.found)
        return loaded


class BookingRaceTests:
    """Visitors racing for one consultation time, through the whole stack, in threads of two
    processes: exactly one is booked, the others are told the time was taken, and no refused
    visitor is left registered. On PostgreSQL (DATABASE_URL) the exclusion constraints decide;
    on SQLite, the booking transaction's write lock."""

    def test_one_of_six_visitors_gets_the_time(self, shared_db: str) -> None:
        import sys

        from tests.scheduling_fixtures import race_processes, run_script

        child = [sys.executable, "-m", "tests.booking_race_child"]
        seeded = run_script(child, shared_db, "seed", {})
        slot = run_script(child, shared_db, "slot", {"clinic": seeded["clinic"]})
        path = f"/site/{slot['slug']}/book/"
        requests = [
            {
                "method": "POST",
                "path": path,
                "form": True,
                "body": {
                    "slot": slot["value"],
                    "first_name": f"Guest{n}",
                    "last_name": f"Visitor{n}",
                    "date_of_birth": "1988-03-04",
                    "phone": "+1 212 555 0199",
                    "email": f"guest{n}@example.com",
                },
            }
            for n in range(6)
        ]
        outputs = race_processes(
            child, shared_db, [{"requests": requests[0::2]}, {"requests": requests[1::2]}]
        )
        statuses = sorted(r["status"] for output in outputs for r in output)
        assert statuses == [302, 400, 400, 400, 400, 400], outputs
        for output in outputs:
            for r in output:
                if r["status"] == 400:
                    assert "That time was taken a moment ago" in r["text"] or (
                        "That time is no longer free" in r["text"]
                    )
        counted = run_script(child, shared_db, "consultations", {})
        assert counted == {"consultations": 1, "visitors": 1}
