"""The browser-test harness: Debian's Chromium under Playwright, against the live server.

`make browser-test` installs what these tests need (Chromium, axe-core) and runs them with
`pytest -m browser`; the default `pytest` run leaves them out. Every test here marks itself
`browser`, and uses `live_server`, which runs the app in a thread of this process: time-machine
moves the server's clock as well as the test's.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from tests.conftest import World, build_clinic

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "docs" / "screenshots"
AXE_JS = REPO / ".cache" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
# The full axe results go here, not into the repository: they are for reading a failure.
AXE_RESULTS = Path(tempfile.gettempdir()) / "mesoclinic-axe"

# Debian's Chromium, because `playwright install` cannot download its own browsers on these
# machines. The flags keep it from reaching the network on its own (updates, sync, QUIC probes),
# so the only requests a page makes are the ones the app asks for.
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# The app's own login page; until it exists, `login` falls back to the admin's.
LOGIN_URL = "/accounts/login/"
ADMIN_LOGIN_URL = "/admin/login/"

# The password `tests.conftest.make_user` gives every user.
PASSWORD = "pw"

DESKTOP = {"width": 1280, "height": 900}
TABLET = {"width": 820, "height": 1180}

# axe reports these impacts as failures; "moderate" and "minor" ones are in the JSON file only.
BLOCKING_IMPACTS = ("serious", "critical")


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    # Playwright's sync API runs an asyncio loop in this thread, and Django then refuses ORM calls
    # from it (SynchronousOnlyOperation) though they are made synchronously. The flag tells Django
    # these calls are safe; it is set only in a run that starts Playwright.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def chromium(playwright: Playwright) -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make browser-test` installs Debian's chromium")
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
    )
    yield browser
    browser.close()


def _new_page(browser: Browser, **options: Any) -> Iterator[Page]:
    context = browser.new_context(**options)
    # A missing element fails in seconds, not after Playwright's default 30.
    context.set_default_timeout(10_000)
    page = context.new_page()
    # The Content-Security-Policy refuses inline script and style (mesoclinic/ops/middleware.py).
    # Chromium reports each refusal on the console; any one of them fails the test that caused
    # it, so every page a journey visits is proven to work under the policy.
    refused: list[str] = []
    page.on(
        "console",
        lambda message: (
            refused.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    yield page
    context.close()
    assert not refused, "The page broke its Content-Security-Policy:\n" + "\n".join(refused)


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    """A desktop browser window, as the front desk and the manager use."""
    yield from _new_page(chromium, viewport=DESKTOP)


@pytest.fixture
def tablet_page(chromium: Browser) -> Iterator[Page]:
    """A tablet at the chair, held upright; it has touch, for signing consent with a finger."""
    yield from _new_page(chromium, viewport=TABLET, has_touch=True)


@pytest.fixture
def world(transactional_db: Any, live_server: Any) -> World:
    """The clinic of `tests.conftest`, made in the database the live server reads. Its manager
    is staff, so that they can sign in to the admin."""
    world = build_clinic("Demo Mesotherapy Clinic", "")
    world.manager.is_staff = True
    world.manager.save(update_fields=["is_staff"])
    return world


def shot(page: Page, name: str) -> Path:
    """Save a full-page screenshot to docs/screenshots/<name>.png, and return its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    return path


def assert_accessible(page: Page, name: str) -> dict[str, Any]:
    """Run axe-core on the page as it is now. Fail, naming each serious or critical violation,
    if there are any; otherwise return axe's results. The full results are written to
    <tmp>/mesoclinic-axe/<name>.json either way."""
    if not AXE_JS.exists():
        pytest.fail(f"{AXE_JS} is missing: `make browser-test` installs axe-core")
    # Evaluated through the DevTools protocol rather than added as a <script> element, which the
    # page's Content-Security-Policy would refuse, as it refuses any inline script.
    page.evaluate(AXE_JS.read_text())
    results: dict[str, Any] = page.evaluate("() => axe.run()")
    AXE_RESULTS.mkdir(parents=True, exist_ok=True)
    path = AXE_RESULTS / f"{name}.json"
    path.write_text(json.dumps(results, indent=2))
    blocking = [v for v in results["violations"] if v["impact"] in BLOCKING_IMPACTS]
    if blocking:
        lines = [f"axe found {len(blocking)} serious or critical violations on {name}:"]
        for v in blocking:
            target = v["nodes"][0]["target"] if v["nodes"] else "-"
            lines.append(f"  {v['id']} ({v['impact']}): {v['help']}; first at {target}")
        lines.append(f"Full results: {path}")
        raise AssertionError("\n".join(lines))
    return results


def login(page: Page, live_server: Any, username: str, password: str = PASSWORD) -> None:
    """Sign in through the app's login page, or the admin's while the app has none, and wait
    until the browser has left it."""
    response = page.goto(live_server.url + LOGIN_URL)
    if response is not None and response.status == 404:
        page.goto(live_server.url + ADMIN_LOGIN_URL)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name=re.compile(r"log in|sign in", re.IGNORECASE)).click()
    expect(page, f"{username} could not sign in").not_to_have_url(re.compile(r"/login/"))
