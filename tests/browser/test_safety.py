"""The infection watch in Debian's Chromium: the patient opens the link from a real email (sent
to an aiosmtpd server on loopback), reports a lump, is told the clinic will contact them; the
practitioner then finds the urgent follow-up on Today. Screenshots go to
docs/screenshots/watch-questionnaire.png, watch-answered.png, watch-follow-up-today.png,
watch-chart.png and watch-schedule.png (the course's whole schedule, linked from the chart).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from mesoclinic.patients.models import Patient
from mesoclinic.safety import watch
from mesoclinic.safety.models import WatchPrompt
from tests.browser.conftest import assert_accessible, login, shot
from tests.conftest import World
from tests.test_reminders import Mailbox
from tests.test_reminders import mail as mail  # noqa: F401 - a fixture
from tests.test_reminders import smtp_server as smtp_server  # noqa: F401 - a fixture
from tests.test_web import course_with_sessions

pytestmark = pytest.mark.browser


def test_a_patient_reports_a_lump_and_the_practitioner_sees_it_on_today(
    page: Page, live_server: Any, world: World, patient: Patient, mail: Mailbox
) -> None:
    course = course_with_sessions(world, patient, 1, timezone.now() - dt.timedelta(days=15))
    watch.do_plan_watch()
    [outcome] = watch.send_due("browser-test")
    assert outcome.status == "sent", outcome
    [received] = mail.wait_for(1)
    [url] = re.findall(r"https?://\S+/w/\S+/", received.text)

    page.goto(live_server.url + urlsplit(url).path)
    expect(page.get_by_role("heading", name="How are your injection sites?")).to_be_visible()
    for question, answer in (
        ("Is there a lump or a hard swelling where you were injected?", "Yes"),
        ("Is there any discharge or pus from an injection site?", "No"),
        ("Is there a wound or sore that will not heal?", "No"),
        ("Is there redness or warmth that is spreading?", "No"),
        ("Have you had a fever?", "No"),
    ):
        page.get_by_role("group", name=question).get_by_label(answer).check()
    page.get_by_label("Anything else you want the clinic to know?").fill("A hard bump, left thigh")
    shot(page, "watch-questionnaire")
    assert_accessible(page, "watch-questionnaire")
    page.get_by_role("button", name="Send my answers").click()

    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Demo Mesotherapy Clinic will contact you")
    expect(alert).to_contain_text("seek urgent care")
    shot(page, "watch-answered")
    assert_accessible(page, "watch-answered")

    login(page, live_server, world.practitioner.username)
    page.goto(live_server.url + "/today/")
    follow_ups = page.locator(
        "section", has=page.get_by_role("heading", name=re.compile("Follow-ups"))
    )
    row = follow_ups.get_by_role("row", name=re.compile("Infection watch, week 2"))
    expect(row).to_contain_text("Urgent")
    expect(row).to_contain_text("lump or hard swelling")
    expect(row).to_contain_text(str(patient))
    shot(page, "watch-follow-up-today")

    row.get_by_role("link", name=str(patient)).click()
    card = page.locator(".effects", has=page.get_by_role("heading", name="Infection watch"))
    expect(card).to_contain_text("lump or hard swelling")
    expect(card).to_contain_text("A hard bump, left thigh")
    # The answer is shown with its urgent follow-up; the whole schedule is a page of its own.
    answer = card.locator(".watch-answers li")
    expect(answer).to_have_count(1)
    expect(answer).to_contain_text("A hard bump, left thigh")
    expect(answer.get_by_text("Urgent follow-up")).to_be_visible()
    card.scroll_into_view_if_needed()
    shot(page, "watch-chart")

    card.get_by_role("link", name=re.compile("The whole schedule")).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Infection watch")
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(WatchPrompt.objects.filter(session__course=course).count())
    expect(page.locator("tbody")).to_contain_text("A hard bump, left thigh")
    shot(page, "watch-schedule")
    assert_accessible(page, "watch-schedule")
