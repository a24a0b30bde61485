"""Server-side time of the two pages staff open most, Today and the patient's chart, and of
the page patients open most, the portal's home.

1. Load the demo clinic ten times over (DEMO_SCALE copies of its 30 patients, every state).
2. Baseline: the login page, through the same client and middleware, with no data behind it.
3. Measure GET /today/ as the practitioner, and GET /patients/<id>/ for every patient in turn
   (the chart, which also writes its audit row); and GET /my/ as the demo's patient with a
   portal login (the portal's home, which writes its audit row too). The four pages are taken
   in turn, round after round, so the shared machine's busy spells fall on all of them.
4. Print p50/p95 in ms, the query count of each page, and the p95 ratio to the baseline.

The issues' target is a p95 under 50 ms for each page.
"""

from __future__ import annotations

import itertools
import platform
import statistics
import time

from benchmarks.timing import count_queries, percentile, time_ms_interleaved

DEMO_SCALE = 10
RUNS = 200
TARGET_MS = 50.0


def run(scale: int = DEMO_SCALE, runs: int = RUNS) -> dict[str, float]:
    """Load the demo `scale` times over, measure, print the figures and return them in ms."""
    from django.test import Client

    from mesoclinic import demo
    from mesoclinic.accounts.models import Clinic, User
    from mesoclinic.courses.models import Session
    from mesoclinic.patients.models import Patient

    started = time.perf_counter()
    demo.load(scale=scale)
    built = time.perf_counter() - started
    clinic = Clinic.objects.get(name=demo.CLINIC_NAME)
    patients = list(Patient.objects.filter(clinic=clinic).values_list("pk", flat=True))
    sessions = Session.objects.filter(course__clinic=clinic).count()

    anonymous = Client(HTTP_HOST="localhost")
    client = Client(HTTP_HOST="localhost")
    client.force_login(User.objects.get(username="practitioner"))
    patient = Client(HTTP_HOST="localhost")
    patient.force_login(User.objects.get(username=demo.PORTAL_LOGIN))

    def get(c: Client, path: str) -> None:
        response = c.get(path)
        if response.status_code != 200:
            raise AssertionError(f"{path} answered {response.status_code}")

    def queries(path: str) -> int:
        return count_queries(lambda: get(client, path))

    # Warm up the template and URL caches so the first request is not what is measured.
    get(anonymous, "/accounts/login/")
    get(client, "/today/")
    get(client, f"/patients/{patients[0]}/")
    get(patient, "/my/")

    turn = itertools.count()  # the chart cycles through every patient
    samples = time_ms_interleaved(
        {
            "baseline": lambda: get(anonymous, "/accounts/login/"),
            "today": lambda: get(client, "/today/"),
            "chart": lambda: get(client, f"/patients/{patients[next(turn) % len(patients)]}/"),
            "portal": lambda: get(patient, "/my/"),
        },
        runs,
    )
    baseline, today, chart, portal = (samples[k] for k in ("baseline", "today", "chart", "portal"))
    chart_queries = [queries(f"/patients/{pk}/") for pk in patients]
    portal_queries = count_queries(lambda: get(patient, "/my/"))

    base95 = percentile(baseline, 0.95)
    figures = {
        "baseline_p95": base95,
        "today_p50": statistics.median(today),
        "today_p95": percentile(today, 0.95),
        "chart_p50": statistics.median(chart),
        "chart_p95": percentile(chart, 0.95),
        "portal_home_p50": statistics.median(portal),
        "portal_home_p95": percentile(portal, 0.95),
    }
    machine = platform.processor() or platform.machine()
    print(f"\nPages: Today, the chart and the portal's home ({machine}, SQLite)")
    print(
        f"  demo x{scale}: {len(patients)} patients, {sessions} sessions, "
        f"loaded in {built:.1f} s; {runs} requests each"
    )
    print(f"  baseline (login page)  p95 {base95:7.2f} ms")
    for name in ("today", "chart", "portal_home"):
        p50, p95 = figures[f"{name}_p50"], figures[f"{name}_p95"]
        verdict = "under" if p95 < TARGET_MS else "OVER"
        print(
            f"  {name:<22} p50 {p50:7.2f} ms  p95 {p95:7.2f} ms  "
            f"({p95 / base95:4.1f}x baseline; {verdict} the {TARGET_MS:.0f} ms target)"
        )
    print(
        f"  queries: Today {queries('/today/')}, chart {min(chart_queries)}–{max(chart_queries)}, "
        f"portal home {portal_queries}"
    )
    return figures
