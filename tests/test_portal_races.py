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


# The side-effect diary: "prepare" gives the race clinic's patient a portal login and returns
# what the report needs; "count" counts the side effects and follow-ups of the session.
DIARY = """
import datetime as dt, json, sys
import django
django.setup()
from django.utils import timezone
from mesoclinic.accounts.models import AuditEvent, User
from mesoclinic.courses.models import FollowUp, Session, SideEffect
from mesoclinic.patients.models import Patient
mode, args = sys.argv[1], json.loads(sys.argv[2])
session = Session.objects.filter(course_id=args["course"]).order_by("-number").first()
if mode == "prepare":
    patient = Patient.objects.get(pk=args["patient"])
    user = User.objects.create_user("race.diary@example.com", email="race.diary@example.com")
    Patient.objects.filter(pk=patient.pk).update(user=user, email="race.diary@example.com")
    onset = timezone.localtime(session.performed_at + dt.timedelta(days=1), patient.clinic.tz)
    print(json.dumps({"user": user.pk, "session": session.pk, "onset": f"{onset:%Y-%m-%dT%H:%M}"}))
else:
    effects = SideEffect.objects.filter(session=session)
    print(json.dumps({
        "effects": effects.count(),
        "follow_ups": FollowUp.objects.filter(side_effect__in=effects).count(),
        "audits": AuditEvent.objects.filter(object_type="courses.SideEffect").count(),
    }))
"""


def test_a_diary_report_sent_six_times_at_once_is_recorded_once(shared_db: str) -> None:
    seeded = run_script(CHILD, shared_db, "seed", {})
    course = seeded["completed_course"]
    ready = run_script(
        DIARY, shared_db, "prepare", {"patient": seeded["patient"], "course": course}
    )
    # "Something else", the day after the last session: beyond expected, a follow-up opens.
    body = {
        "session": ready["session"],
        "kind": "other",
        "description": "A hard lump",
        "onset_at": ready["onset"],
        "grade": 2,
        "area": "scalp",
    }
    press = {"login": ready["user"], "path": f"/my/diary/{course}/report/", "body": body}
    outputs = race_processes(CHILD, shared_db, [{"requests": [press] * 3}] * 2)
    statuses = [r["status"] for batch in outputs for r in batch]
    assert statuses == [302] * 6, outputs
    counted = run_script(DIARY, shared_db, "count", {"course": course})
    assert counted == {"effects": 1, "follow_ups": 1, "audits": 1}
