"""The patient portal's links work once, also when the same link is pressed in several
browsers at the same moment: six presses from two processes, and exactly one signs the patient
in and writes the audit row. The update that marks the link used matches only a row whose
`used_at` is empty (portal/actions.do_use_link), so the database decides (run on PostgreSQL
with DATABASE_URL set, as CI does; on SQLite the IMMEDIATE transaction serialises them)."""

from __future__ import annotations

import sys

from tests.scheduling_fixtures import race_processes, run_script

CHILD = [sys.executable, "-m", "tests.booking_race_child"]

# Run in a child on the shared database: "invite" sends the race clinic's patient an
# invitation (to an in-memory mailbox) and prints the link's path; "check" reads the link and
# its audit rows.
SCRIPT = """
import json, re, sys
import django
django.setup()
from django.core import mail
from mesoclinic.accounts.models import AuditEvent, User
from mesoclinic.patients.models import Patient
from mesoclinic.portal.actions import do_invite_patient
from mesoclinic.portal.models import PortalLink
mode, args = sys.argv[1], json.loads(sys.argv[2])
if mode == "invite":
    patient = Patient.objects.get(pk=args["patient"])
    patient.email = "race.patient@example.com"
    patient.save()
    do_invite_patient(patient, user=User.objects.get(pk=args["staff"]))
    [path] = re.findall(r"https?://[^/]+(/my/link/\\S+/)", mail.outbox[0].body)
    print(json.dumps(path))
else:
    link = PortalLink.objects.get()
    used = AuditEvent.objects.filter(
        object_type="portal.PortalLink", detail__portal="invitation used"
    ).count()
    print(json.dumps({"used": link.used_at is not None, "audits": used}))
"""

LOCMEM = "django.core.mail.backends.locmem.EmailBackend"


def test_parallel_presses_of_one_link_sign_in_once(shared_db: str) -> None:
    seeded = run_script(CHILD, shared_db, "seed", {})
    path = run_script(
        SCRIPT,
        shared_db,
        "invite",
        {"patient": seeded["patient"], "staff": seeded["front_desk"]},
        EMAIL_BACKEND=LOCMEM,
    )
    press = {"method": "POST", "path": path, "body": {}}
    outputs = race_processes(CHILD, shared_db, [{"requests": [press] * 3}] * 2)
    statuses = sorted(r["status"] for batch in outputs for r in batch)
    assert statuses == [302, 410, 410, 410, 410, 410], outputs
    assert run_script(SCRIPT, shared_db, "check", {}) == {"used": True, "audits": 1}
