"""A recall notice in Debian's Chromium: the manager recalls a lot and notifies the patient
who received it; the worker emails the patient (a real email, to an aiosmtpd server on
loopback); the patient opens the link on a phone and marks the notice read; the manager sees
the read time on the lot's page. Screenshots go to docs/screenshots/recall-notify.png,
recall-notice-phone.png and recall-notice-read.png.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from mesoclinic.notify import actions
from mesoclinic.patients.models import Patient
from tests.browser.conftest import assert_accessible, login, shot
from tests.conftest import World
from tests.test_reminders import Mailbox
from tests.test_reminders import mail as mail  # noqa: F401 - a fixture
from tests.test_reminders import smtp_server as smtp_server  # noqa: F401 - a fixture
from tests.test_web import course_with_sessions

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}


def test_a_recall_notice_is_sent_and_read(
    page: Page, live_server: Any, world: World, patient: Patient, mail: Mailbox
) -> None:
    # The allergy test and the session used the lot: the patient is exposed to it.
    course_with_sessions(world, patient, 1, timezone.now() - dt.timedelta(days=15))
    lot_url = f"{live_server.url}/manage/lots/{world.lot.pk}/"
    login(page, live_server, world.manager.username)
    page.goto(lot_url)
    page.get_by_label("Reason").fill("The supplier's notice of contamination")
    page.get_by_role("button", name="Recall the lot").click()
    expect(page.get_by_role("heading", name="Notices to the patients")).to_be_visible()
    page.get_by_label("The notice the patients will read").fill(
        "Please call us: a product used in your treatment has been recalled."
    )
    shot(page, "recall-notify")
    assert_accessible(page, "recall-notify")
    page.get_by_role("button", name="Notify exposed patients").click()
    expect(page.get_by_text("A notice to 1 patient is on its way.")).to_be_visible()
    expect(page.get_by_role("cell", name="Waiting to be sent").first).to_be_visible()

    outcomes = actions.send_due("browser-test")
    assert [o.status for o in outcomes if o.what == "notice"] == ["sent"], outcomes
    [received] = mail.wait_for(1)
    [url] = re.findall(r"https?://\S+/n/notice/\S+/", received.text)

    page.set_viewport_size(PHONE)
    page.context.clear_cookies()  # the patient's phone: no staff session
    page.goto(live_server.url + urlsplit(url).path)
    expect(page.get_by_role("heading", name=f"A message from {world.clinic.name}")).to_be_visible()
    expect(page.get_by_text("a product used in your treatment has been recalled")).to_be_visible()
    shot(page, "recall-notice-phone")
    assert_accessible(page, "recall-notice-phone")
    page.get_by_role("button", name="I have read this message").click()
    expect(page.get_by_role("status")).to_contain_text("the clinic knows you read this message")

    page.set_viewport_size({"width": 1280, "height": 900})
    login(page, live_server, world.manager.username)
    page.goto(lot_url)
    notices = page.locator(
        "section", has=page.get_by_role("heading", name="Notices to the patients")
    )
    row = notices.get_by_role("row", name=re.compile(patient.last_name))
    expect(row).to_contain_text("Sent")
    expect(row).not_to_contain_text("Not yet")
    shot(page, "recall-notice-read")
