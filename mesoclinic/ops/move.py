"""Moving every row of the current database into an empty PostgreSQL one (docs/deployment.md,
Moving to PostgreSQL).

A clinic that started on the embedded SQLite database moves with

    mesoclinic move-to --database postgres://user:password@host:5432/mesoclinic

and then sets DATABASE_URL to that address. Photos are files (or objects in S3), not rows:
they are copied separately.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import dj_database_url
from django.apps import apps
from django.core.management.color import no_style
from django.db import DEFAULT_DB_ALIAS, connections, models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.utils import load_backend

TARGET_ALIAS = "move_target"
BATCH_ROWS = 2000
POSTGRESQL_ENGINE = "django.db.backends.postgresql"
# Rows that `migrate` itself writes into a new database: the content types and the permissions
# made from them. The target's own are replaced by the source's, so that every row pointing at
# a content type or a permission (the admin's log, users' and groups' permissions) keeps its
# meaning.
MIGRATE_FILLS = ("django_content_type", "auth_permission")


class MoveError(Exception):
    """A move that cannot be done or did not check out, with a sentence saying why."""


@dataclass(frozen=True)
class TableReport:
    table: str
    rows: int
    source_checksum: str
    target_checksum: str

    @property
    def matches(self) -> bool:
        return self.source_checksum == self.target_checksum


@dataclass(frozen=True)
class MoveReport:
    tables: list[TableReport]
    seconds: float
    copy_seconds: float

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)


def target_settings(url: str) -> dict[str, Any]:
    """The Django database settings for `url`, or MoveError when it is not PostgreSQL."""
    try:
        config: dict[str, Any] = dict(dj_database_url.parse(url))
    except ValueError as exc:
        raise MoveError(f"The address of the new database cannot be read ({exc}).") from None
    if config.get("ENGINE") != POSTGRESQL_ENGINE:
        raise MoveError(
            "The new database must be PostgreSQL, given as an address such as "
            "postgres://user:password@host:5432/mesoclinic."
        )
    if not config.get("NAME"):
        raise MoveError("The address of the new database does not name a database.")
    return config


def describe(config: dict[str, Any]) -> str:
    """The database's name and server, without its password."""
    host = config.get("HOST") or "localhost"
    port = f":{config['PORT']}" if config.get("PORT") else ""
    return f"{config['NAME']} on {host}{port}"


@contextmanager
def target_connection(url: str) -> Iterator[BaseDatabaseWrapper]:
    """A second database connection, named TARGET_ALIAS, to `url`; closed and forgotten after."""
    config = target_settings(url)
    source = connections[DEFAULT_DB_ALIAS].settings_dict
    if source["ENGINE"] == POSTGRESQL_ENGINE and all(
        (source.get(k) or "") == (config.get(k) or "") for k in ("HOST", "PORT", "NAME")
    ):
        raise MoveError("The new database is the one mesoclinic uses now; name another one.")
    configured = connections.configure_settings(
        {DEFAULT_DB_ALIAS: connections.settings[DEFAULT_DB_ALIAS], TARGET_ALIAS: config}
    )[TARGET_ALIAS]
    # The connection is handed to `connections` under its name, so that querysets and
    # transactions can say using=TARGET_ALIAS, but is not added to the configured databases:
    # nothing else (closing old connections after a request, the test runner) should meet it.
    target = load_backend(configured["ENGINE"]).DatabaseWrapper(configured, TARGET_ALIAS)
    connections[TARGET_ALIAS] = target
    try:
        try:
            target.ensure_connection()
        except Exception as exc:  # noqa: BLE001 - any failure to connect is reported in words.
            raise MoveError(
                f"The new database ({describe(config)}) cannot be reached: {_first_line(exc)}. "
                "Check the address, the user and the password, and that the database exists."
            ) from None
        yield target
    finally:
        target.close()
        del connections[TARGET_ALIAS]


