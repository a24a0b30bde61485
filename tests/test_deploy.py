"""The production settings of docs/deployment.md, read from the environment: Django's deployment
check finds nothing to warn about, HTTPS behind the proxy is on, and EMAIL_URL reaches a real
mail server. Each runs `mesoclinic` in its own process, as an operator would."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mesoclinic.settings import SMTP_BACKEND, email_from_url
from tests.test_reminders import Mailbox, smtp_server  # noqa: F401 - a fixture used below
from tests.test_serve import PRODUCTION, run

SHOW_SETTINGS = """
import json
from django.conf import settings
names = [
    "DEBUG", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", "SECURE_SSL_REDIRECT",
    "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD", "SECURE_PROXY_SSL_HEADER",
    "EMAIL_BACKEND", "EMAIL_HOST", "EMAIL_PORT", "EMAIL_HOST_USER", "EMAIL_HOST_PASSWORD",
    "EMAIL_USE_TLS", "EMAIL_USE_SSL",
]
print(json.dumps({name: getattr(settings, name, None) for name in names}))
"""


def settings_of(tmp_path: Path, **env: str) -> dict[str, Any]:
    result = run(tmp_path, "shell", "-c", SHOW_SETTINGS, **env)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


class DeployCheckTests:
    def test_the_documented_production_settings_pass_the_deployment_check(
        self, tmp_path: Path
    ) -> None:
        result = run(tmp_path, "check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
        assert result.returncode == 0, result.stderr
        assert "System check identified no issues" in result.stdout
        assert "WARNING" not in result.stderr + result.stdout

    def test_the_development_defaults_do_not(self, tmp_path: Path) -> None:
        result = run(tmp_path, "check", "--deploy", "--fail-level", "WARNING")
        assert result.returncode != 0
        for warning in ["security.W004", "security.W008", "security.W009", "security.W012"]:
            assert warning in result.stderr


class SettingsFromEnvironmentTests:
    def test_it_serves_https_behind_the_proxy_when_told(self, tmp_path: Path) -> None:
        found = settings_of(tmp_path, **PRODUCTION)
        assert found["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
        assert found["SECURE_SSL_REDIRECT"] is True
        assert found["SESSION_COOKIE_SECURE"] is True
        assert found["CSRF_COOKIE_SECURE"] is True
        assert found["SECURE_HSTS_SECONDS"] == 31536000
        assert found["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
        assert found["SECURE_HSTS_PRELOAD"] is True
        assert found["ALLOWED_HOSTS"] == ["clinic.example.com", "127.0.0.1"]
        assert found["CSRF_TRUSTED_ORIGINS"] == ["https://clinic.example.com"]

    def test_the_demo_on_plain_http_keeps_working_by_default(self, tmp_path: Path) -> None:
        found = settings_of(tmp_path)
        # Secure cookies or an HTTPS redirect would lock the demo's user out of
        # http://127.0.0.1:8000.
        assert found["SECURE_PROXY_SSL_HEADER"] is None
        assert found["SECURE_SSL_REDIRECT"] is False
        assert found["SESSION_COOKIE_SECURE"] is False
        assert found["CSRF_COOKIE_SECURE"] is False
        assert found["SECURE_HSTS_SECONDS"] == 0

    def test_each_https_setting_can_be_turned_off_on_its_own(self, tmp_path: Path) -> None:
        found = settings_of(tmp_path, **PRODUCTION, SECURE_SSL_REDIRECT="0")
        assert found["SECURE_SSL_REDIRECT"] is False
        assert found["SESSION_COOKIE_SECURE"] is True

    def test_email_url_sets_the_smtp_server(self, tmp_path: Path) -> None:
        found = settings_of(tmp_path, **PRODUCTION)
        assert found["EMAIL_BACKEND"] == SMTP_BACKEND
        assert (found["EMAIL_HOST"], found["EMAIL_PORT"]) == ("127.0.0.1", 2525)
        assert (found["EMAIL_HOST_USER"], found["EMAIL_HOST_PASSWORD"]) == ("mesoclinic", "secret")
        assert (found["EMAIL_USE_TLS"], found["EMAIL_USE_SSL"]) == (True, False)


class EmailUrlTests:
    def test_it_reads_each_kind_of_smtp_address(self) -> None:
        plain = email_from_url("smtp://mail.example.com")
        assert (plain["EMAIL_PORT"], plain["EMAIL_USE_TLS"], plain["EMAIL_USE_SSL"]) == (
            25,
            False,
            False,
        )
        starttls = email_from_url("smtp+tls://u:p@mail.example.com")
        assert (starttls["EMAIL_PORT"], starttls["EMAIL_USE_TLS"]) == (587, True)
        tls = email_from_url("smtps://mail.example.com:2465?timeout=9")
        assert (tls["EMAIL_PORT"], tls["EMAIL_USE_SSL"], tls["EMAIL_TIMEOUT"]) == (2465, True, 9)

    def test_it_decodes_a_password_with_an_at_sign(self) -> None:
        found = email_from_url("smtp+tls://clinic%40example.com:p%40ss%2Fw@mail.example.com:587")
        assert found["EMAIL_HOST_USER"] == "clinic@example.com"
        assert found["EMAIL_HOST_PASSWORD"] == "p@ss/w"
        assert found["EMAIL_HOST"] == "mail.example.com"

    def test_it_refuses_another_scheme_naming_the_setting(self) -> None:
        with pytest.raises(ValueError, match="EMAIL_URL starts with smtp://"):
            email_from_url("http://mail.example.com")

    def test_a_message_reaches_the_mail_server_it_names(
        self,
        tmp_path: Path,
        smtp_server: Mailbox,  # noqa: F811 - the fixture imported above
    ) -> None:
        result = run(
            tmp_path,
            "sendtestemail",
            "front-desk@clinic.example.com",
            **{**PRODUCTION, "EMAIL_URL": f"smtp://127.0.0.1:{smtp_server.port}"},
        )
        assert result.returncode == 0, result.stderr
        [received] = smtp_server.wait_for(1)
        assert received.rcpt_tos == ["front-desk@clinic.example.com"]
        assert received.mail_from == "clinic@clinic.example.com"
