"""Stock and vials in Debian's Chromium: the manager records a delivery of a lot, a count
that finds one vial missing, opens a vial and closes one past its beyond-use date from the
lot's page, after Today named it. Screenshots go to docs/screenshots/stock-today.png and
stock-lot.png.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from mesoclinic.formulary import stock
from mesoclinic.formulary.models import Vial
from tests.browser.conftest import assert_accessible, login, shot
from tests.conftest import World, ago

pytestmark = pytest.mark.browser


def test_the_manager_keeps_a_lots_stock_and_closes_a_vial_past_its_time(
    page: Page, live_server: Any, world: World
) -> None:
    lot = world.lidocaine_lot
    old = stock.open_vial(lot, user=world.practitioner, at=ago(days=30))
    login(page, live_server, world.manager.username)
    page.goto(f"{live_server.url}/today/")
    alerts = page.locator("section", has=page.get_by_role("heading", name="Vials and stock"))
    expect(alerts).to_contain_text("Past its beyond-use date")
    shot(page, "stock-today")
    alerts.get_by_role("link", name=old.label).click()

    expect(page.get_by_role("heading", name="Stock and vials")).to_be_visible()
    expect(page.get_by_text("No delivery or count of this lot is recorded yet")).to_be_visible()
    page.get_by_label("What happened").select_option("received")
    page.get_by_label("How many").fill("6")
    page.get_by_role("button", name="Record it").click()
    expect(page.get_by_text("The stock of the lot was updated.")).to_be_visible()
    # The vial opened 30 days ago came off the shelf, so 5 unopened are left: the count finds 4.
    page.get_by_label("What happened").select_option("count")
    page.get_by_label("How many").fill("4")
    page.get_by_role("button", name="Record it").click()
    expect(page.get_by_text("Please correct the fields marked below.")).to_be_visible()
    page.get_by_label("Details").fill("Shelf count by the manager")
    page.get_by_role("button", name="Record it").click()
    expect(page.get_by_text("4 unopened vials and 50.00 mL on hand")).to_be_visible()

    page.get_by_role("button", name="Open a new vial").click()
    expect(page.get_by_text(f"Vial 2 of {lot} is open.")).to_be_visible()
    row = page.get_by_role("row").filter(has=page.locator("span.tag.bad"))
    expect(row).to_contain_text("Past its beyond-use date")
    shot(page, "stock-lot")
    assert_accessible(page, "stock-lot")
    row.get_by_role("button", name="Close the vial").click()
    expect(page.get_by_text(f"{old.label} is closed.")).to_be_visible()
    assert Vial.objects.get(pk=old.pk).closed_reason == "beyond_use"
    expect(page.get_by_text("3 unopened vials and 40.00 mL on hand")).to_be_visible()
