"""Issue 12, check-in under parallel requests: six front-desk screens mark the same visit
arrived at once; exactly one succeeds, the others are told it is already arrived, and one
audit row records it. The row lock in do_mark_arrived decides (run on PostgreSQL with
DATABASE_URL set, as CI does; on SQLite the IMMEDIATE transaction serialises them)."""

from __future__ import annotations

import sys

from tests.scheduling_fixtures import race_processes, run_script

CHILD = [sys.executable, "-m", "tests.booking_race_child"]

# Run in a child on the shared database (on SQLite it is another file than the test's):
# "visit" books a review that began a minute ago, "check" reads the visit and its audit rows.
SCRIPT = """
import datetime as dt, json, sys
import django
django.setup()
from django.utils import timezone
from mesoclinic.accounts.models import AuditEvent
from mesoclinic.scheduling.models import Appointment
mode, args = sys.argv[1], json.loads(sys.argv[2])
if mode == "visit":
    now = timezone.now()
    visit = Appointment.objects.create(
        clinic_id=args["clinic"], patient_id=args["patient"],
        practitioner_id=args["practitioner"], kind="review",
        starts_at=now - dt.timedelta(minutes=1), ends_at=now + dt.timedelta(minutes=29),
    )
    print(json.dumps(visit.pk))
else:
    visit = Appointment.objects.get(pk=args["visit"])
    audits = AuditEvent.objects.filter(
        object_id=str(visit.pk), action="update", detail__status="arrived"
    ).count()
    print(json.dumps({"status": visit.status, "audits": audits}))
"""


def test_parallel_check_ins_mark_the_visit_arrived_once(shared_db: str) -> None:
    seeded = run_script(CHILD, shared_db, "seed", {})
    visit = run_script(
        SCRIPT,
        shared_db,
        "visit",
        {
            "clinic": seeded["clinic"],
            "patient": seeded["patient"],
            "practitioner": seeded["practitioners"][0],
        },
    )
    token = seeded["tokens"][str(seeded["front_desk"])]
    request = {
        "method": "POST",
        "path": f"/api/v1/appointments/{visit}/arrived",
        "body": {},
        "token": token,
    }
    outputs = race_processes(CHILD, shared_db, [{"requests": [request] * 3}] * 2)
    results = [r for output in outputs for r in output]

    statuses = sorted(r["status"] for r in results)
    assert statuses == [200] + [422] * 5, results
    refused = [r["json"] for r in results if r["status"] == 422]
    assert all("An arrived appointment cannot be checked in." in str(p) for p in refused), refused
    assert run_script(SCRIPT, shared_db, "check", {"visit": visit}) == {
        "status": "arrived",
        "audits": 1,
    }
