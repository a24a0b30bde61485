"""Logs an operator can read and a collector can parse: one access line per request without the
query string or signed tokens, no traceback for 403 and 404, and JSON lines on request. The
in-process tests read what the product's own console handler (settings.LOGGING) writes."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
from django.test import Client

from mesoclinic.ops.logging import JsonFormatter
from mesoclinic.patients.models import Patient
from tests.conftest import World
from tests.test_serve import run
from tests.test_web import signed_in


class Console:
    """Everything written to standard error since the test began, where the configured console
    handler (mesoclinic.ops.logging.StderrHandler) writes."""

    def __init__(self, capsys: pytest.CaptureFixture[str]):
        self.capsys = capsys
        self.text = ""
        capsys.readouterr()

    def getvalue(self) -> str:
        self.text += self.capsys.readouterr().err
        return self.text


@pytest.fixture
def console(capsys: pytest.CaptureFixture[str]) -> Console:
    return Console(capsys)


class AccessLogTests:
    def test_it_writes_one_line_per_request_with_the_user(
        self, world: World, patient: Patient, console: Console
    ) -> None:
        signed_in(world.front_desk).get(f"/patients/{patient.pk}/")
        Client().get("/accounts/login/")
        lines = console.getvalue().splitlines()
        assert len(lines) == 2, lines
        chart, login = lines
        assert f"GET /patients/{patient.pk}/ 200 " in chart
        assert chart.endswith(f"ms user={world.front_desk.pk}")
        assert login.endswith("ms user=-")

    def test_it_names_the_api_caller(self, world: World, console: Console) -> None:
        world.api(world.practitioner).get("/patients")
        assert console.getvalue().strip().endswith(f"user={world.practitioner.pk}")

    def test_it_never_logs_the_query_string(
        self, world: World, patient: Patient, console: Console
    ) -> None:
        signed_in(world.front_desk).get("/patients/", {"q": patient.last_name})
        line = console.getvalue()
        assert "GET /patients/ 200" in line
        assert patient.last_name not in line
        assert "?" not in line

    def test_it_hides_the_token_of_a_signed_link(self, db: None, console: Console) -> None:
        token = "AbCdEf0123456789-signed-link-token"
        Client().get(f"/w/{token}/")
        Client().get(f"/feeds/{token}.ics")
        logged = console.getvalue()
        assert token not in logged
        assert "GET /w/[redacted]/ " in logged
        assert "GET /feeds/[redacted].ics 404" in logged

    def test_refusals_and_missing_pages_leave_no_traceback(
        self, world: World, console: Console
    ) -> None:
        front_desk = signed_in(world.front_desk)
        assert front_desk.get("/manage/staff/").status_code == 403
        assert front_desk.get("/patients/999999/").status_code == 404
        assert Client().get("/no-such-page/").status_code == 404
        logged = console.getvalue()
        assert "Traceback" not in logged
        assert "GET /manage/staff/ 403" in logged
        assert "GET /patients/999999/ 404" in logged

    def test_django_keeps_its_line_for_a_refusal_but_not_the_traceback(
        self, world: World, console: Console
    ) -> None:
        # With the access log off, Django's own "Forbidden" line is what the operator sees; it
        # comes with the exception attached, which the console handler drops.
        request_logger = logging.getLogger("django.request")
        level = request_logger.level
        request_logger.setLevel(logging.WARNING)
        try:
            assert signed_in(world.front_desk).get("/manage/staff/").status_code == 403
        finally:
            request_logger.setLevel(level)
        logged = console.getvalue()
        assert "Forbidden (Permission denied): /manage/staff/" in logged
        assert "Traceback" not in logged


class JsonLogTests:
    def test_each_line_is_a_json_object_with_the_request_fields(self, tmp_path: Path) -> None:
        script = (
            "from django.test import Client\n"
            "from django.test.utils import setup_test_environment\n"
            "setup_test_environment()\n"
            "Client().get('/no-such-page/?q=Lopez')\n"
        )
        result = run(tmp_path, "shell", "-c", script, LOG_FORMAT="json")
        assert result.returncode == 0, result.stderr
        [line] = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
        assert line["logger"] == "mesoclinic.access"
        assert line["level"] == "INFO"
        assert (line["method"], line["path"], line["status"]) == ("GET", "/no-such-page/", 404)
        assert isinstance(line["duration_ms"], float)
        assert line["user_id"] is None
        assert line["time"].endswith("+00:00")
        assert "Lopez" not in json.dumps(line)

    def test_a_traceback_is_one_field_of_one_line(self) -> None:
        try:
            raise RuntimeError("the mail server went away")
        except RuntimeError:
            record = logging.getLogger("mesoclinic.test").makeRecord(
                "mesoclinic.test",
                logging.ERROR,
                __file__,
                1,
                "worker tick failed",
                (),
                sys.exc_info(),
                extra={"clinic_id": 7},
            )
        text = JsonFormatter().format(record)
        assert "\n" not in text
        entry = json.loads(text)
        assert entry["message"] == "worker tick failed"
        assert entry["clinic_id"] == 7
        assert "RuntimeError: the mail server went away" in entry["exception"]

    def test_log_format_refuses_an_unknown_value_naming_the_setting(self, tmp_path: Path) -> None:
        result = run(tmp_path, "check", LOG_FORMAT="xml")
        assert result.returncode != 0
        assert "LOG_FORMAT is 'text' or 'json', not 'xml'" in result.stderr