def copied_models() -> list[type[models.Model]]:
    """Every model with a table of its own, many-to-many tables included, in dependency order:
    a table comes after the tables its foreign keys point at (a cycle, or a row pointing at its
    own table, is fine too, since PostgreSQL checks foreign keys at commit)."""
    found: dict[str, type[models.Model]] = {}
    for model in apps.get_models(include_auto_created=True):
        meta = model._meta
        if meta.managed and not meta.proxy and not meta.swapped:
            found.setdefault(meta.db_table, model)
    ordered: list[type[models.Model]] = []
    seen: set[str] = set()

    def visit(model: type[models.Model], path: set[str]) -> None:
        table = model._meta.db_table
        if table in seen or table in path:
            return
        for field in model._meta.local_concrete_fields:
            related = field.related_model
            if isinstance(related, type) and related._meta.concrete_model is not None:
                parent = found.get(related._meta.concrete_model._meta.db_table)
                if parent is not None:
                    visit(parent, path | {table})
        seen.add(table)
        ordered.append(model)

    for table in sorted(found):
        visit(found[table], set())
    return ordered


def normalised(value: Any) -> Any:
    """One value as the checksum sees it, the same whichever database it was read from."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        return value.isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return "D" + format(value.normalize(), "f") if value else "D0"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, memoryview | bytes | bytearray):
        return bytes(value).hex()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return value


class Checksum:
    """A sha256 for each row (its values normalised, as canonical JSON), summed modulo 2**256.

    The sum does not depend on the order the rows are read in, so the two databases may sort
    text keys differently and still agree; a row changed, lost or added changes it."""

    def __init__(self) -> None:
        self.total = 0
        self.rows = 0

    def add(self, row: tuple[Any, ...]) -> None:
        encoded = json.dumps([normalised(v) for v in row], default=str, ensure_ascii=False)
        self.total = (self.total + int(hashlib.sha256(encoded.encode()).hexdigest(), 16)) % (
            1 << 256
        )
        self.rows += 1

    def hexdigest(self) -> str:
        return f"{self.total:064x}"


def batches(model: type[models.Model], using: str) -> Iterator[list[tuple[Any, ...]]]:
    """The model's rows as tuples of its own columns' values, BATCH_ROWS at a time, read in
    primary-key order by key (never by offset), so memory stays bounded however big the table."""
    meta = model._meta
    fields = meta.local_concrete_fields
    assert meta.pk is not None
    key = [f.attname for f in fields].index(meta.pk.attname)
    query = model._base_manager.using(using).order_by("pk")
    last: Any = None
    while True:
        page = query if last is None else query.filter(pk__gt=last)
        rows = list(page.values_list(*[f.attname for f in fields])[:BATCH_ROWS])
        if not rows:
            return
        yield rows
        last = rows[-1][key]


def tables_with_rows(connection: BaseDatabaseWrapper, ignore: tuple[str, ...] = ()) -> list[str]:
    """The app's tables on `connection` that exist and hold at least one row."""
    existing = set(connection.introspection.table_names())
    quote = connection.ops.quote_name
    full = []
    with connection.cursor() as cursor:
        for model in copied_models():
            table = model._meta.db_table
            if table in existing and table not in ignore:
                cursor.execute(f"SELECT 1 FROM {quote(table)} LIMIT 1")
                if cursor.fetchone() is not None:
                    full.append(table)
    return full


def refuse_unless_empty(connection: BaseDatabaseWrapper, where: str) -> None:
    full = tables_with_rows(connection, ignore=MIGRATE_FILLS)
    if full:
        more = f" (and {len(full) - 1} other tables)" if len(full) > 1 else ""
        raise MoveError(
            f"The new database ({where}) is not empty: the table {full[0]} has rows{more}. "
            "mesoclinic moves only into an empty database, so that nothing is mixed or "
            "overwritten; create a new one (createdb) and name that."
        )


