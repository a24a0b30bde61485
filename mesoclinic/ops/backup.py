"""Backing up and restoring the SQLite database (docs/backup.md).

A backup is three files side by side:

    mesoclinic-20261206-221500.sqlite3        a consistent copy of the database
    mesoclinic-20261206-221500.sqlite3.json   its manifest: time, sha256, row counts, migrations
    mesoclinic-20261206-221500.photos.tar     the clinical photos, with --with-photos

PostgreSQL is backed up with its own tools (pg_dump), which docs/backup.md gives.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import tarfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings

MANIFEST_FORMAT = 1

PG_DUMP_RECIPE = """\
This database is PostgreSQL: back it up with PostgreSQL's own tools, for example

    pg_dump --format=custom --file=mesoclinic-$(date +%Y%m%d-%H%M%S).dump "$DATABASE_URL"

and restore with

    pg_restore --clean --if-exists --no-owner --dbname="$DATABASE_URL" mesoclinic-<time>.dump

docs/backup.md has the whole recipe, photos included."""


class BackupError(Exception):
    """A backup or restore that cannot be done, with a sentence saying why."""


@dataclass(frozen=True)
class Backup:
    path: Path
    manifest_path: Path
    photos_path: Path | None
    manifest: dict[str, Any]


def sqlite_path() -> Path:
    """The configured SQLite file, or BackupError with the PostgreSQL recipe."""
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.sqlite3":
        raise BackupError(PG_DUMP_RECIPE)
    name = str(db["NAME"])
    if name == ":memory:" or name.startswith("file:"):
        raise BackupError("The database is in memory, so there is no file to back up.")
    return Path(name)


def manifest_path_of(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def photos_path_of(path: Path) -> Path:
    return path.with_name(path.name.removesuffix(".sqlite3") + ".photos.tar")


def default_path(now: datetime | None = None) -> Path:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    return Path(settings.DATA_DIR) / "backups" / f"mesoclinic-{stamp}.sqlite3"


def backup(dest: Path, *, with_photos: bool = False) -> Backup:
    """Takes a consistent copy of the live database into `dest`.

    1. SQLite's online backup API copies every page in one step, inside one read transaction,
       so the copy is a snapshot of one moment even while the server keeps writing (in WAL
       mode writers do not wait for it, and it does not wait for them).
    2. The copy goes to a temporary file beside `dest`, is switched out of WAL mode so that it
       is one self-contained file, checked with PRAGMA integrity_check and counted, then
       flushed to disk and renamed over `dest`: a crash leaves either no backup or a whole one.
    3. The manifest records the counts, the applied migrations and the file's sha256, and is
       written the same way. Restore verifies the copy against it.
    4. With photos, the photo directory is archived after the snapshot, so every photo the
       snapshot knows of is in the archive (photos are only added, never edited in place).
    """
    source = sqlite_path()
    if not source.exists():
        raise BackupError(f"There is no database at {source} to back up.")
    dest = dest.resolve()
    if dest == source.resolve():
        raise BackupError("The backup cannot be written over the database itself.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        tmp.unlink(missing_ok=True)
        src = sqlite3.connect(source, timeout=60)
        try:
            copy = sqlite3.connect(tmp)
            try:
                src.backup(copy)
                copy.execute("PRAGMA journal_mode=DELETE")
                check_integrity(copy, tmp)
                counts = table_counts(copy)
                migrations = applied_migrations(copy)
            finally:
                copy.close()
        finally:
            src.close()
        _fsync(tmp)
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)
    finally:
        tmp.unlink(missing_ok=True)
    photos = None
    if with_photos:
        photos = photos_path_of(dest)
        archive_photos(photos)
    manifest = {
        "format": MANIFEST_FORMAT,
        "created_at": started.isoformat(),
        "database": "sqlite",
        "source": str(source),
        "file": dest.name,
        "size": dest.stat().st_size,
        "sha256": sha256_of(dest),
        "counts": counts,
        "migrations": migrations,
        "photos": photos.name if photos else None,
    }
    manifest_path = manifest_path_of(dest)
    _write_atomically(manifest_path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return Backup(dest, manifest_path, photos, manifest)


def restore(source: Path, *, force: bool = False, with_photos: bool = False) -> dict[str, int]:
    """Restores the backup at `source` into the configured database and returns its counts.

    The server and the worker must be stopped (docs/backup.md). The backup is checked before
    anything is written (its sha256 against the manifest, its integrity), copied in with
    SQLite's backup API (which also clears the target's write-ahead log, so no stale page of
    the old database survives), and the result is checked again: its integrity, and every
    table's row count against the manifest."""
    target = sqlite_path()
    manifest = read_manifest(source)
    if sha256_of(source) != manifest["sha256"]:
        raise BackupError(
            f"{source} does not match its manifest (the sha256 differs): "
            "it was changed or damaged after the backup."
        )
    if target.exists() and _has_tables(target) and not force:
        raise BackupError(
            f"The database at {target} already has data. Stop the server and the worker, "
            "then run restore again with --force to replace it."
        )
    photos = None
    if with_photos:
        if not manifest.get("photos"):
            raise BackupError("This backup was taken without photos (--with-photos).")
        photos = source.with_name(manifest["photos"])
        if not photos.exists():
            raise BackupError(f"The photo archive {photos} is missing.")
    backup_db = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        check_integrity(backup_db, source)
        target.parent.mkdir(parents=True, exist_ok=True)
        live = sqlite3.connect(target, timeout=60)
        try:
            backup_db.backup(live)
            live.execute("PRAGMA journal_mode=WAL")
            check_integrity(live, target)
            counts = table_counts(live)
        finally:
            live.close()
    finally:
        backup_db.close()
    if counts != manifest["counts"]:
        differences = sorted(
            f"{table}: {counts.get(table, 'missing')} rows, expected "
            f"{manifest['counts'].get(table, 'none')}"
            for table in set(counts) | set(manifest["counts"])
            if counts.get(table) != manifest["counts"].get(table)
        )
        raise BackupError(
            "The restored database does not match the backup: " + "; ".join(differences)
        )
    if photos is not None:
        restore_photos(photos)
    return counts


