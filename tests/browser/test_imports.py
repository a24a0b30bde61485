"""The CSV import in Debian's Chromium: a manager opens Import from the navigation, uploads a
patients file whose date column was not recognised, chooses it, reads the report of a bad row,
uploads the corrected file and imports it, then follows a link to a patient's chart. On a
phone (390 px) and a laptop (1024 px) the pages fit their width, and they pass axe. The
screenshots go to docs/screenshots/import-*.png."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import _new_page, assert_accessible, login, shot
from tests.conftest import World

pytestmark = pytest.mark.browser

BAD = "First name,Last name,Born on\nAna,Lopez,31/12/1980\nBen,Okafor,31/02/1975\n"
GOOD = BAD.replace("31/02/1975", "28/02/1975")


@pytest.fixture
def phone(chromium: Browser) -> Iterator[Page]:
    yield from _new_page(chromium, viewport={"width": 390, "height": 844})


@pytest.fixture
def laptop(chromium: Browser) -> Iterator[Page]:
    yield from _new_page(chromium, viewport={"width": 1024, "height": 768})


def fits(page: Page) -> None:
    """Nothing but the tables' own scroll boxes is wider than the window."""
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], width  # type: ignore[index]


def upload(page: Page, tmp_path: Path, content: str, name: str) -> None:
    page.get_by_role("link", name="Import", exact=True).click()
    expect(page.get_by_role("heading", name="Import from a file", level=1)).to_be_visible()
    fits(page)
    page.get_by_label("Patients").check()
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    page.get_by_label("CSV file").set_input_files(str(path))
    page.get_by_role("button", name="Upload and choose the columns").click()
    expect(page.get_by_role("heading", name="1. Which column holds what")).to_be_visible()


@pytest.mark.parametrize("size", ["phone", "laptop"])
def test_a_manager_imports_patients_after_fixing_the_report(
    request: Any, live_server: Any, world: World, tmp_path: Path, size: str
) -> None:
    page: Page = request.getfixturevalue(size)
    # The file writes dates day first, as a clinic writing 31/12/2026 types them; a clinic in
    # the United States on the default format would read them month first.
    world.clinic.date_format = "d/m/Y"
    world.clinic.save(update_fields=["date_format"])
    login(page, live_server, world.manager.username)
    upload(page, tmp_path, BAD, "patients.csv")
    fits(page)

    # "Born on" is not a header it knows: the date of birth is chosen by hand.
    page.get_by_role("button", name="Check every row").click()
    expect(page.get_by_text("Choose the column that holds the date of birth")).to_be_visible()
    page.get_by_label("Date of birth").select_option(label="Born on")
    page.get_by_role("button", name="Check every row").click()
    expect(page.get_by_role("status")).to_have_text("The check found 1 problem, listed below.")
    report = page.get_by_role("table").filter(has_text="Problem")
    expect(report).to_contain_text("3")
    expect(report).to_contain_text("Born on")
    expect(report).to_contain_text("“31/02/1975” is not a date")
    expect(page.get_by_role("button", name="Import")).to_have_count(0)
    expect(page.get_by_role("link", name="Download this report as CSV")).to_be_visible()
    fits(page)
    shot(page, f"import-report-{size}")
    assert_accessible(page, f"import-report-{size}")

    upload(page, tmp_path, GOOD, "patients-fixed.csv")
    page.get_by_label("Date of birth").select_option(label="Born on")
    page.get_by_role("button", name="Check every row").click()
    expect(page.get_by_text("Every row is correct.")).to_be_visible()
    page.get_by_role("button", name="Import 2 rows").click()
    expect(page.get_by_role("heading", name="Patients imported")).to_be_visible()
    fits(page)
    shot(page, f"import-done-{size}")
    assert_accessible(page, f"import-done-{size}")
    page.get_by_role("link", name="Ben Okafor").click()
    expect(page.get_by_role("heading", name="Ben Okafor", level=1)).to_be_visible()
