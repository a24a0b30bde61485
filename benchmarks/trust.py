"""What idempotency keys cost a creating request, and how long a backup takes.

1. Build a clinic with a front-desk user and a token.
2. Time POST /api/v1/patients through the whole request stack (Django's test client):
   without a key, with a new key each time (claim, run, store), and a replay of a stored key.
3. Fill the database to PATIENTS patients and time `backup` (snapshot, integrity check, counts,
   sha256) and `restore` into a fresh file, with the file's size.
4. Print p50/p95 in ms, and the key's p50 overhead against the request without one.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import tempfile
import time
from pathlib import Path

from benchmarks.timing import percentile

RUNS = 200
PATIENTS = 20_000


def run(runs: int = RUNS, patients: int = PATIENTS) -> dict[str, float]:
    from django.conf import settings
    from django.test import Client

    from mesoclinic.accounts.models import Clinic, Membership, User
    from mesoclinic.api.models import ApiToken
    from mesoclinic.ops import backup
    from mesoclinic.patients.models import Patient

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    clinic = Clinic.objects.create(name="Bench keys", timezone="America/New_York")
    user = User.objects.create_user("bench-desk", first_name="Dee")
    membership = Membership.objects.create(user=user, clinic=clinic, role="front_desk")
    token = ApiToken.issue(user, membership)[1]
    client = Client()
    body = json.dumps({"first_name": "B", "last_name": "Ench", "date_of_birth": "1990-01-01"})

    def post(key: str | None) -> float:
        headers = {"Authorization": f"Bearer {token}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        start = time.perf_counter()
        r = client.post("/api/v1/patients", body, content_type="application/json", headers=headers)
        elapsed = (time.perf_counter() - start) * 1000
        assert r.status_code == 201, r.content
        return elapsed

    for _ in range(20):  # warm up
        post(None)
    plain = [post(None) for _ in range(runs)]
    keyed = [post(f"k{i}") for i in range(runs)]
    replayed = [post(f"k{i}") for i in range(runs)]

    have = Patient.objects.count()
    Patient.objects.bulk_create(
        Patient(clinic=clinic, first_name="P", last_name=str(i), date_of_birth=dt.date(1990, 1, 1))
        for i in range(max(0, patients - have))
    )
    folder = Path(tempfile.mkdtemp(prefix="mesoclinic-bench-backup-"))
    start = time.perf_counter()
    made = backup.backup(folder / "b.sqlite3")
    backup_s = time.perf_counter() - start
    live = settings.DATABASES["default"]["NAME"]
    settings.DATABASES["default"]["NAME"] = folder / "restored.sqlite3"
    try:
        start = time.perf_counter()
        backup.restore(made.path)
        restore_s = time.perf_counter() - start
    finally:
        settings.DATABASES["default"]["NAME"] = live

    figures = {
        "plain_p50": percentile(plain, 0.5),
        "plain_p95": percentile(plain, 0.95),
        "keyed_p50": percentile(keyed, 0.5),
        "keyed_p95": percentile(keyed, 0.95),
        "replay_p50": percentile(replayed, 0.5),
        "replay_p95": percentile(replayed, 0.95),
        "backup_s": backup_s,
        "restore_s": restore_s,
        "backup_mb": made.manifest["size"] / 1e6,
        "patients": made.manifest["counts"]["patients_patient"],
    }
    print(
        f"Idempotency keys and backup ({platform.processor() or platform.machine()}, {runs} runs)"
    )
    for name in ("plain", "keyed", "replay"):
        print(
            f"  POST /patients {name:<8} p50 {figures[name + '_p50']:7.2f} ms  "
            f"p95 {figures[name + '_p95']:7.2f} ms"
        )
    print(f"  key overhead at p50: {figures['keyed_p50'] - figures['plain_p50']:+.2f} ms")
    print(
        f"  backup of {figures['patients']} patients ({figures['backup_mb']:.1f} MB): "
        f"{backup_s:.2f} s; restore and verify: {restore_s:.2f} s"
    )
    return figures
