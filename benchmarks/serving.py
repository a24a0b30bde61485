"""What serving safely costs: the health endpoints, and the middleware on every request.

1. Write a fresh worker heartbeat, so /readyz answers 200.
2. Time GET /healthz and GET /readyz; /readyz reads the migration graph on every probe, which
   is the one part that could be slow, so it is also timed on its own.
3. Time the login page through the full middleware, with the access log written (to
   /dev/null), and again without the access log, the security headers and the health
   middleware: the difference is what they add to every request.
4. Print p50/p95 in ms.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import statistics
from typing import Any

from benchmarks.timing import percentile, time_ms

RUNS = 300
OURS = (
    "mesoclinic.ops.middleware.AccessLogMiddleware",
    "mesoclinic.ops.middleware.HealthMiddleware",
    "mesoclinic.ops.middleware.SecurityHeadersMiddleware",
)


def run(runs: int = RUNS) -> dict[str, float]:
    from django.conf import settings
    from django.test import Client, override_settings

    from mesoclinic.ops.health import unapplied_migrations
    from mesoclinic.ops.models import WorkerHeartbeat

    WorkerHeartbeat.beat("benchmark:1", 60)

    def get(client: Client, path: str, status: int = 200) -> None:
        response = client.get(path)
        if response.status_code != status:
            raise AssertionError(f"{path} answered {response.status_code}")

    client = Client(HTTP_HOST="localhost")
    access = logging.getLogger("mesoclinic.access")
    level = access.level
    # The console handler writes to sys.stderr as it is at each line (ops/logging.py).
    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
        access.setLevel(logging.INFO)
        try:
            get(client, "/readyz")
            healthz = time_ms(lambda: get(client, "/healthz"), runs)
            readyz = time_ms(lambda: get(client, "/readyz"), runs)
            migrations = time_ms(unapplied_migrations, runs)
            get(client, "/accounts/login/")
            with_ours = time_ms(lambda: get(client, "/accounts/login/"), runs)
        finally:
            access.setLevel(level)
    without = [m for m in settings.MIDDLEWARE if m not in OURS]
    with override_settings(MIDDLEWARE=without):
        bare = Client(HTTP_HOST="localhost")
        get(bare, "/accounts/login/")
        without_ours = time_ms(lambda: get(bare, "/accounts/login/"), runs)

    figures: dict[str, Any] = {}
    print(
        f"\nServing: health and middleware ({platform.processor() or platform.machine()}, "
        f"SQLite; {runs} requests each)"
    )
    for name, samples in [
        ("healthz", healthz),
        ("readyz", readyz),
        ("readyz migration check", migrations),
        ("login page", with_ours),
        ("login page, bare", without_ours),
    ]:
        p50, p95 = statistics.median(samples), percentile(samples, 0.95)
        figures[f"{name}_p50"], figures[f"{name}_p95"] = p50, p95
        print(f"  {name:<24} p50 {p50:7.2f} ms  p95 {p95:7.2f} ms")
    added = figures["login page_p50"] - figures["login page, bare_p50"]
    print(f"  the ops middleware adds {added:+.2f} ms to a request (p50)")
    return figures
