"""Every page of the patient portal at a phone's width (390 x 844) and a small laptop's (1024):
the sign-in, the sign-in link and the registration pages, the home page and each intake step.
Each page has no axe violation at all (not only no serious one), nothing scrolls sideways,
and each is saved to docs/screenshots/portal-<page>-<width>.png.

Then the tablet handover on a tablet at the chair: the practitioner sets a PIN, hands the
tablet to the patient from the chart, the patient fills in a step and signs the consent (which
the practitioner witnesses), is refused the staff's pages, and the practitioner takes the
tablet back with the PIN. Screenshots: docs/screenshots/kiosk-<step>.png."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from mesoclinic.accounts.models import User
from mesoclinic.courses.actions import do_plan_course
from mesoclinic.courses.models import Course
from mesoclinic.patients.models import Consent, Patient
from mesoclinic.protocols.models import ClinicProtocol
from tests.browser.conftest import (
    SCREENSHOTS,
    TABLET,
    _new_page,
    assert_accessible,
    login,
    shot,
)
from tests.conftest import World

pytestmark = pytest.mark.browser

PASSWORD = "violet harbour 1972"
PIN = "482913"
WIDTHS = {"390": {"width": 390, "height": 844}, "1024": {"width": 1024, "height": 768}}


@pytest.fixture(params=sorted(WIDTHS))
def screen(request: pytest.FixtureRequest, chromium: Browser) -> Iterator[tuple[str, Page]]:
    width = str(request.param)
    yield from ((width, p) for p in _new_page(chromium, viewport=WIDTHS[width], has_touch=True))


@pytest.fixture
def tablet(chromium: Browser) -> Iterator[Page]:
    yield from _new_page(chromium, viewport=TABLET, has_touch=True)


def ana(world: World, *, login_too: bool = True) -> tuple[Patient, Course]:
    world.clinic.phone = "+1 212 555 0100"
    world.clinic.save(update_fields=["phone"])
    user = (
        User.objects.create_user("ana@example.com", email="ana@example.com", password=PASSWORD)
        if login_too
        else None
    )
    patient = Patient.objects.create(
        clinic=world.clinic,
        first_name="Ana",
        last_name="Lopez",
        date_of_birth=dt.date(1990, 5, 17),
        email="ana@example.com",
        user=user,
    )
    course = do_plan_course(
        patient,
        ClinicProtocol.current(world.clinic, "cellulite"),  # type: ignore[arg-type]
        indication="cellulite",
        areas=["thighs"],
        cadence_days=7,
        planned_sessions=15,
        user=world.practitioner,
    )
    return patient, course


def check(page: Page, name: str) -> None:
    """No axe violation of any impact, nothing wider than the screen, and a screenshot."""
    results = assert_accessible(page, name)
    found = [f"{v['id']} ({v['impact']}): {v['help']}" for v in results["violations"]]
    assert found == [], f"axe on {name}: {found}"
    wide = page.evaluate(
        "() => [document.documentElement.scrollWidth, window.innerWidth,"
        " [...document.querySelectorAll('body *')].filter("
        "   e => e.getBoundingClientRect().right > window.innerWidth + 1"
        " ).map(e => e.tagName + '.' + e.className).slice(0, 5)]"
    )
    assert wide[0] <= wide[1] and wide[2] == [], f"{name} scrolls sideways: {wide}"
    shot(page, name)


def test_every_portal_page_fits_and_passes_axe(
    world: World, live_server: Any, screen: tuple[str, Page]
) -> None:
    width, page = screen
    _, course = ana(world)
    url = live_server.url

    for path, name, heading in (
        ("/my/login/", "login", "Sign in"),
        ("/my/login/link/", "sign-in-link", None),
        ("/my/register/", "register", None),
    ):
        page.goto(url + path)
        if heading:
            expect(page.get_by_role("heading", name=heading)).to_be_visible()
        check(page, f"portal-{name}-{width}")

    page.goto(url + "/my/login/")
    page.get_by_label("Email address").fill("ana@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/my/$"))
    expect(page.get_by_role("heading", name="Hello Ana")).to_be_visible()
    check(page, f"portal-home-{width}")

    for path, name in (
        ("/my/intake/", "intake"),
        ("/my/intake/details/", "details"),
        ("/my/intake/screening/", "screening"),
        ("/my/intake/photos/", "photos"),
        (f"/my/intake/consent/{course.pk}/", "consent"),
        ("/my/password/", "password"),
    ):
        response = page.goto(url + path)
        assert response is not None and response.status == 200, path
        check(page, f"portal-{name}-{width}")

    # A form sent with a mistake shows its errors beside the fields, and still fits.
    page.goto(url + "/my/intake/details/")
    page.get_by_label("Phone", exact=True).fill("call me maybe")
    page.get_by_role("button", name="Save my details").click()
    expect(page.get_by_text("Enter a phone number")).to_be_visible()
    check(page, f"portal-details-error-{width}")


def test_a_tablet_is_handed_to_the_patient_and_taken_back_with_the_pin(
    world: World, live_server: Any, tablet: Page
) -> None:
    patient, _ = ana(world, login_too=False)
    page = tablet
    url = live_server.url
    login(page, live_server, world.practitioner.username)

    page.goto(url + "/account/tokens/")
    page.get_by_label("Your password").fill("pw")
    page.get_by_role("textbox", name="New PIN", exact=True).fill(PIN)
    page.get_by_label("The new PIN again").fill(PIN)
    check(page, "kiosk-set-pin")
    page.get_by_role("button", name="Set my PIN").click()
    expect(page.get_by_text("Your tablet PIN is set.")).to_be_visible()

    page.goto(url + f"/patients/{patient.pk}/")
    handover = page.get_by_role("button", name="Hand the tablet to the patient")
    handover.scroll_into_view_if_needed()
    # The chart is the staff's page (its own browser tests check it): a screenshot only.
    page.screenshot(path=SCREENSHOTS / "kiosk-chart.png")
    handover.click()
    expect(page).to_have_url(re.compile(r"/my/intake/$"))
    expect(page.get_by_text("Fill these in on this tablet")).to_be_visible()
    check(page, "kiosk-intake")

    page.get_by_role("link", name="Fill in your details").click()
    page.get_by_label("Phone", exact=True).fill("+1 212 555 0199")
    page.get_by_label("Emergency contact: name").fill("Rui Lopez")
    page.get_by_label("Emergency contact: phone").fill("+1 212 555 0102")
    page.get_by_role("button", name="Save my details").click()
    expect(page.get_by_text("Your details are saved.")).to_be_visible()

    page.get_by_role("link", name="Read and sign").click()
    page.get_by_text("End of the consent text.").scroll_into_view_if_needed()
    page.get_by_label("I have read the whole text above.").check()
    page.get_by_label("Your full name, typed as your signature").fill("Ana Lopez")
    check(page, "kiosk-consent")
    page.get_by_role("button", name="Sign", exact=True).click()
    expect(page.get_by_text("your consent is signed")).to_be_visible()
    consent = Consent.objects.get(patient=patient)
    assert consent.witnessed_by == world.practitioner and consent.method == "typed"

    # The staff's pages are refused, the patient's own chart included.
    response = page.goto(url + f"/patients/{patient.pk}/")
    assert response is not None and response.status == 403
    expect(page.get_by_role("heading", name="Only your forms on this tablet")).to_be_visible()
    check(page, "kiosk-refused")

    page.get_by_role("link", name="Back to your forms").click()
    page.get_by_role("link", name="Hand back to the clinic").click()
    check(page, "kiosk-return")
    page.get_by_label("Staff PIN").fill("000000")
    page.get_by_role("button", name="Take the tablet back").click()
    expect(page.get_by_text("That PIN is not right. 4 tries are left")).to_be_visible()
    check(page, "kiosk-wrong-pin")
    page.get_by_label("Staff PIN").fill(PIN)
    page.get_by_role("button", name="Take the tablet back").click()
    expect(page).to_have_url(re.compile(rf"/patients/{patient.pk}/$"))
    expect(page.get_by_text("You have the tablet back.")).to_be_visible()
