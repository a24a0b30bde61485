"""SMART App Launch in Debian's Chromium:

1. the manager registers an app on the clinic's page of apps;
2. the app sends a patient, on a phone, to the clinic's sign-in: she signs in to the portal,
   reads what the app asks for and allows it; the app trades the code for a token and reads
   her record over FHIR;
3. she withdraws the app on her page of apps, and its token reads nothing more.

Screenshots: docs/screenshots/smart-apps.png, smart-allow.png and smart-my-apps.png.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import assert_accessible, login, shot
from tests.browser.test_portal import PASSWORD, a_patient, check_page
from tests.browser.test_portal import phone as phone  # noqa: F401 - a fixture
from tests.conftest import World

pytestmark = pytest.mark.browser


def _fetch(url: str, data: dict[str, str] | None = None, token: str = "") -> tuple[int, Any]:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_a_patient_allows_an_app_it_reads_her_record_and_she_withdraws_it(
    page: Page, phone: Page, live_server: Any, world: World
) -> None:
    patient = a_patient(world, "Ana", "Lopez", "ana@example.com")
    callback = f"{live_server.url}/app-callback"

    # 1. The manager registers the app from the setup guide.
    login(page, live_server, world.manager.username)
    page.goto(f"{live_server.url}/manage/setup/")
    page.get_by_role("link", name="Apps that read the clinic's records").click()
    page.get_by_label("The app's name").fill("Skin Diary")
    page.get_by_label("Where the app returns after sign-in").fill(callback)
    page.get_by_role("button", name="Register the app").click()
    expect(page.get_by_role("status")).to_contain_text("Skin Diary is registered")
    client_id = page.locator("dd code").first.inner_text()
    shot(page, "smart-apps")
    assert_accessible(page, "smart-apps")

    # 2. The app sends Ana to sign in; she allows it on her phone.
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    )
    query = urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": callback,
            "scope": "patient/*.read launch/patient offline_access",
            "state": "s1",
            "aud": f"{live_server.url}/fhir/R4B",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    phone.goto(f"{live_server.url}/oauth/authorize/?{query}")
    phone.get_by_role("link", name="I am a patient: sign in to the patient portal").click()
    phone.get_by_label("Email address").fill("ana@example.com")
    phone.get_by_label("Password").fill(PASSWORD)
    phone.get_by_role("button", name="Sign in").click()
    expect(phone.get_by_role("heading", name="Allow Skin Diary?")).to_be_visible()
    expect(phone.get_by_text("Read all of your records")).to_be_visible()
    expect(phone.get_by_text("Know whose records it reads")).to_be_visible()
    check_page(phone, "smart-allow")
    with phone.expect_request(re.compile(r"/app-callback\?")) as sent:
        phone.get_by_role("button", name="Allow").click()
    back = urllib.parse.parse_qs(urllib.parse.urlsplit(sent.value.url).query)
    assert back["state"] == ["s1"]

    status, token = _fetch(
        f"{live_server.url}/oauth/token/",
        {
            "grant_type": "authorization_code",
            "code": back["code"][0],
            "redirect_uri": callback,
            "client_id": client_id,
            "code_verifier": verifier,
        },
    )
    assert status == 200, token
    assert token["patient"] == str(patient.pk)
    status, record = _fetch(
        f"{live_server.url}/fhir/R4B/Patient/{patient.pk}", token=token["access_token"]
    )
    assert status == 200 and record["name"][0]["family"] == "Lopez"

    # 3. She withdraws it from her portal; its token reads nothing more.
    phone.goto(f"{live_server.url}/my/")
    phone.get_by_role("link", name="see or withdraw them").click()
    expect(phone.get_by_role("heading", name="Skin Diary")).to_be_visible()
    check_page(phone, "smart-my-apps")
    phone.get_by_role("button", name="Withdraw Skin Diary").click()
    expect(phone.get_by_text("Skin Diary can read nothing more for you.")).to_be_visible()
    status, _ = _fetch(
        f"{live_server.url}/fhir/R4B/Patient/{patient.pk}", token=token["access_token"]
    )
    assert status == 401
