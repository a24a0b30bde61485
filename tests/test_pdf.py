"""Printable documents as PDF: the course plan and quote, a signed consent and the aftercare
sheet. Each PDF is read back with pypdf and checked against the records it prints."""

from __future__ import annotations

import datetime as dt
import io
import struct
import zlib
from typing import Any

import pytest
from django.test import Client
from pypdf import PdfReader

from mesoclinic.accounts.models import AuditEvent, User
from mesoclinic.courses.models import Course, Session
from mesoclinic.patients.actions import do_sign_consent
from mesoclinic.patients.models import Consent, Patient
from mesoclinic.web import pdf
from tests.conftest import World
from tests.test_web import course_with_sessions, signed_in

# 15:00 UTC on Tuesday 4 March 2025 is 10:00 in New York (EST), the `world` clinic's zone.
FIRST = dt.datetime(2025, 3, 4, 15, 0, tzinfo=dt.UTC)


def read(response: Any) -> PdfReader:
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"] == "application/pdf"
    return PdfReader(io.BytesIO(response.content))


def words(reader: PdfReader) -> str:
    """The PDF's text with every run of whitespace made one space, so wrapped lines compare
    equal to the stored text."""
    return " ".join(" ".join((page.extract_text() or "").split()) for page in reader.pages)


def flat(text: str) -> str:
    return " ".join(text.split())


