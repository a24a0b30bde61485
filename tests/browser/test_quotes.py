"""Quotes, deposits and fees in Debian's Chromium:

1. the front desk quotes a course as a package and the patient accepts it by signature, drawn
   on the screen in the clinic;
2. the patient pays the deposit online from the portal, on the card provider's page (a server
   on loopback that answers as Stripe does), and comes back to see it received;
3. a missed visit's fee, by the terms the patient accepted, is invoiced and paid at the card
   terminal.

Screenshots: docs/screenshots/money-quote.png, money-quote-accepted.png,
portal-deposit-paid.png and money-no-show-fee.png.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from mesoclinic.billing.models import PolicyAcceptance, Quote
from mesoclinic.scheduling.models import Appointment
from tests.browser.conftest import assert_accessible, login, shot
from tests.browser.test_portal import a_patient, sign_in
from tests.browser.test_portal import phone as phone  # noqa: F401 - a fixture
from tests.conftest import World, ago
from tests.fake_stripe import FakeStripe
from tests.test_courses import plan
from tests.test_quotes import stripe as stripe  # noqa: F401 - a fixture
from tests.test_quotes import terms

pytestmark = pytest.mark.browser


def test_a_package_is_quoted_accepted_by_signature_and_its_deposit_paid_online(
    page: Page, phone: Page, live_server: Any, world: World, stripe: FakeStripe
) -> None:
    terms(world, stripe_secret_key=stripe.secret_key, stripe_webhook_secret=stripe.webhook_secret)
    patient = a_patient(world, "Ana", "Lopez", "ana@example.com")
    plan(world, patient)

    # 1. The front desk quotes the course as a package of 15 sessions, 10 % off.
    login(page, live_server, world.front_desk.username)
    page.goto(f"{live_server.url}/patients/{patient.pk}/account/")
    form = page.get_by_role("region", name="Quote a course")
    form.get_by_label("A package").check()
    form.get_by_label("Number of sessions").fill("15")
    form.get_by_label("Package price").fill("6000")
    form.get_by_label("Discount (%)").fill("10")
    form.get_by_role("button", name="Prepare the quote").click()
    expect(page.get_by_text("The quote is ready for the patient")).to_be_visible()
    text = page.get_by_role("article")
    expect(text).to_contain_text("Total: $5,400.00")
    expect(text).to_contain_text("Deposit due when you accept: $1,080.00.")
    expect(text).to_contain_text("no-show fee of $100.00")
    shot(page, "money-quote")
    assert_accessible(page, "money-quote")

    # The patient signs on the screen: a typed name and a drawn signature.
    page.get_by_label("Patient's full name, typed").fill("Ana Lopez")
    canvas = page.locator(".signature canvas")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + 30, box["y"] + 120)
    page.mouse.down()
    for x, y in ((90, 60), (150, 130), (220, 50), (300, 110)):
        page.mouse.move(box["x"] + x, box["y"] + y, steps=4)
    page.mouse.up()
    page.get_by_role("button", name="Accept and sign").click()
    expect(page.get_by_text("The quote is accepted, and invoice 1 is issued")).to_be_visible()
    expect(page.get_by_text("A deposit of $1,080.00 is due now")).to_be_visible()
    shot(page, "money-quote-accepted")
    assert_accessible(page, "money-quote-accepted")
    quote = Quote.objects.get()
    assert quote.status == "accepted" and quote.method == "drawn"
    assert quote.signature.startswith("M") and quote.witnessed_by == world.front_desk

    # 2. At home, the patient pays the deposit by card from the portal.
    sign_in(phone, live_server, "ana@example.com")
    phone.get_by_role("link", name="Quotes and payments").click()
    phone.get_by_role("link", name="Quote 1", exact=True).click()
    phone.get_by_role("button", name="Pay the deposit of $1,080.00 by card").click()
    # The card provider's page, on loopback.
    expect(phone).to_have_url(f"{stripe.url}/pay/" + list(stripe.sessions)[0])
    phone.get_by_role("button", name="Pay").click()
    expect(phone.get_by_text("your card payment of $1,080.00 is received")).to_be_visible()
    expect(phone.get_by_role("row", name="Invoice 1")).to_contain_text("$4,320.00")
    shot(phone, "portal-deposit-paid")
    assert_accessible(phone, "portal-deposit-paid")
    assert stripe.webhook_answers == [200]

    # The clinic sees the card payment on the invoice.
    page.get_by_role("link", name="Invoice 1").click()
    row = page.get_by_role("row", name="Card, online")
    expect(row).to_contain_text("$1,080.00")


def test_a_no_show_fee_is_invoiced_and_paid_at_the_terminal(
    page: Page, live_server: Any, world: World
) -> None:
    terms(world, no_show_fee=Decimal("75"))
    patient = a_patient(world, "Ana", "Lopez", "ana@example.com")
    course = plan(world, patient)
    PolicyAcceptance.objects.create(
        clinic=world.clinic,
        patient=patient,
        text="The terms.",
        text_sha256="0" * 64,
        late_cancel_hours=48,
        late_cancel_fee=Decimal("50"),
        no_show_fee=Decimal("75"),
        currency="USD",
        accepted_at=ago(days=20),
    )
    missed = ago(days=2)
    Appointment.objects.create(
        clinic=world.clinic,
        patient=patient,
        course=course,
        kind="session",
        practitioner=world.practitioner,
        starts_at=missed,
        ends_at=missed + dt.timedelta(minutes=45),
        status="no_show",
        no_show_at=missed + dt.timedelta(minutes=20),
    )
    login(page, live_server, world.front_desk.username)
    page.goto(f"{live_server.url}/patients/{patient.pk}/account/")
    fees = page.get_by_role("region", name="Fees that may be charged")
    expect(fees).to_contain_text("$75.00")
    fees.get_by_role("button", name="Invoice the no-show fee").click()
    expect(page.get_by_text("is issued for the fee")).to_be_visible()
    page.get_by_label("How the patient paid").select_option("card_terminal")
    page.get_by_label("Reference").fill("TRM-0077")
    page.get_by_role("button", name="Record the payment").click()
    expect(page.get_by_text("A payment of $75.00 was recorded.")).to_be_visible()
    expect(page.get_by_role("heading", name="Invoice 1")).to_contain_text("Settled")
    expect(page.get_by_role("cell", name="No-show fee: the visit of")).to_be_visible()
    shot(page, "money-no-show-fee")
    assert_accessible(page, "money-no-show-fee")
