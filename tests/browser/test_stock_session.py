"""A session charted in the chart's web form, in Debian's Chromium, on a course sold as a
package: the practitioner first chooses a vial past its beyond-use date and is refused on its
row, then chooses the open vial still in its time. The patient's account then shows one of the
package's sessions used, the lot's page shows less in that vial, and the stock page values
what is left. Screenshots go to docs/screenshots/stock-session-vial-refused.png and
stock-value.png.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from mesoclinic.billing import packages
from mesoclinic.courses.models import Session
from mesoclinic.formulary import stock
from mesoclinic.formulary.models import Product, Vial
from mesoclinic.patients.models import Patient
from tests.browser.conftest import assert_accessible, login, shot
from tests.conftest import World, ago
from tests.test_web import course_with_sessions

pytestmark = pytest.mark.browser


def test_a_charted_session_uses_a_package_session_and_draws_from_the_chosen_vial(
    page: Page, live_server: Any, world: World, patient: Patient
) -> None:
    # The course's product comes in 10 mL multi-dose vials, delivered at $24.00 a vial.
    world.product.vial = Product.Vial.MULTI_DOSE
    world.product.save()
    lot = world.lot
    stock.receive(lot, 10, user=world.manager, at=ago(days=12), vial_cost=Decimal("24.00"))
    # The allergy test opened vial 1 (0.2 mL drawn) and session 1 drew 2 mL from it.
    course = course_with_sessions(world, patient, 1, ago(days=8))
    [in_time] = Vial.objects.filter(lot=lot)
    assert stock.left_in(in_time) == Decimal("7.80")
    old = stock.open_vial(lot, user=world.practitioner, at=ago(days=30))
    packages.sell(course, 10, Decimal("1800"), user=world.front_desk)

    login(page, live_server, world.practitioner.username)
    page.goto(f"{live_server.url}/courses/{course.pk}/sessions/new/", wait_until="load")
    page.get_by_label("Thighs", exact=True).check()
    page.get_by_label("Lot number for Thighs").fill(lot.lot_number)
    page.get_by_label("Volume for Thighs").fill("2.5")
    vial = page.get_by_label("Vial for Thighs")
    vial.select_option(label="Vial 2, 10.00 mL left, past its beyond-use date: may not be used")
    page.get_by_role("button", name="Chart the session").click()
    refusal = page.get_by_role("alert").filter(has_text="may not go ahead")
    expect(refusal).to_contain_text("This can never be overridden.")
    row_error = page.locator("td.field-error").filter(has_text=f"Thighs: {old.label} was opened")
    expect(row_error).to_be_visible()
    shot(page, "stock-session-vial-refused")
    assert_accessible(page, "stock-session-vial-refused")
    assert not Session.objects.filter(course=course, number=2).exists()

    # The form kept what was typed; the practitioner chooses the vial still in its time.
    expect(page.get_by_label("Volume for Thighs")).to_have_value("2.5")
    expect(vial.locator("option", has_text="Vial 1, 7.80 mL left, use by ")).to_have_count(1)
    vial.select_option(str(in_time.pk))
    page.get_by_role("button", name="Chart the session").click()
    expect(page.get_by_text("Session 2 charted.")).to_be_visible()
    injection = Session.objects.get(course=course, number=2).injections.get()
    assert injection.vial == in_time

    # The manager sees one of the package's ten sessions used: nine are left.
    login(page, live_server, world.manager.username)
    page.goto(f"{live_server.url}/patients/{patient.pk}/account/")
    package = page.get_by_role("row").filter(has_text="10 for $1,800.00")
    expect(package.locator('td[data-label="Left"]')).to_have_text("9")

    # The lot's page: vial 1 holds 2.5 mL less.
    page.goto(f"{live_server.url}/manage/lots/{lot.pk}/")
    opened = page.get_by_role("row").filter(has=page.locator('td[data-label="Vial"]', has_text="1"))
    expect(opened.first.locator('td[data-label="Left"]')).to_have_text("5.30 mL")

    # The stock page: 8 unopened vials at $24.00 and 5.30 mL of vial 1 at $2.40 a mL; vial 2,
    # past its time, counts for nothing.
    page.get_by_role("link", name="The stock of every product").click()
    expect(page.get_by_role("heading", name=re.compile("^Stock"))).to_be_visible()
    row = page.get_by_role("row").filter(
        has=page.get_by_role("rowheader", name="Lipo mix", exact=True)
    )
    expect(row.locator('td[data-label="Unopened vials"]')).to_have_text("8")
    expect(row.locator('td[data-label="mL in open vials"]')).to_have_text("15.30")
    expect(row.locator('td[data-label="Value at cost"]')).to_have_text("$204.72")
    expect(page.get_by_text("The stock is worth $204.72 at cost.")).to_be_visible()
    shot(page, "stock-value")
    assert_accessible(page, "stock-value")
