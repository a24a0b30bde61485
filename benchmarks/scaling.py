"""Whether each page's cost stays flat as the clinic grows: the same pages at demo scales 1,
10 and 50 (30, 300 and 1,500 patients), each scale in a database of its own.

For each scale, in a child process (`python -m benchmarks scaling-here`, BENCH_SCALE):
1. load the demo `scale` times over;
2. request, in turn, round after round: the login page (the baseline), Today, a chart (the
   patients in turn), the calendar's week, a patient search (the surnames in turn), and the
   analytics page as the manager; and propose the booking of a course (the planned and
   active courses in turn), which is what "Book the course" computes;
3. print each one's p50, p95 and queries.

The parent prints one table of all the scales. Nothing may grow faster than what it shows:
Today and the chart show a bounded page, so they should stay flat; the calendar week and the
search show what is there; analytics reads every session of the range.
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any
from urllib.parse import quote

from benchmarks.timing import count_queries, percentile, time_ms_interleaved

SCALES = (1, 10, 50)
RUNS = 40
PAGES = ("baseline", "today", "chart", "calendar week", "search", "booking", "analytics")


def run_here(scale: int, runs: int = RUNS) -> dict[str, Any]:
    """One scale, on the database this process is set up with; its figures as JSON on the
    last line of the output."""
    from django.test import Client
    from django.utils import timezone

    from mesoclinic import demo
    from mesoclinic.accounts.models import Clinic, User
    from mesoclinic.courses.models import Course, Session
    from mesoclinic.patients.models import Patient
    from mesoclinic.scheduling import planning

    started = time.perf_counter()
    demo.load(scale=scale)
    built = time.perf_counter() - started
    clinic = Clinic.objects.get(name=demo.CLINIC_NAME)
    patients = list(Patient.objects.filter(clinic=clinic).values_list("pk", flat=True))
    names = sorted(set(Patient.objects.filter(clinic=clinic).values_list("last_name", flat=True)))
    courses = list(
        Course.objects.filter(
            clinic=clinic, status__in=[Course.Status.PLANNED, Course.Status.ACTIVE]
        ).select_related("clinic", "protocol", "patient")
    )
    sessions = Session.objects.filter(course__clinic=clinic).count()
    day = timezone.localdate(timezone.now(), clinic.tz).isoformat()

    anonymous = Client(HTTP_HOST="localhost")
    staff = Client(HTTP_HOST="localhost")
    staff.force_login(User.objects.get(username="practitioner"))
    manager = Client(HTTP_HOST="localhost")
    manager.force_login(User.objects.get(username="manager"))

    def get(client: Client, path: str) -> None:
        response = client.get(path)
        if response.status_code != 200:
            raise AssertionError(f"{path} answered {response.status_code}")

    chart_turn, name_turn, course_turn = itertools.count(), itertools.count(), itertools.count()
    paths = {
        "baseline": (anonymous, lambda: "/accounts/login/"),
        "today": (staff, lambda: "/today/"),
        "chart": (staff, lambda: f"/patients/{patients[next(chart_turn) % len(patients)]}/"),
        "calendar week": (staff, lambda: f"/calendar/?date={day}&view=week"),
        "search": (staff, lambda: f"/patients/?q={quote(names[next(name_turn) % len(names)])}"),
        "analytics": (manager, lambda: "/analytics/"),
    }

    def page(name: str) -> Any:
        client, path = paths[name]
        return lambda: get(client, path())

    def booking() -> None:
        planning.propose_course(courses[next(course_turn) % len(courses)])

    calls = {name: page(name) for name in paths}
    calls["booking"] = booking
    for call in calls.values():  # warm the caches
        call()
    samples = time_ms_interleaved(calls, runs)
    figures: dict[str, Any] = {"scale": scale, "patients": len(patients), "sessions": sessions}
    for name in PAGES:
        figures[name] = {
            "p50": statistics.median(samples[name]),
            "p95": percentile(samples[name], 0.95),
            "queries": count_queries(calls[name]),
        }
    print(
        f"  demo x{scale}: {len(patients)} patients, {sessions} sessions, loaded in {built:.0f} s",
        flush=True,
    )
    print(json.dumps(figures), flush=True)
    return figures


def run(scales: tuple[int, ...] = SCALES, runs: int = RUNS) -> list[dict[str, Any]]:
    """Every scale in a child process with a database of its own, then the table."""
    print(f"\nScaling: the same pages at demo scales {', '.join(map(str, scales))}", flush=True)
    found = []
    for scale in scales:
        env = {**os.environ, "BENCH_SCALE": str(scale), "BENCH_SCALE_RUNS": str(runs)}
        env.pop("DATABASE_URL", None)
        result = subprocess.run(
            [sys.executable, "-m", "benchmarks", "scaling-here"],
            env=env,
            capture_output=True,
            text=True,
            timeout=3600,
            check=True,
        )
        lines = [line for line in result.stdout.splitlines() if line.strip()]
        print(lines[-2], flush=True)
        found.append(json.loads(lines[-1]))
    print("  p50 / p95 in ms (queries)")
    header = "  " + f"{'':<14}" + "".join(f"{'x' + str(f['scale']):>24}" for f in found)
    print(header)
    for name in PAGES:
        cells = "".join(
            f"{f[name]['p50']:>9.1f} / {f[name]['p95']:>6.1f} ({f[name]['queries']:>3})"
            for f in found
        )
        print(f"  {name:<14}{cells}")
    return found
