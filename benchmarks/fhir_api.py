"""Server-side time of a FHIR R4B `read` and `search` (mesoclinic/fhir/views.py), through the
whole stack with an API token, as a FHIR client calls them.

1. Load the demo clinic ten times over (DEMO_SCALE copies of its 30 patients, every state).
2. Baseline: `GET /fhir/R4B/metadata`, which reads nothing from the clinic.
3. Measure, in turn, round after round: a Patient read (every patient in turn), a Procedure read
   (every session in turn), a search of a patient's Procedures (`Procedure?patient=`, every
   patient in turn) and a search of the clinic's Observations by date with `_count=50`.
4. Print p50/p95 in ms, each request's query count, and the p95 ratio to the baseline.

The issue's target is a p95 under 50 ms for a read and a search.
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
    from mesoclinic.accounts.models import Clinic, Membership, User
    from mesoclinic.api.models import ApiToken
    from mesoclinic.courses.models import Session
    from mesoclinic.patients.models import Patient

    started = time.perf_counter()
    demo.load(scale=scale)
    built = time.perf_counter() - started
    clinic = Clinic.objects.get(name=demo.CLINIC_NAME)
    patients = list(Patient.objects.filter(clinic=clinic).values_list("pk", flat=True))
    sessions = list(Session.objects.filter(course__clinic=clinic).values_list("pk", flat=True))
    user = User.objects.get(username="practitioner")
    _, token = ApiToken.issue(user, Membership.objects.get(user=user, clinic=clinic))
    client = Client(HTTP_HOST="localhost", headers={"Authorization": f"Bearer {token}"})

    def get(path: str) -> None:
        response = client.get(path)
        if response.status_code != 200:
            raise AssertionError(f"{path} answered {response.status_code}")

    base = "/fhir/R4B"
    get(f"{base}/metadata")
    get(f"{base}/Patient/{patients[0]}")
    get(f"{base}/Procedure?patient={patients[0]}")

    patient_turn = itertools.count()
    session_turn = itertools.count()
    search_turn = itertools.count()
    samples = time_ms_interleaved(
        {
            "baseline": lambda: get(f"{base}/metadata"),
            "patient_read": lambda: get(
                f"{base}/Patient/{patients[next(patient_turn) % len(patients)]}"
            ),
            "procedure_read": lambda: get(
                f"{base}/Procedure/{sessions[next(session_turn) % len(sessions)]}"
            ),
            "procedure_search": lambda: get(
                f"{base}/Procedure?patient={patients[next(search_turn) % len(patients)]}"
            ),
            "observation_search": lambda: get(f"{base}/Observation?date=ge2020-01-01&_count=50"),
        },
        runs,
    )
    base95 = percentile(samples["baseline"], 0.95)
    names = ("patient_read", "procedure_read", "procedure_search", "observation_search")
    figures = {"baseline_p95": base95}
    for name in names:
        figures[f"{name}_p50"] = statistics.median(samples[name])
        figures[f"{name}_p95"] = percentile(samples[name], 0.95)
    machine = platform.processor() or platform.machine()
    print(f"\nFHIR R4B read and search ({machine}, SQLite)")
    print(
        f"  demo x{scale}: {len(patients)} patients, {len(sessions)} sessions, "
        f"loaded in {built:.1f} s; {runs} requests each"
    )
    print(f"  baseline (metadata)    p95 {base95:7.2f} ms")
    paths = {
        "patient_read": f"{base}/Patient/{patients[0]}",
        "procedure_read": f"{base}/Procedure/{sessions[0]}",
        "procedure_search": f"{base}/Procedure?patient={patients[0]}",
        "observation_search": f"{base}/Observation?date=ge2020-01-01&_count=50",
    }
    for name in names:
        p50, p95 = figures[f"{name}_p50"], figures[f"{name}_p95"]
        verdict = "under" if p95 < TARGET_MS else "OVER"
        path = paths[name]
        print(
            f"  {name:<22} p50 {p50:7.2f} ms  p95 {p95:7.2f} ms  "
            f"({p95 / base95:4.1f}x baseline; {verdict} the {TARGET_MS:.0f} ms target; "
            f"{count_queries(lambda path=path: get(path))} queries)"
        )
    return figures
