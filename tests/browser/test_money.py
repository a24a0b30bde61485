"""Money in Debian's Chromium: the front desk opens a patient's account from the chart, issues
an invoice from the price list and takes a payment at the card terminal; the manager refunds
part of it, and the daily close adds up. Screenshots go to docs/screenshots/money-invoice.png
and money-daily-close.png.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from mesoclinic.billing.models import PriceItem
from mesoclinic.patients.models import Patient
from tests.browser.conftest import assert_accessible, login, shot
from tests.conftest import World

pytestmark = pytest.mark.browser


def test_an_invoice_is_paid_at_the_terminal_refunded_in_part_and_the_day_adds_up(
    page: Page, live_server: Any, world: World, patient: Patient
) -> None:
    PriceItem.objects.create(
        clinic=world.clinic, kind="session", name="Session, one area", amount=Decimal("500")
    )
    login(page, live_server, world.front_desk.username)
    page.goto(f"{live_server.url}/patients/{patient.pk}/")
    page.get_by_role("link", name="Account").click()
    expect(page.get_by_text("Nothing is owed either way.")).to_be_visible()
    page.locator("#id_item_0").select_option(label="Session, one area · $500.00")
    page.get_by_label("Quantity, line 1").fill("2")
    page.get_by_role("button", name="Issue the invoice").click()
    expect(page.get_by_text("Invoice 1 was issued.")).to_be_visible()
    expect(page.get_by_role("heading", name="Invoice 1")).to_contain_text("$1,000.00 due")

    page.get_by_label("How the patient paid").select_option("card_terminal")
    page.get_by_role("button", name="Record the payment").click()
    expect(page.get_by_text("give the terminal's or the bank's reference")).to_be_visible()
    page.get_by_label("Reference").fill("TRM-0042")
    page.get_by_role("button", name="Record the payment").click()
    expect(page.get_by_text("A payment of $1,000.00 was recorded.")).to_be_visible()
    expect(page.get_by_role("heading", name="Invoice 1")).to_contain_text("Settled")
    shot(page, "money-invoice")
    assert_accessible(page, "money-invoice")

    login(page, live_server, world.manager.username)
    page.goto(f"{live_server.url}/patients/{patient.pk}/account/")
    page.get_by_role("link", name="Invoice 1").click()
    page.get_by_label("Amount", exact=True).last.fill("200")
    page.get_by_label("Why").fill("One area was not treated")
    page.get_by_role("button", name="Refund").click()
    expect(page.get_by_text("A refund of $200.00 was recorded.")).to_be_visible()

    page.get_by_role("link", name="Money").click()
    page.get_by_role("link", name="Daily close").first.click()
    row = page.get_by_role("row", name="Card, at the clinic's terminal")
    expect(row).to_contain_text("$1,000.00")
    expect(row).to_contain_text("$800.00")
    expect(page.get_by_text("The day adds up.")).to_be_visible()
    shot(page, "money-daily-close")
    assert_accessible(page, "money-daily-close")