def png(width: int, height: int) -> bytes:
    """A small grey PNG made with the standard library, as a signature pad's canvas would give."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x40" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def sign(world: World, patient: Patient, **changes: Any) -> Consent:
    fields: dict[str, Any] = {
        "products": [world.product],
        "signed_name": "Ana Lopez",
        "method": "typed",
        "indication": "cellulite",
        "areas": ["thighs"],
        "user": world.practitioner,
        "signed_at": FIRST,
    }
    fields.update(changes)
    return do_sign_consent(patient, **fields)


@pytest.fixture
def course(world: World, patient: Patient) -> Course:
    return course_with_sessions(world, patient, 2, FIRST)


@pytest.fixture
def session(course: Course) -> Session:
    return course.sessions.get(number=1)


def urls(course: Course, session: Session) -> list[str]:
    consent = Consent.objects.filter(patient=course.patient).first()
    assert consent is not None
    return [
        f"/courses/{course.pk}/plan.pdf",
        f"/consents/{consent.pk}.pdf",
        f"/sessions/{session.pk}/aftercare.pdf",
    ]


class CoursePlanPdfTests:
    def test_it_prints_the_quote_and_the_insurance_notice(
        self, world: World, course: Course
    ) -> None:
        plan: Any = course.plan()
        # The cellulite protocol's price (seed 002) for the course's 15 sessions.
        cost = plan["cost"]
        assert (cost["per_session_min"], cost["per_session_max"], cost["sessions"]) == (
            500,
            800,
            15,
        )
        text = words(read(signed_in(world.practitioner).get(f"/courses/{course.pk}/plan.pdf")))
        assert "Per session USD 500 USD 800" in text
        assert "Course of 15 sessions USD 7,500 USD 12,000" in text
        assert flat(plan["insurance"]["text"]) in text
        assert "Liposuction, for comparison: up to USD 10,000" in text

    def test_it_names_the_patient_protocol_areas_and_cadence(
        self, world: World, course: Course
    ) -> None:
        text = words(read(signed_in(world.practitioner).get(f"/courses/{course.pk}/plan.pdf")))
        assert "for Ana Lopez" in text
        assert f"{course.protocol.name} (protocol version {course.protocol.version})" in text
        assert "Areas Thighs" in text
        assert "Every 7 days (a session may fall 2 days early or late)" in text
        assert "2 of 15 sessions done" in text

    def test_each_milestone_shows_its_sources_and_flags(self, world: World, course: Course) -> None:
        text = words(read(signed_in(world.practitioner).get(f"/courses/{course.pk}/plan.pdf")))
        milestones: Any = course.plan()["milestones"]
        assert milestones
        for m in milestones:
            assert flat(m["label"]) in text
            for source in m["sources"]:
                assert flat(source["label"]) in text
        single = [m for m in milestones if m["single_source"]]
        assert single and "(a single source)" in text
        assert "First visible results: after 2–3 sessions" in text

    def test_it_lists_every_planned_session_window(self, world: World, course: Course) -> None:
        text = words(read(signed_in(world.practitioner).get(f"/courses/{course.pk}/plan.pdf")))
        windows: Any = course.plan()["sessions"]
        assert len(windows) == 15
        # Session 1 is due on the course's first day; session 15 fourteen weeks later.
        assert "1 Tue 4 Mar 2025 Tue 4 Mar 2025 Thu 6 Mar 2025" in text
        assert "15 Sun 8 Jun 2025 Tue 10 Jun 2025 Thu 12 Jun 2025" in text

    def test_the_front_desk_may_print_the_quote(self, world: World, course: Course) -> None:
        response = signed_in(world.front_desk).get(f"/courses/{course.pk}/plan.pdf")
        assert "USD 7,500" in words(read(response))
        assert response["Content-Disposition"] == f'inline; filename="course-{course.pk}-plan.pdf"'

    def test_the_chart_links_to_the_plan_and_each_consent(
        self, world: World, course: Course
    ) -> None:
        page = signed_in(world.practitioner).get(f"/patients/{course.patient_id}/")
        html = page.content.decode()
        assert f'href="/courses/{course.pk}/plan.pdf"' in html
        for consent in course.patient.consents.all():
            assert f'href="/consents/{consent.pk}.pdf"' in html


class ConsentPdfTests:
    def test_it_prints_the_signed_text_the_name_the_version_and_the_hash(
        self, world: World, patient: Patient
    ) -> None:
        consent = sign(world, patient)
        reader = read(signed_in(world.practitioner).get(f"/consents/{consent.pk}.pdf"))
        text = words(reader)
        assert "Signed by Ana Lopez" in text
        assert f"Consent text Version {consent.template.version}" in text
        assert f"Text version {consent.template.version}" in text
        assert consent.text_sha256 in text
        assert "It matches the text printed above." in text
        # The regulatory section as the formulary wrote it, product by product.
        assert f"{world.product.name} (supplier: Acme Pharma)" in text
        assert "No mesotherapy mixture is approved by the FDA." in text
        assert "Method Typed name on screen" in text
        assert "the typed name below is the signature" in text
        assert not any(page.images for page in reader.pages)

    def test_every_line_of_the_stored_text_is_printed(self, world: World, patient: Patient) -> None:
        consent = sign(world, patient)
        text = words(read(signed_in(world.practitioner).get(f"/consents/{consent.pk}.pdf")))
        for line in consent.text.splitlines():
            line = line.strip().removeprefix("- ")
            if line:
                assert flat(line) in text, line

    def test_the_time_is_the_clinics_local_time(self, world: World, patient: Patient) -> None:
        consent = sign(world, patient)
        text = words(read(signed_in(world.practitioner).get(f"/consents/{consent.pk}.pdf")))
        assert "Signed at Tue 4 Mar 2025, 10:00 EST (America/New_York)" in text

    def test_a_drawn_signature_is_drawn_from_its_path(self, world: World, patient: Patient) -> None:
        # What signature.js stores: two strokes, of two lines and one line.
        consent = sign(
            world, patient, method="drawn", signature="M10 10 L50 40 L90 12 M20 60 L80 62"
        )
        reader = read(signed_in(world.practitioner).get(f"/consents/{consent.pk}.pdf"))
        page = next(p for p in reader.pages if "Signed by" in (p.extract_text() or ""))
        resources: Any = page["/Resources"]
        xobjects = resources["/XObject"]
        form = xobjects[f"/FormXob.{pdf.SIGNATURE_FORM}"].get_object()
        assert form["/Subtype"] == "/Form"
        operators = form.get_data().decode("latin-1").split()
        assert (operators.count("m"), operators.count("l"), operators.count("S")) == (2, 3, 2)
        assert "Typed name and drawn signature on screen" in words(reader)

    def test_a_drawn_signature_sent_as_an_image_is_embedded(
        self, world: World, patient: Patient
    ) -> None:
        import base64

        url = "data:image/png;base64," + base64.b64encode(png(56, 18)).decode()
        consent = sign(world, patient, method="drawn", signature=url)
        reader = read(signed_in(world.practitioner).get(f"/consents/{consent.pk}.pdf"))
        images = [image for page in reader.pages for image in page.images]
        assert len(images) == 1
        assert images[0].image is not None and images[0].image.size == (56, 18)

    def test_a_signature_that_cannot_be_read_is_said_so(
        self, world: World, patient: Patient
    ) -> None:
        consent = sign(world, patient, method="drawn", signature="data:image/png;base64,AAAA")
        reader = read(signed_in(world.practitioner).get(f"/consents/{consent.pk}.pdf"))
        assert "A drawn signature is on file but could not be shown." in words(reader)
        assert not any(page.images for page in reader.pages)

    def test_a_text_that_no_longer_matches_its_hash_is_flagged(
        self, world: World, patient: Patient
    ) -> None:
        consent = sign(world, patient)
        Consent.objects.filter(pk=consent.pk).update(text=consent.text + "\nAdded later.")
        text = words(read(signed_in(world.practitioner).get(f"/consents/{consent.pk}.pdf")))
        assert "WARNING: it does not match the text printed above." in text

    def test_names_with_markup_are_printed_as_written(self, world: World, patient: Patient) -> None:
        consent = sign(world, patient, signed_name="Łucja O'Brien & <b>Sons</b>")
        text = words(read(signed_in(world.practitioner).get(f"/consents/{consent.pk}.pdf")))
        assert "Signed by Łucja O'Brien & <b>Sons</b>" in text


class AftercarePdfTests:
    def test_it_prints_each_instruction_with_its_clock_time(
        self, world: World, session: Session
    ) -> None:
        text = words(
            read(signed_in(world.practitioner).get(f"/sessions/{session.pk}/aftercare.pdf"))
        )
        items = session.aftercare()
        assert items
        for item in items:
            assert flat(str(item["text"])) in text
        # Eight hours after 10:00 in New York.
        assert "No hot shower until 18:00." in text
        assert "Your session was at 10:00 on Tuesday 4 March 2025." in text

    def test_it_names_the_clinic_and_the_patient_and_says_whom_to_call(
        self, world: World, session: Session
    ) -> None:
        text = words(
            read(signed_in(world.practitioner).get(f"/sessions/{session.pk}/aftercare.pdf"))
        )
        assert "Aftercare for Ana" in text
        assert "Lopez" not in text
        assert f"If something worries you, call {world.clinic.name}." in text
        assert f"{world.clinic.name}, New York" in text

    def test_the_session_page_links_to_it(self, world: World, session: Session) -> None:
        html = signed_in(world.practitioner).get(f"/sessions/{session.pk}/").content.decode()
        assert f'href="/sessions/{session.pk}/aftercare.pdf"' in html


class SharedPageTests:
    def test_every_page_has_the_clinic_and_its_number(self, world: World, course: Course) -> None:
        reader = read(signed_in(world.practitioner).get(f"/courses/{course.pk}/plan.pdf"))
        total = len(reader.pages)
        assert total >= 2
        for number, page in enumerate(reader.pages, start=1):
            page_text = flat(page.extract_text() or "")
            assert world.clinic.name in page_text
            assert f"Page {number} of {total}" in page_text
            assert "Generated " in page_text

    def test_a_clinic_in_new_york_prints_on_letter_and_in_paris_on_a4(
        self, world: World, course: Course
    ) -> None:
        reader = read(signed_in(world.practitioner).get(f"/courses/{course.pk}/plan.pdf"))
        box = reader.pages[0].mediabox
        assert (round(float(box.width)), round(float(box.height))) == (612, 792)
        assert pdf.page_size_for("Europe/Paris") == pytest.approx((595.3, 841.9), abs=0.1)

    def test_the_response_is_inline_and_not_cached(self, world: World, session: Session) -> None:
        response = signed_in(world.practitioner).get(f"/sessions/{session.pk}/aftercare.pdf")
        assert response["Content-Disposition"] == (
            f'inline; filename="session-{session.pk}-aftercare.pdf"'
        )
        assert "no-store" in response["Cache-Control"]
        assert "private" in response["Cache-Control"]


class DocumentAccessTests:
    @pytest.mark.parametrize("which", [0, 1, 2], ids=["plan", "consent", "aftercare"])
    def test_each_download_is_audited_as_an_export(
        self, world: World, course: Course, session: Session, which: int
    ) -> None:
        url = urls(course, session)[which]
        assert signed_in(world.front_desk).get(url).status_code == 200
        event = AuditEvent.objects.get(action=AuditEvent.Action.EXPORT)
        assert event.user == world.front_desk
        assert event.clinic == world.clinic
        assert event.patient_id == course.patient_id
        assert event.via == "web"
        assert event.detail["document"] == ["course_plan", "consent", "aftercare"][which]
        assert event.object_type == ["courses.Course", "patients.Consent", "courses.Session"][which]

    def test_another_clinics_practitioner_gets_404_and_nothing_is_audited(
        self, world: World, other: World, course: Course, session: Session
    ) -> None:
        client = signed_in(other.practitioner)
        for url in urls(course, session):
            assert client.get(url).status_code == 404, url
        assert not AuditEvent.objects.filter(action=AuditEvent.Action.EXPORT).exists()

    def test_a_user_without_a_clinic_gets_403(
        self, world: World, course: Course, session: Session
    ) -> None:
        client = signed_in(User.objects.create_user("drifter", password="pw"))
        for url in urls(course, session):
            assert client.get(url).status_code == 403, url

    def test_a_visitor_is_sent_to_sign_in(
        self, world: World, course: Course, session: Session
    ) -> None:
        for url in urls(course, session):
            response = Client().get(url)
            assert response.status_code == 302
            assert response["Location"] == f"/accounts/login/?next={url}"

    def test_only_get_is_allowed(self, world: World, course: Course, session: Session) -> None:
        client = signed_in(world.practitioner)
        for url in urls(course, session):
            assert client.post(url).status_code == 405, url
        assert not AuditEvent.objects.filter(action=AuditEvent.Action.EXPORT).exists()

    def test_an_unknown_record_is_404(self, world: World) -> None:
        client = signed_in(world.practitioner)
        for url in (
            "/courses/999999/plan.pdf",
            "/consents/999999.pdf",
            "/sessions/999999/aftercare.pdf",
        ):
            assert client.get(url).status_code == 404, url


class SignaturePathTests:
    def test_moves_start_strokes_and_junk_is_ignored(self) -> None:
        strokes = pdf.signature_strokes("M1 2 L3 4 L5.5 6 junk M7,8 L9 10 Z")
        assert strokes == [[(1, 2), (3, 4), (5.5, 6)], [(7, 8), (9, 10)]]

    def test_absurd_coordinates_are_dropped(self) -> None:
        assert pdf.signature_strokes("M1 2 L" + "9" * 400 + " 3 L4 5") == [[(1, 2), (4, 5)]]

    def test_nothing_drawable_gives_no_strokes(self) -> None:
        assert pdf.signature_strokes("<svg onload=alert(1)>") == []

    def test_the_consent_text_keeps_its_words_and_gains_headings_and_lists(self) -> None:
        text = (
            "Consent to mesotherapy\n\n"
            "I understand that it is a course of\ninjections, and that results vary.\n\n"
            "Regulatory status (US FDA)\nNo mixture is approved. Each one:\n\n"
            "Lipo mix (supplier: Acme)\n  - Caffeine: approved for another\n    use.\n"
            "  - Lidocaine: not approved.\n"
        )
        assert pdf.consent_layout(text) == [
            ("heading", "Consent to mesotherapy"),
            ("break", ""),
            ("paragraph", "I understand that it is a course of injections, and that results vary."),
            ("break", ""),
            ("heading", "Regulatory status (US FDA)"),
            ("paragraph", "No mixture is approved. Each one:"),
            ("break", ""),
            ("heading", "Lipo mix (supplier: Acme)"),
            ("item", "Caffeine: approved for another use."),
            ("item", "Lidocaine: not approved."),
            ("break", ""),
        ]
