"""Every answer carries a Content-Security-Policy with no inline script, a Referrer-Policy and
nosniff; every answer Django makes is `no-store`, while static files keep their caching."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from mesoclinic.patients.models import Patient
from tests.conftest import World
from tests.test_pdf import FIRST
from tests.test_web import course_with_sessions, signed_in

TEMPLATES = Path(__file__).resolve().parents[1] / "mesoclinic" / "templates"

# An inline script is a <script> element without src; an inline handler is an on…= attribute.
# A script with no src runs inline; a JSON-LD data block (the public site's structured data) is
# not run by the browser, and a CSP's script-src does not apply to it.
INLINE_SCRIPT = re.compile(
    r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/ld\+json\")[^>]*>", re.IGNORECASE
)
INLINE_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.IGNORECASE)
INLINE_STYLE = re.compile(r"<style\b|<[^>]+\sstyle\s*=", re.IGNORECASE)


def directives(response: Any) -> dict[str, str]:
    policy = response["Content-Security-Policy"]
    return {
        part.split()[0]: " ".join(part.split()[1:])
        for part in (p.strip() for p in policy.split(";"))
        if part
    }


def assert_safe(response: Any, where: str) -> None:
    policy = directives(response)
    assert policy["script-src"] == "'self'", where
    assert policy["style-src"] == "'self'", where
    assert "unsafe" not in response["Content-Security-Policy"], where
    assert policy["frame-ancestors"] == "'none'", where
    assert response["Referrer-Policy"] == "same-origin", where
    assert response["X-Content-Type-Options"] == "nosniff", where
    assert "no-store" in response["Cache-Control"], where


@pytest.fixture
def course(world: World, patient: Patient) -> Any:
    return course_with_sessions(world, patient, 2, FIRST)


class SecurityHeadersTests:
    def test_every_kind_of_answer_has_the_headers(
        self, world: World, patient: Patient, course: Any
    ) -> None:
        manager = signed_in(world.manager)
        session = course.sessions.get(number=1)
        pages = [
            "/today/",
            "/patients/",
            f"/patients/{patient.pk}/",
            "/calendar/",
            f"/sessions/{session.pk}/",
            f"/courses/{course.pk}/plan.pdf",
            f"/sessions/{session.pk}/aftercare.pdf",
            f"/manage/lots/{world.lot.pk}/patients.csv",
        ]
        for path in pages:
            response = manager.get(path)
            assert response.status_code == 200, path
            assert_safe(response, path)
        api = world.api(world.manager)
        for path in ["/patients", f"/patients/{patient.pk}", "/nowhere"]:
            response = api.get(path)
            assert_safe(response, path)
        # Errors and pages for people not signed in are no-store too: the rule has no exceptions
        # to get wrong.
        anonymous = Client()
        for path in ["/accounts/login/", "/today/", "/no-such-page/"]:
            assert_safe(anonymous.get(path), path)

    def test_pages_carry_no_inline_script_handler_or_style(
        self, world: World, patient: Patient, course: Any
    ) -> None:
        manager = signed_in(world.manager)
        session = course.sessions.get(number=1)
        for path in ["/today/", f"/patients/{patient.pk}/", f"/sessions/{session.pk}/"]:
            html = manager.get(path).content.decode()
            assert not INLINE_SCRIPT.search(html), path
            assert not INLINE_HANDLER.search(html), path
            assert not INLINE_STYLE.search(html), path

    def test_no_template_has_an_inline_script_handler_or_style(self) -> None:
        offenders = []
        for template in TEMPLATES.rglob("*.html"):
            text = template.read_text()
            for pattern in (INLINE_SCRIPT, INLINE_HANDLER, INLINE_STYLE):
                offenders += [
                    f"{template.relative_to(TEMPLATES)}: {m[0]}" for m in pattern.finditer(text)
                ]
        assert offenders == []

    def test_static_files_keep_their_caching(self, client: Client) -> None:
        response = client.get("/static/css/app.css")
        assert response.status_code == 200
        assert "no-store" not in response.get("Cache-Control", "")
        assert "max-age" in response["Cache-Control"]
