"""Health for monitoring: /healthz says the process answers, /readyz says it can do its work.

/readyz checks, in order, that the database answers, that every migration is applied, and that
a worker has ticked recently (reminders and infection-watch prompts are sent only by the
worker). Each answer is JSON naming every check; 503 when any fails. Neither endpoint needs a
login, shows patient data or writes an audit row.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from mesoclinic.ops.models import WorkerHeartbeat


@dataclass(frozen=True)
class WorkerState:
    """What the heartbeat says: when a worker last ticked (None: never) and whether that is
    recent enough."""

    last_tick: dt.datetime | None
    fresh: bool


def worker_state(now: dt.datetime | None = None) -> WorkerState:
    """Fresh when some worker's last heartbeat is younger than WORKER_STALE_TICKS of that
    worker's own ticks: one running worker is enough. The table holds a row per worker seen in
    the last week, so reading it whole is cheap."""
    now = now or timezone.now()
    beats = list(WorkerHeartbeat.objects.only("ticked_at", "interval_seconds"))
    if not beats:
        return WorkerState(None, False)
    fresh = any(
        now - b.ticked_at
        <= dt.timedelta(seconds=settings.WORKER_STALE_TICKS * max(b.interval_seconds, 1))
        for b in beats
    )
    return WorkerState(max(b.ticked_at for b in beats), fresh)


def unapplied_migrations() -> list[str]:
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{m.app_label}.{m.name}" for m, _ in plan]


def _answer(body: dict[str, object], status: int) -> HttpResponse:
    response = HttpResponse(
        json.dumps(body, default=str), status=status, content_type="application/json"
    )
    response["Cache-Control"] = "no-store"
    # The access log has the line for this answer. Without this mark, Django would also log
    # every 503 as an error (and mail it to ADMINS) on each probe while the worker is down.
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


def healthz(request: HttpRequest) -> HttpResponse:
    """Alive: the process answers. It touches no database, so a database outage does not make
    a supervisor restart a process that would recover by itself."""
    return _answer({"status": "ok"}, 200)


def readyz(request: HttpRequest) -> HttpResponse:
    checks: dict[str, dict[str, object]] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = {"ok": True}
    except DatabaseError as exc:
        checks["database"] = {"ok": False, "detail": f"The database does not answer: {exc}"}
    if checks["database"]["ok"]:
        try:
            pending = unapplied_migrations()
            checks["migrations"] = (
                {"ok": True}
                if not pending
                else {
                    "ok": False,
                    "detail": (
                        "1 migration is not applied"
                        if len(pending) == 1
                        else f"{len(pending)} migrations are not applied"
                    )
                    + ": run `mesoclinic migrate`.",
                    "unapplied": pending,
                }
            )
        except DatabaseError as exc:
            checks["migrations"] = {"ok": False, "detail": f"Cannot read migrations: {exc}"}
        try:
            state = worker_state()
            if state.fresh:
                checks["worker"] = {
                    "ok": True,
                    "last_tick": state.last_tick.isoformat() if state.last_tick else None,
                }
            elif state.last_tick is None:
                checks["worker"] = {
                    "ok": False,
                    "detail": "No worker has ever run: start `mesoclinic worker`.",
                    "last_tick": None,
                }
            else:
                checks["worker"] = {
                    "ok": False,
                    "detail": "The worker's last tick is too old: is `mesoclinic worker` running?",
                    "last_tick": state.last_tick.isoformat(),
                }
        except DatabaseError as exc:
            checks["worker"] = {"ok": False, "detail": f"Cannot read the heartbeat: {exc}"}
    else:
        skipped = {"ok": False, "detail": "Not checked: the database does not answer."}
        checks["migrations"] = checks["worker"] = skipped
    ok = all(c["ok"] for c in checks.values())
    body: dict[str, object] = {"status": "ok" if ok else "unavailable", "checks": checks}
    return _answer(body, 200 if ok else 503)
