"""Backup and restore of the SQLite database: a backup taken while the API keeps writing holds
every patient acknowledged before it began, and a restore is verified against its manifest.

Everything runs as the operator would run it: the writer, `backup` and `restore` are separate
processes on a file database (the test run's own SQLite database is in memory)."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from tests.scheduling_fixtures import ROOT, process_env

sqlite_only = pytest.mark.skipif(
    connection.vendor != "sqlite",
    reason="backup and restore are for SQLite; PostgreSQL is backed up with pg_dump "
    "(docs/backup.md)",
)

# Creates patients through the API, one request at a time, and prints each acknowledged id as
# soon as the 201 arrives, until the stop file appears.
WRITER = textwrap.dedent(
    """
    import json, os, sys
    import django
    django.setup()
    from django.test import Client
    from mesoclinic.accounts.models import Clinic, Membership, User
    from mesoclinic.api.models import ApiToken

    stop, most = sys.argv[1], int(sys.argv[2])
    clinic = Clinic.objects.create(name="Storm clinic", timezone="America/New_York")
    user = User.objects.create_user("desk", first_name="Dee")
    membership = Membership.objects.create(user=user, clinic=clinic, role="front_desk")
    token = ApiToken.issue(user, membership)[1]
    client = Client()
    n = 0
    while not os.path.exists(stop) and n < most:
        n += 1
        r = client.post(
            "/api/v1/patients",
            json.dumps({"first_name": "Storm", "last_name": str(n), "date_of_birth": "1990-01-01"}),
            content_type="application/json",
            headers={"Authorization": "Bearer " + token},
        )
        assert r.status_code == 201, r.content
        print(r.json()["id"], flush=True)
    """
)


def command(database_url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mesoclinic.cli", *args],
        env=process_env(database_url, **env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


def manifest_of(path: Path) -> dict[str, Any]:
    return json.loads(path.with_name(path.name + ".json").read_text())


def read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def counts_of(path: Path) -> dict[str, int]:
    db = read_only(path)
    try:
        tables = [
            r[0]
            for r in db.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        return {t: db.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
    finally:
        db.close()


@pytest.fixture
def live_db(migrated_sqlite_file: Path | None, tmp_path: Path) -> Path:
    assert migrated_sqlite_file is not None
    path = tmp_path / "live.sqlite3"
    shutil.copy(migrated_sqlite_file, path)
    return path


class Storm:
    """The writer process, and the ids it has been told were saved, in order."""

    def __init__(self, database: Path, stop: Path, most: int = 20_000):
        self.stop = stop
        self.acknowledged: list[int] = []
        self.process = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(stop), str(most)],
            env=process_env(f"sqlite:///{database}", ALLOWED_HOSTS="testserver"),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.acknowledged.append(int(line))

    def wait_for(self, count: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acknowledged) < count:
            assert self.process.poll() is None, self.process.stderr.read()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, f"only {len(self.acknowledged)} patients saved"
            time.sleep(0.02)

    def finish(self) -> None:
        self.stop.touch()
        try:
            self.process.wait(timeout=60)
        finally:
            if self.process.poll() is None:
                self.process.kill()
        # The reader thread owns stdout; it ends when the writer's last line is read.
        self.reader.join(timeout=10)
        assert self.process.stderr is not None
        assert self.process.returncode == 0, self.process.stderr.read()[-3000:]


@sqlite_only
class BackupTests:
    def test_backups_taken_during_a_write_storm_hold_every_acknowledged_patient(
        self, live_db: Path, tmp_path: Path
    ):
        url = f"sqlite:///{live_db}"
        storm = Storm(live_db, tmp_path / "stop")
        try:
            storm.wait_for(30)
            saved_before_middle = set(storm.acknowledged)
            middle = tmp_path / "backups" / "middle.sqlite3"
            ok(command(url, "backup", str(middle)))
            storm.wait_for(len(storm.acknowledged) + 30)  # The writer was never stopped.
            saved_before_end = set(storm.acknowledged)
            end = tmp_path / "backups" / "end.sqlite3"
            printed = ok(command(url, "backup", str(end)))
            saved_during_end = len(storm.acknowledged)
        finally:
            storm.finish()
        every_saved = set(storm.acknowledged)
        assert "patients_patient" in printed and "Rows per table" in printed
        # The writer was acknowledged while the last backup ran: the backup did not stop it.
        assert saved_during_end > len(saved_before_end)

        for backup, saved_before in ((middle, saved_before_middle), (end, saved_before_end)):
            manifest = manifest_of(backup)
            restored = tmp_path / f"restored-{backup.stem}.sqlite3"
            out = ok(command(f"sqlite:///{restored}", "restore", str(backup)))
            assert "every count as the manifest records" in out
            db = read_only(restored)
            try:
                assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
                ids = {r[0] for r in db.execute("SELECT id FROM patients_patient")}
            finally:
                db.close()
            assert saved_before <= ids, sorted(saved_before - ids)[:10]
            assert ids <= every_saved  # A snapshot, not something half-written.
            assert counts_of(restored) == manifest["counts"]
            assert manifest["counts"]["patients_patient"] == len(ids)
            assert "api.0002_idempotency_record" in manifest["migrations"]

    def test_a_restore_replaces_existing_data_only_with_force(self, live_db: Path, tmp_path):
        url = f"sqlite:///{live_db}"
        backup = tmp_path / "empty.sqlite3"
        ok(command(url, "backup", str(backup)))
        storm = Storm(live_db, tmp_path / "stop", most=5)
        storm.finish()
        refused = command(url, "restore", str(backup))
        assert refused.returncode != 0
        assert "already has data" in refused.stderr and "--force" in refused.stderr
        assert counts_of(live_db)["patients_patient"] == len(storm.acknowledged)
        ok(command(url, "restore", "--force", str(backup)))
        assert counts_of(live_db) == manifest_of(backup)["counts"]
        assert counts_of(live_db)["patients_patient"] == 0

    def test_it_refuses_to_restore_a_backup_changed_after_it_was_taken(
        self, live_db: Path, tmp_path: Path
    ):
        backup = tmp_path / "b.sqlite3"
        ok(command(f"sqlite:///{live_db}", "backup", str(backup)))
        with backup.open("r+b") as f:
            f.seek(200_000)
            f.write(b"\xff" * 16)
        refused = command(f"sqlite:///{tmp_path / 'fresh.sqlite3'}", "restore", str(backup))
        assert refused.returncode != 0
        assert "does not match its manifest" in refused.stderr
        assert not (tmp_path / "fresh.sqlite3").exists()

    def test_it_refuses_to_restore_without_the_manifest(self, live_db: Path, tmp_path: Path):
        backup = tmp_path / "b.sqlite3"
        ok(command(f"sqlite:///{live_db}", "backup", str(backup)))
        (tmp_path / "b.sqlite3.json").unlink()
        refused = command(f"sqlite:///{tmp_path / 'fresh.sqlite3'}", "restore", str(backup))
        assert refused.returncode != 0 and "manifest" in refused.stderr

    def test_photos_are_archived_beside_the_backup_and_put_back(
        self, live_db: Path, tmp_path: Path
    ):
        media = tmp_path / "media"
        (media / "photos" / "2026").mkdir(parents=True)
        (media / "photos" / "2026" / "a.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
        env = {
            "DJANGO_SETTINGS_MODULE": "mesoclinic.settings",
            "DATA_DIR": str(tmp_path / "data"),
            "MEDIA_ROOT": str(media),
        }
        backup = tmp_path / "b.sqlite3"
        out = ok(command(f"sqlite:///{live_db}", "backup", "--with-photos", str(backup), **env))
        assert "b.photos.tar" in out
        assert manifest_of(backup)["photos"] == "b.photos.tar"
        shutil.rmtree(media)
        fresh = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
        ok(command(fresh, "restore", "--with-photos", str(backup), **env))
        assert (media / "photos" / "2026" / "a.jpg").read_bytes() == b"\xff\xd8 not really a jpeg"


class BackupRefusalTests:
    def test_on_postgresql_it_refuses_and_gives_the_pg_dump_recipe(self, tmp_path: Path):
        done = command("postgres://nobody@127.0.0.1:5432/mesoclinic", "backup", str(tmp_path / "b"))
        assert done.returncode != 0
        assert "pg_dump --format=custom" in done.stderr and "pg_restore" in done.stderr
        assert not (tmp_path / "b").exists()
