"""A throwaway PostgreSQL database for a benchmark that re-runs itself there."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


@contextlib.contextmanager
def throwaway_database(name: str) -> Iterator[str | None]:
    """Create the database `name` on the server at BENCH_POSTGRES_URL (by default
    postgres://postgres@127.0.0.1:5432/test) and yield its address, then drop it; yield None,
    having said why, when no server answers."""
    import psycopg

    server = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
    try:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {name}")
    except psycopg.Error as exc:
        print(f"PostgreSQL skipped: no server at {server} ({exc}).")
        yield None
        return
    try:
        yield server.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
