"""The safety inbox in Debian's Chromium: a manager sees a lot alert on Today, opens it, recalls
the lot and reads the list of every patient who received it, with how to reach them.

Each step saves a screenshot to docs/screenshots/ and runs axe on the page.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from mesoclinic.formulary.models import Lot
from mesoclinic.patients.models import Patient
from mesoclinic.safety import surveil
from mesoclinic.safety.models import SafetyAlert
from tests.browser.conftest import assert_accessible, login, shot
from tests.conftest import World
from tests.test_surveil import Chart

pytestmark = pytest.mark.browser

PEOPLE = [
    ("Maya", "Okafor", "+1 212 555 0141"),
    ("Lena", "Fischer", "+1 212 555 0142"),
    ("Rosa", "Quintero", "+1 212 555 0143"),
    ("Iris", "Nakamura", "+1 212 555 0144"),
    ("Nora", "Bianchi", "+1 212 555 0145"),
]


def step(page: Page, name: str) -> None:
    shot(page, name)
    assert_accessible(page, name)


@pytest.fixture
def alert(world: World, settings: Any) -> SafetyAlert:
    """Four infections among five sessions of one lot, against a clinic rate of 2 %; the last
    session also injected lidocaine, so the lot was one of several there."""
    settings.SURVEIL_PRIOR_RATE = 0.02
    settings.SURVEIL_PRIOR_SESSIONS = 1e12
    world.manager.first_name, world.manager.last_name = "Jon", "Reyes"
    world.manager.save()
    chart = Chart(world, start=dt.datetime.now(dt.UTC) - dt.timedelta(days=60))
    for i, (first, last, phone) in enumerate(PEOPLE):
        patient = Patient.objects.create(
            clinic=world.clinic,
            first_name=first,
            last_name=last,
            date_of_birth=dt.date(1984, 3, 1 + i),
            phone=phone,
            email=f"{first.lower()}@example.com",
        )
        lots = [world.lot, world.lidocaine_lot] if i == 4 else [world.lot]
        chart.session(lots=lots, patient=patient, adverse=i != 1, suspected=[world.lot])
    surveil.run(world.clinic, notify=False)
    return SafetyAlert.objects.get(method="cusum", subject_key=f"lot:{world.lot.pk}")


def test_a_manager_recalls_a_lot_from_its_alert(
    page: Page, live_server: Any, world: World, alert: SafetyAlert
) -> None:
    login(page, live_server, world.manager.username)
    page.goto(f"{live_server.url}/today/")
    card = page.get_by_role("region", name="Safety alerts")
    # In words first, with the statistic underneath.
    expect(card).to_contain_text("4 of 5 sessions (80 %) were followed by an adverse event")
    expect(card).to_contain_text("Bernoulli CUSUM")
    step(page, "surveillance-1-today")

    # The lot has an alert from each test; this one is the CUSUM's.
    card.locator(f'a[href="/safety/alerts/{alert.pk}/"]').click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(world.lot.lot_number)
    expect(page.get_by_role("region", name="What the numbers say")).to_contain_text(
        "against a clinic rate of 2 %"
    )
    step(page, "surveillance-2-alert")

    # A recall without a reason is refused, naming the field.
    page.get_by_role("button", name="Recall this lot").click()
    expect(page.get_by_role("alert").first).to_be_visible()
    page.get_by_label("Reason").fill("Cluster of mycobacterial infections after this lot.")
    page.get_by_role("button", name="Recall this lot").click()
    expect(page.get_by_role("status").first).to_contain_text("is recalled")
    patients = page.get_by_role("region", name="Patients who received this lot")
    for first, last, phone in PEOPLE:
        expect(patients).to_contain_text(f"{first} {last}")
        expect(patients).to_contain_text(phone)
    expect(patients.get_by_role("link", name="Download the list (CSV)")).to_be_visible()
    step(page, "surveillance-3-recalled")

    assert Lot.objects.get(pk=world.lot.pk).recalled
    alert.refresh_from_db()
    assert alert.status == SafetyAlert.Status.ACKNOWLEDGED
