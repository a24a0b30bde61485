"""Booking in the patient portal on a phone (390 px, touch): a patient books the allergy test
visit and then sessions 1 and 2 of their course from the free times offered inside each
window, and is refused a move of session 2 that would break the cadence, with the valid days
in words. Every page passes axe, fits the screen without scrolling sideways, and is saved to
docs/screenshots/portal-book-<step>.png."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from mesoclinic.courses.actions import do_plan_course
from mesoclinic.protocols.models import ClinicProtocol
from mesoclinic.scheduling import next_visit, planning
from mesoclinic.scheduling.models import Appointment
from tests.browser.conftest import _new_page
from tests.browser.test_portal import PHONE, a_patient, check_page, sign_in
from tests.conftest import World
from tests.scheduling_fixtures import set_up_calendar

pytestmark = pytest.mark.browser


@pytest.fixture
def phone(chromium: Browser) -> Iterator[Page]:
    yield from _new_page(chromium, viewport=PHONE, has_touch=True)


def choose_first_time(page: Page) -> None:
    page.locator('input[name="slot"]').first.check()


def test_a_patient_books_within_the_cadence_and_is_refused_a_move_that_breaks_it(
    world: World, live_server: Any, phone: Page
) -> None:
    set_up_calendar(world)
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
    page.get_by_role("link", name="Book, move or cancel a visit").click()
    expect(page.get_by_role("heading", name="Your visits")).to_be_visible()
    check_page(page, "book-visits")

    page.get_by_role("link", name="Choose a time for the allergy test visit").click()
    expect(page.get_by_role("heading", name="Book the allergy test visit")).to_be_visible()
    check_page(page, "book-allergy-test")
    choose_first_time(page)
    page.get_by_role("button", name="Book this time").click()
    expect(page.get_by_text("Booked:")).to_be_visible()

    # Session 1 waits 24 hours after the test: the page says from when, and offers only those.
    page.get_by_role("link", name="Choose a time for session 1").click()
    expect(page.get_by_text("Session 1 must be between")).to_be_visible()
    check_page(page, "book-session-1")
    choose_first_time(page)
    page.get_by_role("button", name="Book this time").click()
    expect(page.get_by_text("Booked:")).to_be_visible()

    page.get_by_role("link", name="Choose a time for session 2").click()
    choose_first_time(page)
    page.get_by_role("button", name="Book this time").click()
    expect(page.get_by_text("Booked:")).to_be_visible()
    check_page(page, "book-booked")

    test_visit, first, second = Appointment.objects.filter(course=course).order_by("starts_at")
    assert test_visit.kind == "allergy_test" and first.kind == second.kind == "session"
    assert first.starts_at >= test_visit.starts_at + dt.timedelta(hours=24)
    window = next_visit.window_of(second)
    assert window is not None and planning.fits(second.starts_at, window)

    # Moving session 2 three days past its window is refused, with the valid days.
    page.locator(f"#visit-{second.pk}").get_by_role("link", name="Move").click()
    expect(page.get_by_role("heading", name="Move session 2")).to_be_visible()
    page.get_by_text("Another day and time").click()
    too_late = (window.end + dt.timedelta(days=3)).astimezone(world.clinic.tz)
    page.get_by_label("Another day").fill(too_late.date().isoformat())
    page.get_by_label("At").fill("10:00")
    page.get_by_role("button", name="Move to this time").click()
    words = next_visit.window_words("Session 2", window, world.clinic.tz)
    alert = page.get_by_role("alert").filter(has_text=words)
    expect(alert).to_be_visible()
    check_page(page, "book-move-refused")
    before = second.starts_at
    second.refresh_from_db()
    assert second.starts_at == before
    edge = r"\w{3} \d+ \w{3} \d\d:\d\d"
    assert re.fullmatch(rf"Session 2 must be between {edge} and {edge}\.", words), words
