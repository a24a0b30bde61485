"""A child process for the import race in tests/test_imports.py: it seeds a clinic with a
checked patients file in a database that other processes can open, or counts what the import
made. The race itself is tests/booking_race_child.py's `race` mode (signed-in web requests
from threads, all released at one moment).

Run as `python -m tests.import_race_child <mode> <json>` with DJANGO_SETTINGS_MODULE and
DATABASE_URL set (tests/scheduling_fixtures.process_env). Modes:

- `seed`: a clinic, its manager, and a patients file uploaded and checked; prints their ids.
- `count`: the clinic's patients and the audit rows that created them.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import django

django.setup()

from mesoclinic.accounts.models import AuditEvent, Clinic, Membership, User  # noqa: E402
from mesoclinic.imports import actions  # noqa: E402
from mesoclinic.patients.actions import do_setup_clinic  # noqa: E402
from mesoclinic.patients.models import Patient  # noqa: E402

FILE = b"First name,Last name,Date of birth\n" + b"".join(
    f"P{i},Racer{i},1980-01-{1 + i % 28:02d}\n".encode() for i in range(200)
)


def seed() -> dict[str, Any]:
    clinic = Clinic.objects.create(name="Import race", city="Paris", timezone="Europe/Paris")
    do_setup_clinic(clinic)
    manager = User.objects.create_user("import-race-manager", password="pw")
    Membership.objects.create(user=manager, clinic=clinic, role=Membership.Role.MANAGER)
    job = actions.do_upload(clinic, "patients", "race.csv", FILE, user=manager)
    assert actions.do_check(job, job.mapping) == []
    return {"clinic": clinic.pk, "manager": manager.pk, "job": job.pk}


def count(args: dict[str, Any]) -> dict[str, Any]:
    return {
        "patients": Patient.objects.filter(clinic_id=args["clinic"]).count(),
        "audits": AuditEvent.objects.filter(
            clinic_id=args["clinic"], action="create", object_type="patients.Patient"
        ).count(),
    }


if __name__ == "__main__":
    mode, args = sys.argv[1], json.loads(sys.argv[2])
    out = seed() if mode == "seed" else count(args)
    print(json.dumps(out, default=str), flush=True)
