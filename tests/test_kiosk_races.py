"""Wrong tablet PINs typed at the same moment are all counted: eight wrong tries from two
processes (four threads each, each with its own connection) against a limit of five leave the
PIN locked after exactly five, with each of the first four told a different number of tries
left. accounts/pins.do_check_pin counts under a row lock (select_for_update); without it two
tries would read the same count and one would be lost. Run on PostgreSQL with DATABASE_URL
set, as CI does; on SQLite the IMMEDIATE transaction serialises them."""

from __future__ import annotations

from tests.scheduling_fixtures import race_processes, run_script

SCRIPT = """
import json, sys, threading
import django
django.setup()
from django.db import connection
from mesoclinic.accounts import pins
from mesoclinic.accounts.models import AuditEvent, Clinic, KioskPin, User
from tests.conftest import build_clinic
mode, args = sys.argv[1], json.loads(sys.argv[2])
if mode == "seed":
    world = build_clinic("PIN race clinic", "pin_")
    pins.do_set_pin(world.practitioner, "482913", clinic=world.clinic)
    print(json.dumps({"staff": world.practitioner.pk, "clinic": world.clinic.pk}))
elif mode == "race":
    staff = User.objects.get(pk=args["staff"])
    clinic = Clinic.objects.get(pk=args["clinic"])
    connection.close()
    results = []
    def guess(pin):
        try:
            found = pins.do_check_pin(staff, pin, clinic=clinic, patient_id=None)
            results.append([found.outcome.value, found.tries_left])
        finally:
            connection.close()
    print("ready", flush=True)
    sys.stdin.readline()
    threads = [threading.Thread(target=guess, args=(f"00000{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps(results))
else:
    row = KioskPin.objects.get(user_id=args["staff"])
    print(json.dumps({
        "failures": row.failures,
        "locked": row.locked_at is not None,
        "wrong_rows": AuditEvent.objects.filter(action="pin_failed").count(),
        "lockouts": AuditEvent.objects.filter(action="lockout").count(),
    }))
"""


def test_wrong_pins_typed_at_once_are_all_counted(shared_db: str) -> None:
    seeded = run_script(SCRIPT, shared_db, "seed", {})
    outputs = race_processes(SCRIPT, shared_db, [seeded, seeded])
    results = [r for batch in outputs for r in batch]
    assert len(results) == 8, outputs
    wrong = sorted(left for outcome, left in results if outcome == "wrong")
    assert wrong == [1, 2, 3, 4], results
    assert sum(outcome == "locked" for outcome, _ in results) == 4, results
    assert run_script(SCRIPT, shared_db, "check", seeded) == {
        "failures": 5,
        "locked": True,
        "wrong_rows": 4,
        "lockouts": 1,
    }
