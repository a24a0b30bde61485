"""The patient portal on a phone (390 px, touch): a patient signs in with their email, reads
their home page, fills in the online intake (details, health questions, photo choices) and
reads the course consent to its end before signing it; another patient's hard stop in the
screening stops online booking and offers a consultation. Every page passes axe, fits the
screen without scrolling sideways, and is saved to docs/screenshots/portal-<step>.png."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from mesoclinic.accounts.models import User
from mesoclinic.courses.actions import do_plan_course
from mesoclinic.patients.models import Consent, Patient, Screening
from mesoclinic.protocols.models import ClinicProtocol
from tests.browser.conftest import _new_page, assert_accessible, shot
from tests.conftest import World

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
PASSWORD = "violet harbour 1972"


@pytest.fixture
def phone(chromium: Browser) -> Iterator[Page]:
    yield from _new_page(chromium, viewport=PHONE, has_touch=True)


def a_patient(world: World, first: str, last: str, email: str) -> Patient:
    user = User.objects.create_user(email, email=email, password=PASSWORD)
    return Patient.objects.create(
        clinic=world.clinic,
        first_name=first,
        last_name=last,
        date_of_birth=dt.date(1990, 5, 17),
        email=email,
        user=user,
    )


def sign_in(page: Page, live_server: Any, email: str) -> None:
    page.goto(live_server.url + "/my/login/")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/my/$"))


def check_page(page: Page, name: str) -> None:
    """axe, no sideways scrolling on the phone, and a screenshot."""
    assert_accessible(page, f"portal-{name}")
    wide = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    assert not wide, f"{name} scrolls sideways on a phone"
    shot(page, f"portal-{name}")


def test_a_patient_fills_in_the_intake_and_signs_the_consent_on_a_phone(
    world: World, live_server: Any, phone: Page
) -> None:
    world.clinic.phone = "+1 212 555 0100"
    world.clinic.save(update_fields=["phone"])
    patient = a_patient(world, "Ana", "Lopez", "ana@example.com")
    course = do_plan_course(
        patient,
        ClinicProtocol.current(world.clinic, "cellulite"),  # type: ignore[arg-type]
        indication="cellulite",
        areas=["thighs"],
        cadence_days=7,
        planned_sessions=15,
        user=world.practitioner,
    )
    page = phone
    sign_in(page, live_server, "ana@example.com")
    expect(page.get_by_role("heading", name="Hello Ana")).to_be_visible()
    expect(page.get_by_text("Insurance:")).to_be_visible()
    check_page(page, "home")

    page.get_by_role("link", name=re.compile("fill in your details", re.IGNORECASE)).click()
    expect(page.get_by_role("heading", name="Before your first visit")).to_be_visible()
    check_page(page, "intake")

    page.get_by_role("link", name="Fill in your details").click()
    page.get_by_label("Phone", exact=True).fill("+1 212 555 0199")
    page.get_by_label("Emergency contact: name").fill("Rui Lopez")
    page.get_by_label("Emergency contact: phone").fill("+1 212 555 0102")
    check_page(page, "details")
    page.get_by_role("button", name="Save my details").click()
    expect(page.get_by_text("Your details are saved.")).to_be_visible()

    page.get_by_role("link", name="Answer the questions").click()
    for radio in page.locator('input[type="radio"][value="no"]').all():
        radio.check()
    page.get_by_label("Medicines you take now").fill("Metformin 500 mg")
    check_page(page, "health-questions")
    page.get_by_role("button", name="Save my answers").click()
    expect(page.get_by_text("Thank you: your answers are saved.")).to_be_visible()
    assert Screening.objects.get(patient=patient).result == "eligible"

    page.get_by_role("link", name="Choose").click()
    page.locator('input[name="clinical"][value="yes"]').check()
    page.locator('input[name="marketing"][value="no"]').check()
    check_page(page, "photos")
    page.get_by_role("button", name="Save my choices").click()
    expect(page.get_by_text("Your choices about photos are saved.")).to_be_visible()

    page.get_by_role("link", name="Read and sign").click()
    expect(page).to_have_url(re.compile(rf"/my/intake/consent/{course.pk}/$"))
    # The text comes first; the place to sign is after its end.
    end = page.get_by_text("End of the consent text.")
    sign = page.get_by_role("button", name="Sign", exact=True)
    assert end.bounding_box()["y"] < sign.bounding_box()["y"]  # type: ignore[index]
    end.scroll_into_view_if_needed()
    page.get_by_label("I have read the whole text above.").check()
    page.get_by_label("Your full name, typed as your signature").fill("Ana Lopez")
    check_page(page, "consent")
    sign.click()
    expect(page.get_by_text("your consent is signed")).to_be_visible()
    expect(page.get_by_text("Signed. A copy is in your documents.", exact=True)).to_be_visible()
    consent = Consent.objects.get(patient=patient)
    assert consent.signed_name == "Ana Lopez" and consent.witnessed_by is None


def test_a_hard_stop_stops_online_booking_and_offers_a_consultation(
    world: World, live_server: Any, phone: Page
) -> None:
    world.clinic.phone = "+1 212 555 0100"
    world.clinic.save(update_fields=["phone"])
    a_patient(world, "Bea", "Stone", "bea@example.com")
    page = phone
    sign_in(page, live_server, "bea@example.com")
    page.goto(live_server.url + "/my/intake/screening/")
    for radio in page.locator('input[type="radio"][value="no"]').all():
        radio.check()
    page.get_by_role("group", name="Are you pregnant, or could you be?").get_by_label("Yes").check()
    page.get_by_role("button", name="Save my answers").click()
    stop = page.get_by_role("alert").filter(has_text="Online booking of treatment is stopped")
    expect(stop).to_be_visible()
    expect(stop).to_contain_text("Are you pregnant, or could you be?")
    expect(stop.get_by_role("link", name="+1 212 555 0100")).to_be_visible()
    check_page(page, "hard-stop")
