"""The clinic's public site on a phone, in Debian's Chromium: a visitor reads a protocol page,
sees where the articles disagree and books a consultation; a withdrawn marketing consent
empties the gallery. Each step saves a screenshot to docs/screenshots/ and runs axe."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect

from mesoclinic.outcomes import photo_actions
from mesoclinic.patients.models import Patient
from mesoclinic.scheduling.models import Appointment
from tests.browser.conftest import _new_page, assert_accessible, shot
from tests.conftest import World
from tests.scheduling_fixtures import set_up_calendar
from tests.test_photos import cellulite_course, jpeg, photo_dir

pytestmark = pytest.mark.browser
__all__ = ["photo_dir"]  # the fixture, used by name

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def phone(chromium: Browser) -> Iterator[Page]:
    """A visitor's phone: small, with touch."""
    yield from _new_page(chromium, viewport=PHONE, has_touch=True, is_mobile=True)


def step(page: Page, name: str) -> None:
    shot(page, name)
    assert_accessible(page, name)


def test_a_visitor_reads_the_disagreement_and_books_a_consultation(
    phone: Page, live_server: Any, world: World
) -> None:
    set_up_calendar(world)
    site = f"{live_server.url}/site/{world.clinic.slug}/"
    phone.goto(site)
    expect(phone.get_by_role("heading", level=1)).to_have_text(world.clinic.name)
    step(phone, "public-01-home")
    phone.get_by_role("link", name="Cellulite (body)").click()
    expect(phone.get_by_text("What published clinic articles say")).to_have_count(1)
    sessions = phone.locator(".fact", has_text="Number of sessions")
    expect(sessions.locator(".side")).to_have_count(2)
    expect(sessions).to_contain_text("10–15 sessions")
    expect(sessions).to_contain_text("3 articles")
    expect(sessions).to_contain_text("15–20 sessions")
    expect(sessions).to_contain_text("One article")
    expect(sessions.locator(".side.chosen")).to_contain_text("follows this")
    sessions.scroll_into_view_if_needed()
    step(phone, "public-02-protocol-disagreement")
    phone.get_by_role("link", name="Book a free consultation").first.click()
    expect(phone.get_by_role("heading", level=1)).to_have_text("Book a free consultation")
    phone.locator("input[name=slot]").first.check()
    phone.get_by_label("First name").fill("Carla")
    phone.get_by_label("Last name").fill("Mendes")
    phone.get_by_label("Date of birth").fill("4 Mar 1988")
    phone.get_by_label("Phone").fill("+1 212 555 0199")
    phone.get_by_label("Email").fill("carla@example.com")
    step(phone, "public-03-book")
    phone.get_by_role("button", name="Book the consultation").click()
    expect(phone.get_by_role("heading", level=1)).to_have_text("Your consultation is booked")
    step(phone, "public-04-booked")
    booked = Appointment.objects.get(kind=Appointment.Kind.CONSULTATION)
    assert booked.patient.last_name == "Mendes"


def test_a_withdrawn_marketing_consent_empties_the_gallery(
    phone: Page, live_server: Any, world: World, photo_dir: Any
) -> None:
    patient = Patient.objects.create(
        clinic=world.clinic, first_name="Ana", last_name="Lopez", date_of_birth=dt.date(1990, 5, 17)
    )
    course = cellulite_course(world, patient)
    for purpose in ("clinical", "marketing"):
        photo_actions.do_record_photo_consent(
            patient,
            purpose=purpose,
            granted=True,
            decided_at=timezone.now() - dt.timedelta(days=90),
            user=world.practitioner,
        )
    for days_ago in (60, 0):
        photo_actions.do_upload_photos(
            course,
            area="thighs",
            images={"front": jpeg()},
            taken_at=timezone.now() - dt.timedelta(days=days_ago),
            user=world.practitioner,
        )
    gallery = f"{live_server.url}/site/{world.clinic.slug}/gallery/"
    phone.goto(gallery)
    expect(phone.locator(".gallery img")).to_have_count(2)
    step(phone, "public-05-gallery")
    photo_actions.do_record_photo_consent(
        patient, purpose="marketing", granted=False, user=world.practitioner
    )
    phone.goto(gallery)
    expect(phone.locator(".gallery img")).to_have_count(0)
    expect(phone.get_by_text("There are no photos to show yet.")).to_be_visible()
    step(phone, "public-06-gallery-after-withdrawal")
