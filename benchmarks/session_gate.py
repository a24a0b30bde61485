"""The session gate and charting a session, in a clinic with many patients and sessions.

1. Build one clinic with PATIENTS patients, each on a course with SESSIONS charted sessions.
2. Baseline: fetch one course by primary key (the cheapest read a request makes).
3. Measure check_session (every gate, read-only) on random courses.
4. Measure do_record_session (gates + writes + audit) on courses ready for a session.
5. Print p50/p95 in ms and the p95 ratio to the baseline.
"""

from __future__ import annotations

import datetime as dt
import platform
import random
import statistics
import time
from decimal import Decimal

from django.utils import timezone

from benchmarks.timing import percentile, time_ms

PATIENTS = 300
SESSIONS = 6
RUNS = 300


def _build(patients: int) -> tuple[list[int], object, list[object]]:
    from mesoclinic.accounts.models import Clinic, Membership, PractitionerLicence, User
    from mesoclinic.courses import actions
    from mesoclinic.courses.models import Course
    from mesoclinic.formulary.models import Ingredient, Lot, Product, ProductIngredient
    from mesoclinic.outcomes import scales
    from mesoclinic.outcomes.actions import do_record_measurement
    from mesoclinic.outcomes.logic import Raw
    from mesoclinic.patients.actions import do_screen_patient, do_setup_clinic, do_sign_consent
    from mesoclinic.patients.models import Patient, ScreeningForm
    from mesoclinic.protocols.models import ClinicProtocol

    clinic = Clinic.objects.create(name="Bench", timezone="America/New_York", currency="USD")
    do_setup_clinic(clinic)
    doc = User.objects.create_user("bench-doc", password="x")
    Membership.objects.create(user=doc, clinic=clinic, role=Membership.Role.PRACTITIONER)
    PractitionerLicence.objects.create(
        user=doc,
        clinic=clinic,
        kind="physician",
        number="1",
        jurisdiction="NY",
        expires_on=dt.date.today() + dt.timedelta(days=365),
    )
    product = Product.objects.create(clinic=clinic, name="Mix", supplier="S", vial="single")
    ProductIngredient.objects.create(
        product=product,
        ingredient=Ingredient.objects.get(key="l_carnitine", clinic=None),
        concentration=Decimal(1),
    )
    lots = [
        Lot.objects.create(product=product, lot_number=f"L{i}", expires_on=dt.date(2099, 1, 1))
        for i in range(2)
    ]
    protocol = ClinicProtocol.current(clinic, "cellulite")
    assert protocol is not None
    answers = {q["key"]: False for q in ScreeningForm.current(clinic).questions}
    now = timezone.now()
    start = now - dt.timedelta(days=7 * (SESSIONS + 1) + 2)
    course_ids = []
    for n in range(patients):
        patient = Patient.objects.create(
            clinic=clinic, first_name=f"P{n}", last_name="Bench", date_of_birth=dt.date(1985, 1, 1)
        )
        # Screened and consented before the allergy test, as the gates judge each session by
        # the records of its own time.
        intake = start - dt.timedelta(days=3)
        do_screen_patient(patient, answers, doc, screened_at=intake)
        do_sign_consent(
            patient,
            products=[product],
            signed_name="P",
            method="typed",
            indication="cellulite",
            areas=["thighs"],
            user=doc,
            signed_at=intake,
        )
        course = actions.do_plan_course(
            patient,
            protocol,
            indication="cellulite",
            areas=["thighs"],
            cadence_days=7,
            planned_sessions=20,
            first_session_on=start.date(),
            user=doc,
        )
        test = actions.do_give_allergy_test(
            course,
            given_at=start - dt.timedelta(days=2),
            user=doc,
            injections=[
                actions.TestInjection(lots[0], "arm"),
                actions.TestInjection(lots[1], "arm"),
            ],
        )
        actions.do_read_allergy_test(
            test, read_at=start - dt.timedelta(days=1), result="none", user=doc
        )
        # The course dates from the intake, and its baseline (the gate before session 1) is
        # taken then, as a clinic would.
        Course.objects.filter(pk=course.pk).update(created_at=intake)
        course.refresh_from_db()
        do_record_measurement(
            course,
            Raw(scales.WEIGHT, "70.5"),
            taken_at=start - dt.timedelta(days=1),
            user=doc,
        )
        for s in range(SESSIONS):
            actions.do_record_session(
                course,
                performed_at=start + dt.timedelta(days=7 * s),
                practitioner=doc,
                injections=[actions.InjectionInput("thighs", lots[s % 2], Decimal("2"))],
                stimulants_avoided=True,
                user=doc,
            )
        course_ids.append(course.pk)
    return course_ids, doc, lots


def run(patients: int = PATIENTS, runs: int = RUNS) -> dict[str, float]:
    """Build the clinic, measure, print the figures and return the p95s in ms."""
    from mesoclinic.courses import actions
    from mesoclinic.courses.models import Course

    started = time.perf_counter()
    course_ids, doc, lots = _build(patients)
    build_s = time.perf_counter() - started
    rng = random.Random(7)
    now = timezone.now()

    baseline = time_ms(lambda: Course.objects.get(pk=rng.choice(course_ids)), runs)

    def check() -> None:
        course = Course.objects.select_related("clinic", "patient", "protocol").get(
            pk=rng.choice(course_ids)
        )
        actions.check_session(course, now, doc, lots)

    gate = time_ms(check, runs)

    queue = list(course_ids)
    rng.shuffle(queue)

    def record() -> None:
        course = Course.objects.select_related("clinic", "patient", "protocol").get(pk=queue.pop())
        actions.do_record_session(
            course,
            performed_at=now,
            practitioner=doc,
            injections=[actions.InjectionInput("thighs", lots[0], Decimal("2"))],
            stimulants_avoided=True,
            user=doc,
        )

    charting = time_ms(record, min(runs, len(course_ids)))

    base_p95 = percentile(baseline, 0.95)
    print(
        f"session gate benchmark · {platform.machine()} · {platform.python_version()} · "
        f"{dt.date.today().isoformat()}"
    )
    print(f"data: {patients} patients × {SESSIONS} sessions (built in {build_s:.1f} s), SQLite")
    for name, samples in (
        ("baseline: fetch a course", baseline),
        ("check_session (every gate)", gate),
        ("do_record_session (gate + write)", charting),
    ):
        p95 = percentile(samples, 0.95)
        print(
            f"  {name:34s} p50 {statistics.median(samples):7.2f} ms   p95 {p95:7.2f} ms   "
            f"ratio p95/baseline {p95 / base_p95:6.1f}"
        )
    return {
        "baseline_p95": base_p95,
        "check_p95": percentile(gate, 0.95),
        "record_p95": percentile(charting, 0.95),
    }
