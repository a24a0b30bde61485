"""The journeys of the issue, in Debian's Chromium: the front desk registers a patient; a
practitioner takes them from screening to their first session, its aftercare and a side
effect reported the next day; a session
with an expired lot is refused in words; a practitioner of another clinic sees nothing; the
manager recalls a lot and sees who received it.

Each step saves a screenshot to docs/screenshots/ and runs axe on the page. The live server
runs in a thread of this process, so time-machine moves the server's clock: that is how the
allergy test's 24 hours pass.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.utils import timezone
from playwright.sync_api import Page, expect

from mesoclinic.courses.models import AllergyReading, AllergyTest, Course, Session
from mesoclinic.formulary.models import Lot
from mesoclinic.patients.models import Consent, Patient, Screening
from tests.browser.conftest import assert_accessible, login, shot
from tests.conftest import World
from tests.test_web import course_with_sessions

pytestmark = pytest.mark.browser


def step(page: Page, name: str) -> None:
    """Every step of a journey: its screenshot, and axe on the page as it stands."""
    shot(page, name)
    assert_accessible(page, name)


def test_the_front_desk_registers_a_patient(page: Page, live_server: Any, world: World) -> None:
    login(page, live_server, world.front_desk.username)
    expect(page.get_by_role("heading", level=1, name=re.compile("^Today"))).to_be_visible()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Patients").click()
    page.get_by_role("link", name="Register a patient").click()

    # A birth date in the future and a phone number of letters are refused, field by field.
    page.get_by_label("First name").fill("Maria")
    page.get_by_label("Last name").fill("Santos")
    tomorrow = timezone.localdate() + dt.timedelta(days=1)
    page.get_by_label("Date of birth").fill(tomorrow.isoformat())
    page.get_by_label("Phone", exact=True).fill("call me")
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_role("alert").first).to_be_visible()
    expect(page.locator(".field-error")).to_have_count(2)
    expect(page.locator(".field-error", has=page.get_by_label("Phone", exact=True))).to_be_visible()
    expect(page.locator(".field-error", has=page.get_by_label("Date of birth"))).to_be_visible()
    step(page, "register-errors")
    assert not Patient.objects.filter(last_name="Santos").exists()

    page.get_by_label("Date of birth").fill("1988-04-02")
    page.get_by_label("Phone", exact=True).fill("+1 212 555 0199")
    page.get_by_label("Email", exact=True).fill("maria@example.com")
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_role("heading", name=re.compile("Maria Santos"))).to_be_visible()
    step(page, "register-done")

    # The new patient is found by date of birth as well as by name.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Patients").click()
    page.get_by_label("Find a patient").fill("1988-04-02")
    page.get_by_label("Find a patient").press("Enter")
    expect(page.locator("#results").get_by_role("link", name=re.compile("Santos"))).to_be_visible()
    step(page, "patient-search")
    patient = Patient.objects.get(last_name="Santos")
    assert (patient.clinic_id, patient.phone) == (world.clinic.pk, "+1 212 555 0199")


def test_a_practitioner_takes_a_patient_to_their_first_session(
    tablet_page: Page, live_server: Any, world: World, patient: Patient
) -> None:
    page = tablet_page
    chart = f"{live_server.url}/patients/{patient.pk}/"
    with time_machine.travel(timezone.now(), tick=True) as clock:
        login(page, live_server, world.practitioner.username)
        page.goto(chart)
        expect(page.get_by_role("heading", name=re.compile("Ana Lopez"))).to_be_visible()
        step(page, "journey-01-chart")

        # 1. Screening: every question answered "No".
        page.get_by_role("link", name="Fill in the screening").click()
        # Each yes/no question; the allergy question's "to what" picker is asked only on a yes.
        yes_no = page.locator("fieldset").filter(has=page.get_by_label("No", exact=True))
        for group in yes_no.all():
            group.get_by_label("No", exact=True).check()
        step(page, "journey-02-screening")
        page.get_by_role("button", name="Record the screening").click()
        expect(page.get_by_text("Screening recorded: Eligible")).to_be_visible()
        assert Screening.objects.get(patient=patient).result == "eligible"

        # 2. The course is planned first, because consent and the test are for its treatment.
        page.get_by_role("link", name="Plan a course").click()
        page.get_by_label("Protocol").select_option("cellulite")
        page.get_by_label("Thighs", exact=True).check()
        step(page, "journey-03-plan")
        page.get_by_role("button", name="Plan the course").click()
        course = Course.objects.get(patient=patient)
        course_card = page.locator(f"#course-{course.pk}")
        expect(course_card.get_by_text(course.plan()["insurance"]["text"])).to_be_visible()
        expect(course_card.get_by_text(re.compile(r"USD \d+–\d+"))).to_be_visible()
        expect(course_card.get_by_role("heading", name="What to expect")).to_be_visible()
        # Before consent and the test, the chart says in words why no session may go ahead.
        reasons = course_card.locator("ul.reasons")
        expect(reasons).to_contain_text("consent")
        expect(reasons).to_contain_text("allergy test")
        step(page, "journey-04-course-planned")

        # 3. Consent: the typed name and a signature drawn with a finger.
        course_card.get_by_role("link", name="Take consent", exact=True).click()
        page.get_by_label("Patient's full name, typed").fill("Ana Lopez")
        canvas = page.locator(".signature canvas")
        canvas.scroll_into_view_if_needed()
        box = canvas.bounding_box()
        assert box is not None
        x, y = box["x"], box["y"]
        page.mouse.move(x + 40, y + 120)
        page.mouse.down()
        for dx, dy in ((80, 60), (140, 130), (200, 50), (260, 120), (320, 70)):
            page.mouse.move(x + dx, y + dy, steps=4)
        page.mouse.up()
        step(page, "journey-05-consent")
        page.get_by_role("button", name="Sign", exact=True).click()
        expect(page.get_by_text("Consent signed.")).to_be_visible()
        signed = Consent.objects.get(patient=patient)
        assert signed.signed_name == "Ana Lopez"
        assert signed.method == "drawn" and signed.signature.startswith("M")

        # 4. The allergy test, with the lots typed as a scanner would.
        course_card = page.locator(f"#course-{course.pk}")
        course_card.get_by_label("First injection: lot number").fill(world.lot.lot_number)
        course_card.get_by_label("Second injection: lot number").fill(
            world.lidocaine_lot.lot_number
        )
        course_card.get_by_role("button", name="Record the test injections").click()
        expect(page.get_by_text("Allergy test recorded.")).to_be_visible()
        test = AllergyTest.objects.get(course=course)
        readable = test.readable_from().astimezone(world.clinic.tz)
        expect(page.get_by_text(f"readable from {readable:%a %-d %b %H:%M}")).to_be_visible()
        expect(page.locator(f"#course-{course.pk} ul.reasons")).to_contain_text(
            f"can be read from {readable:%H:%M} on {readable:%a %-d %b %Y}"
        )
        step(page, "journey-06-test-given")

        # The clinic requires a baseline before session 1: the Hexsel score, taken now.
        course_card = page.locator(f"#course-{course.pk}")
        expect(course_card.locator("ul.reasons")).to_contain_text("needs a baseline")
        progress = page.locator(f"#progress-{course.pk}")
        progress.get_by_role("link", name="Record the baseline").click()
        for key, value in (("number", 3), ("depth", 2), ("morphology", 2), ("laxity", 1)):
            page.locator(f"#id_hexsel_{key}").fill(str(value))
        page.locator("#id_hexsel_nurnberger_muller").fill("2")
        page.get_by_role("button", name="Record the measurements").click()
        expect(page.get_by_text("Recorded 1 measurement(s)")).to_be_visible()

        # 5. A day passes on the server's clock; the reading form now starts at the new time.
        # The browser was signed out after half an hour without use, so the practitioner signs
        # in again.
        clock.shift(dt.timedelta(hours=24, minutes=5))
        login(page, live_server, world.practitioner.username)
        page.goto(chart)
        course_card = page.locator(f"#course-{course.pk}")
        course_card.get_by_label("No reaction").check()
        course_card.get_by_role("button", name="Record the reading").click()
        expect(page.get_by_text("Reading recorded: No reaction.")).to_be_visible()
        reading = AllergyReading.objects.get(test=test)
        assert reading.read_at >= test.readable_from()
        expect(
            page.locator(f"#course-{course.pk}").get_by_text("Nothing stands in the way")
        ).to_be_visible()
        step(page, "journey-07-test-read")

        # 6. Session 1: thighs clicked on the body map, the lot scanned, a volume and technique.
        page.locator(f"#course-{course.pk}").get_by_role("link", name="Chart session 1").click()
        # The body map's script binds its clicks once the page has loaded: a click before
        # that (on a loaded machine) would do nothing.
        page.wait_for_url(f"**/courses/{course.pk}/sessions/new/", wait_until="load")
        page.locator('svg[data-body-map] [data-area="thighs"]').first.click()
        expect(page.get_by_label("Thighs", exact=True)).to_be_checked()
        page.get_by_label("Lot number for Thighs").fill(world.lot.lot_number)
        page.get_by_label("Volume for Thighs").fill("4.5")
        page.get_by_label("Technique for Thighs").select_option("nappage")
        step(page, "journey-08-chart-session")
        page.get_by_role("button", name="Chart the session").click()
        expect(page.get_by_role("heading", name=re.compile("Session 1"))).to_be_visible()
        session = Session.objects.get(course=course)
        injection = session.injections.get()
        assert (injection.area, injection.lot_id, str(injection.volume_ml)) == (
            "thighs",
            world.lot.pk,
            "4.50",
        )

        # 7. The aftercare, as printed: clock times in the clinic's zone, and no navigation.
        first_rule = session.aftercare()[0]["text"]
        expect(page.get_by_text(first_rule)).to_be_visible()
        step(page, "journey-09-aftercare")
        page.emulate_media(media="print")
        expect(page.get_by_role("navigation", name="Main")).to_be_hidden()
        expect(page.get_by_role("button", name="Print")).to_be_hidden()
        expect(page.get_by_text(first_rule)).to_be_visible()
        shot(page, "journey-10-aftercare-print")

        # 8. The next day the patient calls about a bruise: reported, and expected for now.
        page.emulate_media(media="screen")
        clock.shift(dt.timedelta(hours=20))
        session_page = page.url
        login(page, live_server, world.practitioner.username)
        page.goto(session_page)
        page.get_by_role("link", name="Report a side effect").click()
        page.get_by_label("Side effect").select_option("bruising")
        page.get_by_label("Grade (CTCAE)").select_option("1")
        step(page, "journey-11-report-side-effect")
        page.get_by_role("button", name="Report the side effect").click()
        expect(page.get_by_text(re.compile("Status: expected"))).to_be_visible()
        effect = session.side_effects.get()
        assert (effect.kind, effect.grade, effect.status) == ("bruising", 1, "expected")
        expect(page.locator(f"#side-effect-{effect.pk}")).to_contain_text("Expected")
        expect(page.locator(f"#sessions-{course.pk} ol.timeline")).to_contain_text("Session 1")
        step(page, "journey-12-chart-with-timeline")


def test_a_session_with_an_expired_lot_is_refused_with_its_reason(
    page: Page, live_server: Any, world: World, patient: Patient
) -> None:
    course = course_with_sessions(world, patient, 0, timezone.now() - dt.timedelta(hours=1))
    login(page, live_server, world.practitioner.username)
    page.goto(f"{live_server.url}/courses/{course.pk}/sessions/new/")
    page.get_by_label("Thighs", exact=True).check()
    page.get_by_label("Lot number for Thighs").fill(world.expired_lot.lot_number)
    page.get_by_label("Volume for Thighs").fill("3")
    page.get_by_role("button", name="Chart the session").click()

    refusal = page.get_by_role("alert").filter(has_text="may not go ahead")
    expect(refusal).to_contain_text(world.expired_lot.lot_number)
    expect(refusal).to_contain_text("expired")
    step(page, "refusal-expired-lot")
    assert not Session.objects.filter(course=course).exists()


def test_a_practitioner_of_another_clinic_gets_nothing(
    page: Page, live_server: Any, world: World, other: World, patient: Patient
) -> None:
    course = course_with_sessions(world, patient, 1, timezone.now() - dt.timedelta(days=1))
    session = course.sessions.get()
    login(page, live_server, other.practitioner.username)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Patients").click()
    page.get_by_label("Find a patient").fill("Lopez")
    page.get_by_label("Find a patient").press("Enter")
    expect(page.locator("#results")).to_contain_text("No patient")
    expect(page.locator("#results").get_by_role("link")).to_have_count(0)
    shot(page, "other-clinic-search")

    for path in (
        f"/patients/{patient.pk}/",
        f"/courses/{course.pk}/sessions/new/",
        f"/sessions/{session.pk}/",
    ):
        response = page.goto(live_server.url + path)
        assert response is not None and response.status == 404, path
        expect(page.get_by_text("Ana")).to_have_count(0)
        expect(page.get_by_text("Lopez")).to_have_count(0)
    shot(page, "other-clinic-chart")

    page.goto(live_server.url + "/today/")
    expect(page.get_by_text("Lopez")).to_have_count(0)


def test_the_manager_recalls_a_lot_and_sees_who_received_it(
    page: Page, live_server: Any, world: World, patient: Patient
) -> None:
    course_with_sessions(world, patient, 2, timezone.now() - dt.timedelta(days=8))
    login(page, live_server, world.manager.username)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Formulary").click()
    step(page, "manager-formulary")
    page.get_by_role("link", name=world.lot.lot_number, exact=True).click()
    page.get_by_label("Reason").fill("Supplier notice: particulate matter in vials.")
    page.get_by_role("button", name="Recall the lot").click()

    expect(page.get_by_role("heading", name=re.compile("Recalled"))).to_be_visible()
    patients = page.locator("section", has=page.get_by_role("heading", name=re.compile("Patients")))
    row = patients.get_by_role("row", name=re.compile("Ana Lopez"))
    expect(row).to_contain_text(patient.phone)
    expect(row).to_contain_text(patient.email)
    expect(patients.get_by_role("link", name=re.compile("CSV"))).to_be_visible()
    step(page, "manager-recall")

    lot = Lot.objects.get(pk=world.lot.pk)
    assert lot.recalled and lot.recalled_by == world.manager
    with page.expect_download() as download:
        patients.get_by_role("link", name=re.compile("CSV")).click()
    csv_text = Path(download.value.path()).read_text(encoding="utf-8")
    assert "Lopez" in csv_text and patient.email in csv_text
