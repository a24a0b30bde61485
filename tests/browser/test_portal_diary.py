"""The side-effect diary on a phone (390 × 844, touch): six days after her session the patient
reports a bruise, which is expected, and a swelling that began the day of the session, which
is beyond the protocol's five days and opens a follow-up that the practitioner sees on Today;
then she reads her aftercare. Every portal page passes axe, fits the screen, and is saved to
docs/screenshots/portal-diary-<step>.png."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect

from mesoclinic.courses.actions import do_plan_course
from mesoclinic.courses.models import FollowUp, Session, SideEffect
from mesoclinic.protocols.models import ClinicProtocol
from tests.browser.conftest import _new_page, login, shot
from tests.browser.test_portal import PHONE, a_patient, check_page, sign_in
from tests.conftest import World

pytestmark = pytest.mark.browser


@pytest.fixture
def phone(chromium: Browser) -> Iterator[Page]:
    yield from _new_page(chromium, viewport=PHONE, has_touch=True)


@pytest.fixture
def desk(chromium: Browser) -> Iterator[Page]:
    yield from _new_page(chromium, viewport={"width": 1280, "height": 900})


def test_a_patient_reports_a_bruise_and_a_swelling_past_five_days_on_a_phone(
    world: World, live_server: Any, phone: Page, desk: Page
) -> None:
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
    performed = timezone.now().replace(second=0, microsecond=0) - dt.timedelta(days=6)
    # Made directly, past the gate: the gate is not what this test is about.
    Session.objects.bulk_create(
        [
            Session(
                course=course,
                number=1,
                performed_at=performed,
                practitioner=world.practitioner,
                stimulants_avoided=True,
            )
        ]
    )
    page = phone
    sign_in(page, live_server, "ana@example.com")
    page.get_by_role("link", name="Side effects").click()
    expect(page.get_by_role("heading", name="Side-effect diary")).to_be_visible()
    check_page(page, "diary")

    # A bruise, starting now: expected, for the protocol's week.
    page.get_by_role("link", name="Report a side effect").click()
    page.get_by_label("What you notice").select_option(label="Bruising")
    page.get_by_label("Mild: tender, warm, red or itchy").check()
    check_page(page, "diary-report")
    page.get_by_role("button", name="Send my report").click()
    expect(page.get_by_text("This is expected after your session.")).to_be_visible()
    expect(page.get_by_text("Bruising is expected to last up to 7 days")).to_be_visible()
    check_page(page, "diary-bruise-expected")
    bruise = SideEffect.objects.get(kind="bruising")
    assert bruise.status == "expected" and not bruise.follow_ups.exists()

    # A swelling since an hour after the session, six days ago: past the protocol's 5 days.
    page.get_by_role("link", name="Back to your diary").click()
    page.get_by_role("link", name="Report a side effect").click()
    page.get_by_label("What you notice").select_option(label="Swelling")
    onset = timezone.localtime(performed + dt.timedelta(hours=1), world.clinic.tz)
    page.get_by_label("When it started").fill(f"{onset:%Y-%m-%dT%H:%M}")
    page.get_by_label("Moderate: painful or swollen").check()
    page.get_by_role("button", name="Send my report").click()
    advice = page.get_by_role("status").filter(has_text="beyond what is expected")
    expect(advice).to_be_visible()
    expect(advice).to_contain_text("Call Demo Mesotherapy Clinic on +1 212 555 0100 today")
    expect(advice.get_by_role("link", name="+1 212 555 0100")).to_be_visible()
    check_page(page, "diary-swelling-beyond")
    swelling = SideEffect.objects.get(kind="swelling")
    assert swelling.status == "beyond_expected"
    assert swelling.follow_ups.get().status == FollowUp.Status.OPEN

    # The aftercare, from the report.
    page.get_by_role("link", name="Read your aftercare").click()
    expect(page).to_have_url(re.compile(r"/my/#courses$"))
    expect(page.get_by_role("heading", name="Aftercare", exact=True)).to_be_visible()
    expect(page.get_by_text(re.compile("No hot shower until")).first).to_be_visible()
    check_page(page, "diary-aftercare")

    # The portal's other care pages on the phone: a message to the clinic, the infection
    # watch and the notices.
    page.get_by_role("link", name="Messages").click()
    page.get_by_label("Your message").fill("The swelling on my thigh is still there.")
    page.get_by_role("button", name="Send my message").click()
    expect(page.get_by_text("Your message is sent to Demo Mesotherapy Clinic.")).to_be_visible()
    check_page(page, "messages")
    page.get_by_role("link", name="Injection sites").click()
    expect(page.get_by_role("heading", name="How are your injection sites?")).to_be_visible()
    check_page(page, "watch")
    page.get_by_role("link", name="Notices").click()
    expect(page.get_by_text("The clinic has sent you no notice.")).to_be_visible()
    check_page(page, "notices")

    # The follow-up is on the practitioner's Today at once.
    login(desk, live_server, world.practitioner.username)
    desk.goto(live_server.url + "/today/")
    expect(desk.get_by_text("Swelling (grade 2) is beyond expected").first).to_be_visible()
    shot(desk, "portal-diary-today-follow-up")
    # The message waits, unread, in the clinic's inbox.
    desk.get_by_role("link", name="Messages").click()
    expect(desk.get_by_text("1 unread message.")).to_be_visible()
    shot(desk, "portal-messages-inbox")