def read_manifest(source: Path) -> dict[str, Any]:
    if not source.exists():
        raise BackupError(f"There is no backup at {source}.")
    path = manifest_path_of(source)
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise BackupError(
            f"The manifest {path} is missing; without it the restore cannot be verified."
        ) from None
    except json.JSONDecodeError as exc:
        raise BackupError(f"The manifest {path} is not valid JSON ({exc}).") from None
    if manifest.get("format") != MANIFEST_FORMAT or not isinstance(manifest.get("counts"), dict):
        raise BackupError(f"The manifest {path} is not one this version of mesoclinic wrote.")
    return manifest


def check_integrity(db: sqlite3.Connection, path: Path) -> None:
    rows = [r[0] for r in db.execute("PRAGMA integrity_check")]
    if rows != ["ok"]:
        raise BackupError(f"{path} failed its integrity check: " + "; ".join(rows[:5]))


def table_counts(db: sqlite3.Connection) -> dict[str, int]:
    tables = [
        r[0]
        for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name"
        )
    ]
    return {t: db.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}


def applied_migrations(db: sqlite3.Connection) -> list[str]:
    try:
        rows = db.execute("SELECT app, name FROM django_migrations ORDER BY app, name")
    except sqlite3.OperationalError:
        return []
    return [f"{app}.{name}" for app, name in rows]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def archive_photos(dest: Path) -> None:
    if settings.PHOTO_STORAGE != "local":
        raise BackupError(
            "Photos are in object storage (PHOTO_STORAGE=s3): back up the bucket with its "
            "provider's tools (versioning or replication), as docs/backup.md says."
        )
    media = Path(settings.MEDIA_ROOT)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        with tarfile.open(tmp, "w") as tar:
            if media.exists():
                tar.add(media, arcname="media")
        _fsync(tmp)
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)
    finally:
        tmp.unlink(missing_ok=True)


def restore_photos(archive: Path) -> None:
    """Adds the archived photos to MEDIA_ROOT; photos already there are kept (their names are
    unique, so an archived photo never replaces a different one)."""
    media = Path(settings.MEDIA_ROOT)
    media.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if member.name == "media" or not member.name.startswith("media/"):
                continue
            member.name = member.name.removeprefix("media/")
            tar.extract(member, media, filter="data")


def _has_tables(path: Path) -> bool:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return bool(table_counts(db))
    finally:
        db.close()


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    with path.open("rb+") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
