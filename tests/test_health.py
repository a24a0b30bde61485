"""Health for monitoring: /healthz while the process lives, /readyz when the database answers,
every migration is applied and the worker ticks; and the Today page tells staff when the worker
has stopped, because reminders and infection-watch prompts then go unsent."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection
from django.test import Client

from mesoclinic.accounts.models import AuditEvent
from mesoclinic.ops.models import WorkerHeartbeat
from tests.conftest import World
from tests.test_serve import run
from tests.test_web import signed_in

NOW = dt.datetime(2026, 12, 7, 14, 0, tzinfo=dt.UTC)


def beat(at: dt.datetime, interval: float = 60, worker: str = "host:1") -> None:
    with time_machine.travel(at, tick=False):
        WorkerHeartbeat.beat(worker, interval)


def ready(client: Client | None = None, **headers: str) -> tuple[int, dict[str, Any]]:
    response = (client or Client()).get("/readyz", headers=headers)
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    return response.status_code, response.json()


class HealthTests:
    def test_healthz_answers_without_the_database(self) -> None:
        # This test has no database: any query would raise.
        response = Client().get("/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}
        assert response["Cache-Control"] == "no-store"

    def test_it_answers_a_monitor_by_ip_address_over_plain_http(
        self, db: None, settings: Any
    ) -> None:
        # Neither a host name outside ALLOWED_HOSTS nor the HTTPS redirect stands in the way of
        # a load balancer's probe.
        settings.ALLOWED_HOSTS = ["clinic.example.com"]
        settings.SECURE_SSL_REDIRECT = True
        response = Client().get("/healthz", headers={"Host": "10.0.0.5:8000"})
        assert response.status_code == 200
        assert Client().get("/readyz", headers={"Host": "10.0.0.5:8000"}).status_code in {200, 503}
        # Other pages still refuse the unknown host.
        assert Client().get("/accounts/login/", headers={"Host": "10.0.0.5"}).status_code == 400


class ReadinessTests:
    def test_it_is_ready_when_every_check_passes(self, db: None) -> None:
        beat(NOW - dt.timedelta(seconds=30))
        with time_machine.travel(NOW, tick=False):
            status, body = ready()
        assert status == 200
        assert body["status"] == "ok"
        assert body["checks"]["database"] == {"ok": True}
        assert body["checks"]["migrations"] == {"ok": True}
        assert body["checks"]["worker"]["ok"] is True

    def test_it_is_not_ready_before_any_worker_has_run(self, db: None) -> None:
        status, body = ready()
        assert status == 503
        assert body["status"] == "unavailable"
        assert body["checks"]["worker"] == {
            "ok": False,
            "detail": "No worker has ever run: start `mesoclinic worker`.",
            "last_tick": None,
        }

    def test_it_is_not_ready_when_the_worker_missed_three_ticks(self, db: None) -> None:
        beat(NOW - dt.timedelta(minutes=3, seconds=1), interval=60)
        with time_machine.travel(NOW, tick=False):
            status, body = ready()
        assert status == 503
        assert body["checks"]["worker"]["ok"] is False
        assert body["checks"]["worker"]["last_tick"] == "2026-12-07T13:56:59+00:00"
        # A worker ticking every ten minutes is judged by its own ticks.
        beat(NOW - dt.timedelta(minutes=20), interval=600, worker="host:2")
        with time_machine.travel(NOW, tick=False):
            assert ready()[0] == 200

    def test_it_is_not_ready_with_a_migration_unapplied(self, db: None) -> None:
        beat(NOW)
        # The database forgets it applied one migration, as after restoring an older backup.
        with connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM django_migrations WHERE app = 'ops' AND name = '0001_worker_heartbeat'"
            )
        with time_machine.travel(NOW, tick=False):
            status, body = ready()
        assert status == 503
        assert body["checks"]["migrations"]["ok"] is False
        assert body["checks"]["migrations"]["unapplied"] == ["ops.0001_worker_heartbeat"]
        assert body["checks"]["migrations"]["detail"] == (
            "1 migration is not applied: run `mesoclinic migrate`."
        )
        assert body["checks"]["database"] == {"ok": True}

    def test_it_is_not_ready_when_the_database_does_not_answer(self, tmp_path: Path) -> None:
        script = (
            "import json\n"
            "from django.test import Client\n"
            "from django.test.utils import setup_test_environment\n"
            "setup_test_environment()\n"
            "r = Client().get('/readyz')\n"
            "print(r.status_code, r.content.decode())\n"
        )
        # Nothing listens on port 1: the connection is refused at once.
        result = run(
            tmp_path,
            "shell",
            "-c",
            script,
            DATABASE_URL="postgres://postgres@127.0.0.1:1/mesoclinic",
        )
        assert result.returncode == 0, result.stderr
        status, body = result.stdout.strip().splitlines()[-1].split(" ", 1)
        assert status == "503"
        checks = json.loads(body)["checks"]
        assert checks["database"]["ok"] is False
        assert checks["database"]["detail"].startswith("The database does not answer")
        assert checks["worker"]["ok"] is False

    def test_it_needs_no_login_and_writes_no_audit_row(self, db: None) -> None:
        before = AuditEvent.objects.count()
        Client().get("/readyz")
        Client().get("/healthz")
        assert AuditEvent.objects.count() == before


class WorkerHeartbeatTests:
    def test_each_tick_of_the_worker_writes_its_heartbeat(self, db: None) -> None:
        with time_machine.travel(NOW, tick=False):
            call_command("worker", "--once", "--interval", "30", stdout=io.StringIO())
        [row] = WorkerHeartbeat.objects.all()
        assert row.ticked_at == NOW
        assert row.interval_seconds == 30
        with time_machine.travel(NOW + dt.timedelta(minutes=1), tick=False):
            call_command("worker", "--once", "--interval", "30", stdout=io.StringIO())
        # The same process name (host:pid) keeps one row.
        [row] = WorkerHeartbeat.objects.all()
        assert row.ticked_at == NOW + dt.timedelta(minutes=1)

    def test_a_worker_gone_for_a_week_is_forgotten(self, db: None) -> None:
        beat(NOW - dt.timedelta(days=8), worker="old:1")
        beat(NOW, worker="new:2")
        assert list(WorkerHeartbeat.objects.values_list("worker", flat=True)) == ["new:2"]


class TodayWorkerWarningTests:
    WARNING = "Reminders and infection-watch emails are not being sent"

    @pytest.fixture(autouse=True)
    def clock(self) -> Any:
        with time_machine.travel(NOW, tick=False) as traveller:
            yield traveller

    def test_staff_are_told_when_the_worker_stopped(self, world: World) -> None:
        # 13:40 UTC is 08:40 in the clinic's New York.
        beat(NOW - dt.timedelta(minutes=20))
        page = signed_in(world.front_desk).get("/today/").content.decode()
        assert (
            f"{self.WARNING}: the background worker last ran at 08:40. "
            "Please tell whoever looks after the server." in page
        )

    def test_a_stop_before_today_names_the_day(self, world: World) -> None:
        beat(NOW - dt.timedelta(days=2))
        page = signed_in(world.practitioner).get("/today/").content.decode()
        assert f"{self.WARNING}: the background worker last ran on 5 December at 09:00." in page

    def test_staff_are_told_when_no_worker_has_ever_run(self, world: World) -> None:
        page = signed_in(world.manager).get("/today/").content.decode()
        assert f"{self.WARNING}: the background worker has not run yet." in page

    def test_there_is_no_warning_while_the_worker_runs(self, world: World) -> None:
        beat(NOW - dt.timedelta(seconds=50))
        page = signed_in(world.front_desk).get("/today/").content.decode()
        assert self.WARNING not in page
