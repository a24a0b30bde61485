"""The calendar fixtures shared by the scheduling, planning, API and web calendar tests: a
clinic with opening hours, two practitioners' working weeks and two rooms, on a frozen clock.
tests/conftest.py registers this module as a plugin, so the fixtures need no import."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import zoneinfo
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.db import connection

from mesoclinic.courses.actions import do_plan_course
from mesoclinic.courses.models import Course
from mesoclinic.patients.models import Patient
from mesoclinic.protocols.models import ClinicProtocol
from mesoclinic.scheduling.models import OpeningHours, Room, WorkingHours
from tests.conftest import World

NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
# "Now" for these tests is Monday 23 Nov 2026; most bookings are on Tuesday 1 Dec.
NOW = dt.datetime(2026, 11, 23, 8, 0, tzinfo=NEW_YORK)
TUESDAY = dt.date(2026, 12, 1)


def at(hour: int, minute: int = 0, day: dt.date = TUESDAY) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=NEW_YORK)


@pytest.fixture
def now() -> Any:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def cal(world: World, now: Any) -> World:
    return set_up_calendar(world)


def set_up_calendar(world: World) -> World:
    """The clinic opens 08:00–20:00 Monday to Saturday; Maria Silva (the practitioner) and
    the manager work 09:00–13:00 and 14:00–18:00 Monday to Friday; two rooms."""
    world.practitioner.first_name, world.practitioner.last_name = "Maria", "Silva"
    world.practitioner.save()
    for weekday in range(6):
        OpeningHours.objects.create(
            clinic=world.clinic, weekday=weekday, opens=dt.time(8), closes=dt.time(20)
        )
    for user in (world.practitioner, world.manager):
        for weekday in range(5):
            for starts, ends in ((9, 13), (14, 18)):
                WorkingHours.objects.create(
                    clinic=world.clinic,
                    user=user,
                    weekday=weekday,
                    starts=dt.time(starts),
                    ends=dt.time(ends),
                )
    Room.objects.create(clinic=world.clinic, name="Room 1")
    Room.objects.create(clinic=world.clinic, name="Room 2")
    return world


def room(world: World, name: str) -> Room:
    return Room.objects.get(clinic=world.clinic, name=name)


@pytest.fixture
def course(cal: World, patient: Patient) -> Course:
    return do_plan_course(
        patient,
        ClinicProtocol.current(cal.clinic, "cellulite"),  # type: ignore[arg-type]
        indication="cellulite",
        areas=["thighs", "buttocks"],
        cadence_days=7,
        planned_sessions=15,
        user=cal.manager,
    )


# A database that other processes can open, and the harness that runs scripts against it, for
# the races between processes (booking, idempotency, the reminder workers).

ROOT = Path(__file__).resolve().parents[1]


def process_env(database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a child process running the test settings on `database_url`."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url,
        "PYTHONPATH": str(ROOT),
        **extra,
    }


def _command(script: str | Sequence[str]) -> list[str]:
    """Python source is run with `python -c`; a sequence is already a command line."""
    return [sys.executable, "-c", script] if isinstance(script, str) else list(script)


def _last_json_line(out: str) -> Any:
    return json.loads(out.strip().splitlines()[-1])


def run_script(
    script: str | Sequence[str],
    database_url: str,
    mode: str,
    args: dict[str, Any],
    *,
    timeout: float = 180,
    **env: str,
) -> Any:
    """Run `script` in a child process on `database_url`, as `script <mode> <args as JSON>`,
    and return the last line it prints, parsed as JSON. `script` is Python source, or a
    command line such as `[sys.executable, "-m", "tests.booking_race_child"]`; `env` adds to
    the environment of `process_env`. The child must exit with status 0."""
    done = subprocess.run(
        [*_command(script), mode, json.dumps(args)],
        env=process_env(database_url, **env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return _last_json_line(done.stdout)


def race_processes(
    script: str | Sequence[str],
    database_url: str,
    arg_list: Sequence[dict[str, Any]],
    *,
    mode: str = "race",
    timeout: float = 180,
    **env: str,
) -> list[Any]:
    """Start one child process per item of `arg_list`, each running `script <mode> <its args
    as JSON>` as `run_script` does; wait until every child has printed "ready", then release
    them all at once by writing "go" to each one's stdin. Return each child's last printed
    line, parsed as JSON, in the order of `arg_list`. Every child must exit with status 0
    within `timeout` seconds; any still running afterwards is killed."""
    children = [
        subprocess.Popen(
            [*_command(script), mode, json.dumps(args)],
            env=process_env(database_url, **env),
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in arg_list
    ]
    try:
        for child in children:
            assert child.stdout is not None
            line = child.stdout.readline()
            assert line.strip() == "ready", (line, child.stderr.read() if child.stderr else "")
        for child in children:  # Release them all at once.
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        outputs: list[Any] = []
        for child in children:
            out, err = child.communicate(timeout=timeout)
            assert child.returncode == 0, err[-3000:]
            outputs.append(_last_json_line(out))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    return outputs


@pytest.fixture(scope="session")
def django_db_setup(
    django_db_setup: None, django_db_blocker: Any, tmp_path_factory: Any
) -> Iterator[None]:
    """pytest-django's test database (which `migrate` makes) and, on SQLite, a copy of it in a
    file, taken as soon as it is made, before any test has written to it: migrated_sqlite_file.
    (A `migrate` of its own, in a child process, takes as long as the test database's.)"""
    # pytest-django makes no test database when no test collected uses one.
    made = connection.settings_dict["NAME"] == connection.creation._get_test_db_name()
    if connection.vendor == "sqlite" and made:
        path = tmp_path_factory.mktemp("shared") / "template.sqlite3"
        with django_db_blocker.unblock():
            connection.ensure_connection()
            copy = sqlite3.connect(path)
            try:
                connection.connection.backup(copy)
                # As `migrate` leaves a file on the product's settings (settings._SQLITE_OPTIONS).
                copy.execute("PRAGMA journal_mode=WAL")
            finally:
                copy.close()
        _migrated_copy.append(path)
    yield


_migrated_copy: list[Path] = []


@pytest.fixture(scope="session")
def migrated_sqlite_file(django_db_setup: None, tmp_path_factory: Any) -> Path | None:
    """A migrated SQLite file, made once and copied for each test that needs one: the test
    database as it was migrated (django_db_setup), or when there is none, a file migrated in
    a child process."""
    if connection.vendor != "sqlite":
        return None
    if _migrated_copy:
        return _migrated_copy[-1]
    path = tmp_path_factory.mktemp("shared") / "template.sqlite3"
    done = subprocess.run(
        [sys.executable, "-m", "django", "migrate", "--noinput"],
        env=process_env(f"sqlite:///{path}"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return path


@pytest.fixture
def shared_db(transactional_db: Any, migrated_sqlite_file: Path | None, tmp_path: Path) -> str:
    """A database URL that other processes can open: the test database on PostgreSQL, a
    fresh copy of a migrated file on SQLite."""
    if connection.vendor == "postgresql":
        s = connection.settings_dict
        password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
        host, port = s.get("HOST") or "localhost", s.get("PORT") or 5432
        return f"postgres://{s['USER']}{password}@{host}:{port}/{s['NAME']}"
    assert connection.vendor == "sqlite" and migrated_sqlite_file is not None
    path = tmp_path / "shared.sqlite3"
    shutil.copy(migrated_sqlite_file, path)
    return f"sqlite:///{path}"
