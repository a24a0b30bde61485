"""Issue 12's calendar in Debian's Chromium, at 390 px and 1024 px: the front desk clicks a
free row to book it, sees "Session 3 of 15" on the visits, checks a patient in, and the
back-to-back visits are set apart. Screenshots go to docs/screenshots/."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from playwright.sync_api import Browser, Page, expect

from mesoclinic.patients.models import Patient
from mesoclinic.scheduling.models import Appointment
from tests.browser.conftest import _new_page, assert_accessible, login, shot
from tests.browser.test_calendar import busy_week
from tests.conftest import World
from tests.scheduling_fixtures import NOW, at, set_up_calendar

pytestmark = pytest.mark.browser

MONDAY = NOW.date()


@pytest.fixture
def clock() -> Iterator[Any]:
    with time_machine.travel(NOW, tick=True) as traveller:
        yield traveller


@pytest.fixture
def clinic(world: World, clock: Any) -> World:
    world.manager.first_name, world.manager.last_name = "Jon", "Reyes"
    world.manager.save()
    return set_up_calendar(world)


@pytest.mark.parametrize("width", [390, 1024])
def test_the_calendar_books_a_clicked_row_and_checks_in(
    chromium: Browser, live_server: Any, clinic: World, patient: Patient, width: int
) -> None:
    made = busy_week(clinic, patient)
    # Back to back with Bea Cruz's session (09:30–10:15) on Monday, with the same practitioner.
    bea = Patient.objects.get(first_name="Bea")
    Appointment.objects.create(
        clinic=clinic.clinic,
        patient=bea,
        kind="review",
        practitioner=clinic.manager,
        starts_at=at(10, 15, MONDAY),
        ends_at=at(10, 35, MONDAY),
    )
    page: Page
    for page in _new_page(chromium, viewport={"width": width, "height": 900}):
        login(page, live_server, clinic.front_desk.username)
        page.goto(f"{live_server.url}/calendar/?date={MONDAY.isoformat()}&view=day")
        expect(page.locator(".appt.back-to-back")).to_have_count(1)
        expect(page.locator(f"#appt-{made[0].pk}")).to_be_visible()
        name = f"calendar-day-checkin-{width}"
        shot(page, name)
        assert_accessible(page, name)
        # The grid scrolls inside its box; the page itself is no wider than the screen.
        assert page.evaluate("document.documentElement.scrollWidth") <= width

        # Session 1 is on a later day: its visit says which session of how many.
        first = made[1].starts_at.astimezone(clinic.clinic.tz)
        page.goto(f"{live_server.url}/calendar/?date={first.date().isoformat()}&view=day")
        expect(page.locator(f"#appt-{made[1].pk}")).to_contain_text("Session 1 of 15")

        # A free row on Tuesday at 11:00 with Maria Silva opens the form with both filled in.
        page.goto(f"{live_server.url}/calendar/?date={(MONDAY + dt.timedelta(days=1)).isoformat()}")
        page.get_by_role("link", name="Book Maria Silva on Tue 24 Nov at 11:00").click()
        page.get_by_label("Find a patient").fill("Stone")
        page.get_by_label("Find a patient").press("Enter")
        page.locator("#patient-results").get_by_role("link", name=re.compile("Stone, Emma")).click()
        expect(page.get_by_label("Not before")).to_have_value("2026-11-24T11:00")
        expect(page.get_by_role("combobox", name=re.compile("^Practitioner"))).to_have_value(
            str(clinic.practitioner.pk)
        )
        page.get_by_role("combobox", name=re.compile("^Visit")).select_option("review")
        page.get_by_role("button", name="Find the next free slot").click()
        expect(page.locator(".cal-proposal")).to_contain_text("Tuesday 24 November 2026, 11:00")
        name = f"calendar-book-from-row-{width}"
        shot(page, name)
        assert_accessible(page, name)

        # Check-in from the day's grid: the allergy test visit is today.
        page.goto(f"{live_server.url}/calendar/?date={MONDAY.isoformat()}&view=day")
        page.locator(f"#appt-{made[0].pk}").get_by_role(
            "button", name=re.compile("Mark arrived")
        ).click()
        expect(page.get_by_text(re.compile("^Checked in: Allergy test visit"))).to_be_visible()
        made[0].refresh_from_db()
        assert made[0].status == "arrived"
        made[0].status = "booked"
        made[0].save()
