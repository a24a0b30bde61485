"""Measurements in Debian's Chromium: the practitioner opens a chart whose session 1 waits for
a baseline, records the baseline visit through the form, and sees the progress chart, drawn
as inline SVG with the protocol's expected trajectory and its source. Screenshots go to
docs/screenshots/.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from mesoclinic.outcomes.models import Measurement
from mesoclinic.patients.models import Patient
from tests.browser.conftest import assert_accessible, login, shot
from tests.conftest import World
from tests.test_outcomes import fresh_course

pytestmark = pytest.mark.browser


def test_a_baseline_is_recorded_and_the_chart_draws_it(
    page: Page, live_server: Any, world: World
) -> None:
    patient = Patient.objects.create(
        clinic=world.clinic,
        first_name="Ana",
        last_name="Lopez",
        date_of_birth=dt.date(1990, 5, 17),
    )
    course = fresh_course(world, patient)
    login(page, live_server, world.practitioner.username)
    page.goto(f"{live_server.url}/patients/{patient.pk}/")
    card = page.locator(f"#course-{course.pk}")
    expect(card.get_by_text("Session 1 needs a baseline first")).to_be_visible()

    page.locator(f"#progress-{course.pk}").get_by_role("link", name="Record the baseline").click()
    expect(page.get_by_role("heading", name=re.compile("Record measurements"))).to_be_visible()
    taken = timezone.localtime(timezone.now() - dt.timedelta(days=1), world.clinic.tz)
    page.get_by_label("Taken at").fill(taken.strftime("%Y-%m-%dT%H:%M"))
    for label, value in (
        ("Number of evident depressions", "3"),
        ("Depth of depressions", "2"),
        ("Morphological appearance", "2"),
        ("laxity", "1"),
        ("Classification scale by Nürnberger", "2"),
    ):
        page.get_by_label(re.compile(label)).fill(value)
    page.get_by_label("Circumference: Left thigh (cm)").fill("57.5")
    page.get_by_label("Weight (kg)").fill("70.2")
    page.get_by_role("button", name="Record the measurements").click()

    expect(page.get_by_text("Recorded 3 measurement(s)")).to_be_visible()
    assert Measurement.objects.filter(course=course).count() == 3
    card = page.locator(f"#course-{course.pk}")
    expect(card.get_by_text("Session 1 needs a baseline first")).to_have_count(0)
    card = page.locator(f"#progress-{course.pk}")
    chart = card.locator("svg.progress-chart").first
    expect(chart).to_be_visible()
    expect(chart.locator("circle")).to_have_count(1)
    expect(chart.locator("polyline.expected")).to_have_count(1)
    expect(chart.locator("text.expected-label")).to_contain_text("a single source")
    chart.scroll_into_view_if_needed()
    shot(page, "outcomes-baseline-chart")
    assert_accessible(page, "outcomes-baseline-chart")

    card.get_by_role("link", name="Progress page").click()
    expect(page.locator("svg.progress-chart")).to_have_count(3)
    shot(page, "outcomes-progress-page")
    assert_accessible(page, "outcomes-progress-page")