def move_to(url: str, say: Callable[[str], None] = print) -> MoveReport:
    """Copies every row of the current database into the empty PostgreSQL database at `url`.

    1. The source must have every migration applied, so both sides have the same tables.
    2. The target must have no rows in any of the app's tables; it is then migrated (which
       also refuses a target whose tables are not the app's).
    3. In one transaction on the target (and one on the source, so that nothing changes while
       it is read): the content types and permissions migrate made are removed, then every
       table is copied, in dependency order, BATCH_ROWS rows at a time, as the source has it,
       primary keys included.
    4. Every sequence is set to its table's largest key, so new rows continue after the copy.
    5. Foreign keys are checked, then every table's row count and checksum are read back from
       the target and compared with the source's. Any difference, or any error on the way,
       rolls the whole transaction back and leaves the target empty.
    """
    from mesoclinic.ops.health import unapplied_migrations

    started = time.monotonic()
    pending = unapplied_migrations()
    if pending:
        raise MoveError(
            f"The current database is not up to date ({len(pending)} migrations are not "
            "applied). Run `mesoclinic migrate` first, then move."
        )
    with target_connection(url) as target:
        where = describe(target.settings_dict)
        refuse_unless_empty(target, where)
        say(f"Preparing the tables of the new database ({where}).")
        migrate_target(url)
        copy_started = time.monotonic()
        try:
            with (
                transaction.atomic(using=DEFAULT_DB_ALIAS),
                transaction.atomic(using=TARGET_ALIAS),
            ):
                refuse_unless_empty(target, where)
                report = _copy_and_verify(target, say)
        except MoveError:
            raise
        except Exception as exc:  # noqa: BLE001 - the transaction is rolled back; say so.
            raise MoveError(
                f"The move failed and the new database was left empty: {_first_line(exc)}."
            ) from None
    finished = time.monotonic()
    return MoveReport(report, finished - started, finished - copy_started)


def migrate_target(url: str) -> None:
    """Runs `mesoclinic migrate` on the target, in a process of its own whose only database is
    the target: some data migrations read and write through the default database, so
    migrating a second database from this process would run them against the source."""
    environment = {**os.environ, "DATABASE_URL": url}
    environment.setdefault("DJANGO_SETTINGS_MODULE", "mesoclinic.settings")
    result = subprocess.run(
        [sys.executable, "-m", "mesoclinic.cli", "migrate", "--no-input"],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        why = lines[-1].rstrip(".") if lines else f"exit code {result.returncode}"
        raise MoveError(f"The new database could not be prepared: {why}.")


def _copy_and_verify(target: BaseDatabaseWrapper, say: Callable[[str], None]) -> list[TableReport]:
    quote = target.ops.quote_name
    ordered = copied_models()
    with target.cursor() as cursor:
        for table in reversed(MIGRATE_FILLS):
            cursor.execute(f"DELETE FROM {quote(table)}")
    say(f"Copying {len(ordered)} tables.")
    sources: dict[str, Checksum] = {}
    for model in ordered:
        meta = model._meta
        fields = meta.local_concrete_fields
        sql = (
            f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
            f"VALUES ({', '.join(['%s'] * len(fields))})"
        )
        checksum = sources[meta.db_table] = Checksum()
        for rows in batches(model, DEFAULT_DB_ALIAS):
            prepared = []
            for row in rows:
                checksum.add(row)
                prepared.append(
                    tuple(
                        f.get_db_prep_save(v, connection=target)
                        for f, v in zip(fields, row, strict=True)
                    )
                )
            with target.cursor() as cursor:
                cursor.executemany(sql, prepared)
    with target.cursor() as cursor:
        for statement in target.ops.sequence_reset_sql(no_style(), ordered):
            cursor.execute(statement)
        # Foreign keys are checked at commit; checking them now names the failure before the
        # counts are compared, and the transaction is still there to roll back.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    say("Checking every table against the current database.")
    report = []
    for model in ordered:
        table = model._meta.db_table
        copied = Checksum()
        for rows in batches(model, TARGET_ALIAS):
            for row in rows:
                copied.add(row)
        source = sources[table]
        report.append(TableReport(table, source.rows, source.hexdigest(), copied.hexdigest()))
        if copied.rows != source.rows:
            raise MoveError(
                f"The table {table} has {copied.rows} rows in the new database and {source.rows} "
                "in the current one, so the move was undone and the new database left empty."
            )
        if copied.hexdigest() != source.hexdigest():
            raise MoveError(
                f"The rows of the table {table} differ between the two databases, so the move "
                "was undone and the new database left empty."
            )
    return report


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0].rstrip(".") if text else type(exc).__name__
