"""The harness itself: Chromium starts, pages load from the live server alone, a user signs in,
screenshots are saved, and axe-core's findings fail a test."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, Request, expect

from mesoclinic.patients.models import Patient
from tests.browser.conftest import assert_accessible, login, shot
from tests.conftest import World

UNLABELLED = """<!doctype html>
<html lang="en"><head><title>Unlabelled</title></head>
<body><main><h1>Find a patient</h1><form><input type="text" name="q"></form></main></body>
</html>"""

LABELLED = """<!doctype html>
<html lang="en"><head><title>Labelled</title></head>
<body><main><h1>Find a patient</h1>
<form><label for="q">Name</label><input type="text" id="q" name="q"></form>
</main></body></html>"""


@pytest.mark.browser
class BrowserHarnessTests:
    def test_api_docs_load_from_the_server_alone(self, page: Page, live_server: Any) -> None:
        requested: list[str] = []

        def record(request: Request) -> None:
            requested.append(request.url)

        page.on("request", record)
        page.goto(live_server.url + "/api/v1/docs")
        expect(page.get_by_text("mesoclinic API").first).to_be_visible()
        page.wait_for_load_state("networkidle")
        shot(page, "api-docs")

        assert requested, "the browser recorded no requests"
        elsewhere = [url for url in requested if not url.startswith(live_server.url)]
        assert not elsewhere, f"the page asked other hosts: {elsewhere}"

    def test_a_manager_signs_in_and_sees_the_patients(
        self, page: Page, live_server: Any, world: World, patient: Patient
    ) -> None:
        login(page, live_server, world.manager.username)
        page.goto(live_server.url + "/admin/patients/patient/")
        expect(page.get_by_role("heading", name="Select patient to change")).to_be_visible()
        expect(page.get_by_role("link", name=patient.last_name)).to_be_visible()
        shot(page, "admin-patients")

    def test_axe_runs_on_the_api_docs(self, page: Page, live_server: Any) -> None:
        # Swagger UI is a third party's page, so its findings are not ours to assert on; this
        # checks only that axe loads into a real page of the app and reports.
        page.goto(live_server.url + "/api/v1/docs")
        expect(page.get_by_text("mesoclinic API").first).to_be_visible()
        try:
            results = assert_accessible(page, "api-docs")
        except AssertionError as e:
            assert "axe found" in str(e)
        else:
            assert results["passes"], "axe ran no checks"

    def test_axe_fails_an_unlabelled_input_and_passes_a_labelled_one(self, page: Page) -> None:
        page.set_content(UNLABELLED)
        with pytest.raises(AssertionError, match=r"(?m)^  label \(critical\)"):
            assert_accessible(page, "unlabelled")

        page.set_content(LABELLED)
        results = assert_accessible(page, "labelled")
        assert "label" in {rule["id"] for rule in results["passes"]}
