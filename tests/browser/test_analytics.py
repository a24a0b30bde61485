"""Clinic analytics in Debian's Chromium: the manager opens Analytics from the navigation,
reads the charts, narrows the range, and the page passes axe. The screenshot goes to
docs/screenshots/analytics.png.

The hand-built clinic of tests/test_analytics.py is judged as of its NOW (15 Jun 2025); the
live server runs in a thread of this process, so time-machine moves its clock too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from playwright.sync_api import Page, expect

from tests.browser.conftest import assert_accessible, login, shot
from tests.conftest import World
from tests.test_analytics import NOW, build_hand_clinic

pytestmark = pytest.mark.browser


@pytest.fixture
def clock() -> Iterator[Any]:
    with time_machine.travel(NOW, tick=True) as traveller:
        yield traveller


def test_a_manager_reads_the_clinic_analytics(
    page: Page, live_server: Any, world: World, clock: Any
) -> None:
    world.manager.first_name, world.manager.last_name = "Jon", "Reyes"
    world.manager.save()
    world.practitioner.first_name, world.practitioner.last_name = "Mia", "Chen"
    world.practitioner.save()
    build_hand_clinic(world)
    login(page, live_server, world.manager.username)
    page.get_by_role("link", name="Analytics").click()
    expect(page.get_by_role("heading", name="Clinic analytics", level=1)).to_be_visible()
    expect(page.get_by_text("The clinic's own observed figures.")).to_be_visible()
    chart = page.get_by_role("img", name="Courses improved, by protocol")
    expect(chart).to_be_visible()
    expect(chart.locator("rect.bar")).to_have_count(1)
    expect(chart).to_contain_text("60 % (n = 5)")
    expect(chart).to_contain_text("too few to compare (n = 1)")
    expect(page.get_by_role("img", name="Courses improved at sessions 5 and 10")).to_be_visible()
    shot(page, "analytics")
    assert_accessible(page, "analytics")

    page.get_by_label("From", exact=True).fill("2025-05-01")
    page.get_by_label("To", exact=True).fill("2025-05-31")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_text("1 May 2025 and 31 May 2025")).to_be_visible()

    page.get_by_label("From", exact=True).fill("2025-06-01")
    page.get_by_label("To", exact=True).fill("2025-05-01")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("alert")).to_contain_text("must be on or before the end")
    assert_accessible(page, "analytics-refused")


def test_a_practitioner_has_no_analytics_link(
    page: Page, live_server: Any, world: World, clock: Any
) -> None:
    login(page, live_server, world.practitioner.username)
    expect(page.get_by_role("link", name="Analytics")).to_have_count(0)
    response = page.goto(live_server.url + "/analytics/")
    assert response is not None and response.status == 403
