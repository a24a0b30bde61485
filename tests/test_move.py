"""`mesoclinic move-to`: the demo clinic, photos and audit trail included, moves from the embedded
database into an empty PostgreSQL database on the local server, and the API answers from the copy.

The demo is loaded into the SQLite test database once, in a transaction rolled back after the
last test (as tests/test_demo.py does); each target is a new database with a unique name,
dropped afterwards. Without a PostgreSQL server on 127.0.0.1:5432 the tests are skipped."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from unittest import mock

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from django.db.models import Max

from mesoclinic import cli, demo
from mesoclinic.accounts.models import AuditEvent, Clinic, User
from mesoclinic.api.models import ApiToken
from mesoclinic.ops import move
from mesoclinic.outcomes.models import Photo
from mesoclinic.patients.models import Patient

# Its source must be the embedded database: the PostgreSQL run of .ci/run leaves it out.
pytestmark = pytest.mark.embedded

SERVER = "postgresql://postgres@127.0.0.1:5432"


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    import psycopg

    try:
        admin = psycopg.connect(f"{SERVER}/postgres", autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"No PostgreSQL server answers on 127.0.0.1:5432 as postgres ({exc}).")
    yield admin
    admin.close()


def new_database(admin: Any) -> str:
    name = f"mesoclinic_move_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_database(admin: Any, name: str) -> None:
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Moved:
    url: str
    output: str
    seconds: float
    token: str


@pytest.fixture(scope="class")
def moved(server: Any, django_db_setup: Any, django_db_blocker: Any) -> Iterator[Moved]:
    name = new_database(server)
    url = f"{SERVER}/{name}"
    try:
        with django_db_blocker.unblock(), transaction.atomic():
            assert demo.load() is True
            manager = User.objects.get(username="manager")
            _, token = ApiToken.issue(manager, manager.memberships.first())
            out = io.StringIO()
            started = time.monotonic()
            # Small batches, so that every table of any size is read in more than one.
            with mock.patch.object(move, "BATCH_ROWS", 50):
                call_command("move_to", "--database", url, stdout=out)
            yield Moved(url, out.getvalue(), time.monotonic() - started, token)
            transaction.set_rollback(True)
    finally:
        drop_database(server, name)


def checksums(using: str) -> dict[str, tuple[int, str]]:
    found = {}
    for model in move.copied_models():
        checksum = move.Checksum()
        for rows in move.batches(model, using):
            for row in rows:
                checksum.add(row)
        found[model._meta.db_table] = (checksum.rows, checksum.hexdigest())
    return found


class MoveToPostgresqlTests:
    def test_every_table_arrives_with_the_same_rows(self, moved: Moved, db: Any) -> None:
        assert Photo.objects.exists() and AuditEvent.objects.exists()
        source = checksums("default")
        with move.target_connection(moved.url):
            target = checksums(move.TARGET_ALIAS)
        assert target == source
        assert source["outcomes_photo"][0] == Photo.objects.count()
        assert source["accounts_auditevent"][0] == AuditEvent.objects.count()

    def test_it_prints_a_report_of_every_table(self, moved: Moved, db: Any) -> None:
        lines = moved.output.splitlines()
        for model in move.copied_models():
            table = model._meta.db_table
            count = model._base_manager.count()
            assert any(line.split() == [table, str(count), "matches"] for line in lines), table
        assert "every table's row count and checksum match" in moved.output
        assert "Photos are files, not rows, and were not copied" in moved.output
        rows = sum(m._base_manager.count() for m in move.copied_models())
        print(f"\nMoved the demo clinic ({rows} rows) in {moved.seconds:.1f} s")
        print(moved.output.splitlines()[-3])

    def test_content_types_and_permissions_keep_their_ids(self, moved: Moved, db: Any) -> None:
        here = dict(ContentType.objects.values_list("pk", "model"))
        with move.target_connection(moved.url):
            there = dict(ContentType.objects.using(move.TARGET_ALIAS).values_list("pk", "model"))
        assert there == here

    def test_new_rows_continue_after_the_moved_ones(self, moved: Moved, db: Any) -> None:
        with move.target_connection(moved.url), transaction.atomic(using=move.TARGET_ALIAS):
            events = AuditEvent.objects.using(move.TARGET_ALIAS)
            highest = events.aggregate(m=Max("pk"))["m"]
            made = events.create(action=AuditEvent.Action.VIEW, object_type="test")
            assert made.pk == highest + 1
            types = ContentType.objects.using(move.TARGET_ALIAS)
            highest = types.aggregate(m=Max("pk"))["m"]
            assert types.create(app_label="move", model="test").pk == highest + 1
            transaction.set_rollback(True, using=move.TARGET_ALIAS)

    def test_a_second_move_into_the_same_database_is_refused(
        self, moved: Moved, db: Any, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with pytest.raises(CommandError, match="is not empty: the table accounts_clinic has rows"):
            call_command("move_to", "--database", moved.url, stdout=io.StringIO())
        assert cli.move_to(["--database", moved.url]) == 1
        error = capsys.readouterr().err
        assert error.startswith("The new database (mesoclinic_move_")
        assert error.rstrip().endswith(".")

    def test_the_api_answers_from_the_moved_copy(self, moved: Moved, db: Any) -> None:
        clinic = Clinic.objects.get(name=demo.CLINIC_NAME)
        expected = sorted(
            [p.first_name, p.last_name] for p in Patient.objects.filter(clinic=clinic)
        )
        # A process of its own whose only database is the moved copy, as the server would be
        # once DATABASE_URL points at it; its audit rows are rolled back.
        script = (
            "import django, json, sys\n"
            "django.setup()\n"
            "from django.db import transaction\n"
            "from django.test import Client\n"
            "from django.test.utils import setup_test_environment\n"
            "setup_test_environment()\n"
            "with transaction.atomic():\n"
            "    r = Client().get('/api/v1/patients', headers={'Authorization': sys.argv[1]})\n"
            "    transaction.set_rollback(True)\n"
            "print(json.dumps({'status': r.status_code, 'body': r.json()}))\n"
        )
        environment = {**os.environ, "DATABASE_URL": moved.url}
        environment["DJANGO_SETTINGS_MODULE"] = "mesoclinic.settings"
        result = subprocess.run(
            [sys.executable, "-c", script, f"Bearer {moved.token}"],
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        answer = json.loads(result.stdout.strip().splitlines()[-1])
        assert answer["status"] == 200
        assert sorted([p["first_name"], p["last_name"]] for p in answer["body"]) == expected


class FailedMoveTests:
    def test_a_failure_leaves_the_new_database_empty(self, server: Any, db: Any) -> None:
        name = new_database(server)
        try:
            # A checksum that never agrees stands for any difference found at the end.
            with (
                mock.patch.object(move.Checksum, "hexdigest", lambda self: uuid.uuid4().hex),
                pytest.raises(move.MoveError, match="new database left empty"),
            ):
                move.move_to(f"{SERVER}/{name}", say=lambda _: None)
            with move.target_connection(f"{SERVER}/{name}") as target:
                assert move.tables_with_rows(target, ignore=move.MIGRATE_FILLS) == []
        finally:
            drop_database(server, name)

    def test_it_refuses_a_database_that_is_not_postgresql(self, db: Any) -> None:
        with pytest.raises(move.MoveError, match="must be PostgreSQL"):
            move.move_to("sqlite:///elsewhere.sqlite3", say=lambda _: None)
