"""The patient's record in a phone-sized browser: the ingredient picker searched as you type
keeps what is ticked, and the screening records the allergies it names. Screenshots go to
docs/screenshots/."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from mesoclinic.patients.models import Patient, Screening
from tests.browser.conftest import _new_page, login, shot
from tests.conftest import World

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def phone_page(chromium: Browser) -> Iterator[Page]:
    yield from _new_page(chromium, viewport=PHONE, has_touch=True)


def test_the_screening_asks_what_the_patient_is_allergic_to(
    phone_page: Page, live_server: Any, world: World
) -> None:
    page = phone_page
    patient = Patient.objects.create(
        clinic=world.clinic,
        first_name="Ana",
        last_name="Lopez",
        date_of_birth=dt.date(1990, 5, 17),
    )
    login(page, live_server, world.practitioner.username)
    page.goto(f"{live_server.url}/patients/{patient.pk}/screening/")
    for legend in page.locator("fieldset > legend").all_inner_texts():
        if "allergic reaction" in legend:
            page.locator("fieldset", has_text=legend).get_by_label("Yes").check()
        elif legend != "Allergic to these ingredients":
            page.locator("fieldset", has_text=legend).get_by_label("No").check()
    picker = page.locator("fieldset.picker")
    search = picker.get_by_label("Find an ingredient")
    search.fill("lido")
    expect(picker.get_by_label("Procaine")).to_have_count(0)
    picker.get_by_label("Lidocaine").check()
    search.fill("proca")
    expect(picker.get_by_label("Procaine")).to_be_visible()
    # What was ticked before the second search is still there, still ticked.
    expect(picker.get_by_label("Lidocaine")).to_be_checked()
    picker.get_by_label("Procaine").check()
    page.get_by_label("Or to other substances").fill("Latex")
    page.get_by_label("What happened").fill("Hives")
    shot(page, "patients-screening-allergies")
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page scrolls sideways at 390 px ({width} px)"
    page.get_by_role("button", name="Record the screening").click()
    expect(page).to_have_url(re.compile(rf"/patients/{patient.pk}/$"))
    assert Screening.objects.filter(patient=patient).exists()
    assert sorted(a.what for a in patient.allergies.all()) == ["Latex", "Lidocaine", "Procaine"]
    expect(page.locator("#record")).to_contain_text("Lidocaine (Hives)")
    shot(page, "patients-chart-record")
