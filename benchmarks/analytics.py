"""Clinic analytics over a large synthetic clinic: the ORM extract and the DuckDB queries
timed separately, against a plain-Python loop over the same rows.

1. Build one clinic with COURSES courses (about 12.5 sessions and 15 measurements each:
   25,000 sessions and 30,000 measurements), written with bulk_create.
2. Time `extract()` (the ORM reading the clinic into column arrays) RUNS times.
3. Time `compute()` (a new DuckDB connection, the tables loaded, every query) RUNS times on
   that extract.
4. Baseline: the plain-Python recomputation of tests/test_analytics.py (`reference`) over the
   same extract, RUNS times; it must give the same figures.
5. Time the whole page as the manager (GET /analytics/) through Django's test client.
Print p50/p95 in ms and the ratio of DuckDB to the Python loop.
"""

from __future__ import annotations

import datetime as dt
import platform
import random
import statistics
import time
from decimal import Decimal

from benchmarks.timing import percentile, time_ms

COURSES = 2_000
SESSIONS = 25_000
MEASUREMENTS = 30_000
RUNS = 15


def build(courses: int = COURSES, seed: int = 7) -> object:
    """One clinic with `courses` courses over the two years before now, and its sessions,
    injections and measurements. Answers the clinic."""
    from django.utils import timezone

    from mesoclinic.accounts.models import Clinic, Membership, User
    from mesoclinic.courses.models import Course, Session, SessionInjection
    from mesoclinic.formulary.models import Lot, Product
    from mesoclinic.outcomes.models import Measurement
    from mesoclinic.patients.actions import do_setup_clinic
    from mesoclinic.patients.models import Patient
    from mesoclinic.protocols.models import ClinicProtocol

    rng = random.Random(seed)
    clinic = Clinic.objects.create(name="Analytics bench", timezone="Europe/Paris")
    do_setup_clinic(clinic)
    manager = User.objects.create_user("bench-manager", password="pw")
    Membership.objects.create(user=manager, clinic=clinic, role=Membership.Role.MANAGER)
    staff = []
    for i in range(12):
        user = User.objects.create_user(f"bench-p{i}", password="pw", first_name=f"P{i}")
        Membership.objects.create(user=user, clinic=clinic, role=Membership.Role.PRACTITIONER)
        staff.append(user)
    lots = []
    for i in range(6):
        product = Product.objects.create(clinic=clinic, name=f"Mix {i}", supplier="Bench")
        lots.append(
            Lot.objects.create(
                product=product, lot_number=f"B{i}", expires_on=dt.date.today() + dt.timedelta(400)
            )
        )
    protocols = {key: ClinicProtocol.current(clinic, key) for key in ("cellulite", "localized_fat")}
    now = timezone.now()
    patients = Patient.objects.bulk_create(
        Patient(
            clinic=clinic, first_name=f"B{i}", last_name="Bench", date_of_birth=dt.date(1985, 1, 1)
        )
        for i in range(courses)
    )
    plans = []
    for i, patient in enumerate(patients):
        fat = i % 3 == 0
        begin = now - dt.timedelta(days=rng.uniform(20, 700))
        plans.append(
            Course(
                clinic=clinic,
                patient=patient,
                protocol=protocols["localized_fat" if fat else "cellulite"],
                indication="localized_fat" if fat else "cellulite",
                areas=["abdomen" if fat else "thighs"],
                cadence_days=rng.choice([7, 14]),
                planned_sessions=10 if fat else 15,
                first_session_on=begin.date(),
                status=rng.choice(["active", "completed", "completed", "stopped", "maintenance"]),
                created_at=begin - dt.timedelta(days=3),
            )
        )
    made = Course.objects.bulk_create(plans)
    per_course = SESSIONS // courses
    sessions = []
    for course in made:
        count = max(1, per_course + rng.randint(-4, 3))
        first = dt.datetime.combine(course.first_session_on, dt.time(10), tzinfo=dt.UTC)
        for n in range(1, count + 1):
            sessions.append(
                Session(
                    course=course,
                    number=n,
                    performed_at=first + dt.timedelta(days=(n - 1) * course.cadence_days),
                    practitioner=rng.choice(staff),
                    stimulants_avoided=True,
                )
            )
    while len(sessions) < SESSIONS:  # top up with maintenance visits
        course = rng.choice(made)
        sessions.append(
            Session(
                course=course,
                number=1000 + len(sessions),
                kind=Session.Kind.MAINTENANCE,
                performed_at=now - dt.timedelta(days=rng.uniform(0, 200)),
                practitioner=rng.choice(staff),
                stimulants_avoided=True,
            )
        )
    sessions = Session.objects.bulk_create(sessions[:SESSIONS], batch_size=2000)
    SessionInjection.objects.bulk_create(
        (
            SessionInjection(session=s, area="thighs", lot=rng.choice(lots), volume_ml=Decimal(2))
            for s in sessions
        ),
        batch_size=2000,
    )
    by_course: dict[int, list[Session]] = {}
    for s in sessions:
        if s.kind == Session.Kind.COURSE:
            by_course.setdefault(s.course_id, []).append(s)
    rows: list[Measurement] = []
    while len(rows) < MEASUREMENTS:
        course = rng.choice(made)
        mine = by_course[course.pk]
        fat = course.indication == "localized_fat"
        base_at = mine[0].performed_at - dt.timedelta(hours=1)
        base = rng.randint(6, 14)
        rows.append(
            Measurement(
                clinic=clinic,
                course=course,
                kind="circumference" if fat else "hexsel_css",
                site="waist" if fat else "",
                area="" if fat else "thighs",
                value=Decimal(90 + base) if fat else Decimal(base),
                taken_at=base_at,
            )
        )
        for s in mine[2::3]:
            change = rng.randint(-3, 1)
            rows.append(
                Measurement(
                    clinic=clinic,
                    course=course,
                    session=s,
                    kind="circumference" if fat else "hexsel_css",
                    site="waist" if fat else "",
                    area="" if fat else "thighs",
                    value=Decimal(90 + base + change) if fat else Decimal(max(0, base + change)),
                    taken_at=s.performed_at,
                )
            )
    Measurement.objects.bulk_create(rows[:MEASUREMENTS], batch_size=2000)
    return clinic


def run(courses: int = COURSES, runs: int = RUNS) -> dict[str, float]:
    from django.test import Client
    from django.utils import timezone

    from mesoclinic.accounts.models import User
    from mesoclinic.outcomes import analytics
    from tests.test_analytics import as_reference, reference

    started = time.perf_counter()
    clinic = build(courses)
    built = time.perf_counter() - started
    now = timezone.now()
    start, end = analytics.default_range(timezone.localtime(now, clinic.tz).date())  # type: ignore[attr-defined]
    start = start - dt.timedelta(days=365)  # two years: every course counts

    data = analytics.extract(clinic, end)
    sizes = {t: data.rows(t) for t in data.tables}
    found = analytics.compute(data, start, end, now)
    expected = reference(data, start, end, now)
    got = as_reference(found)
    for name in expected:
        if name.startswith("by_"):
            assert got[name].keys() == expected[name].keys(), name
            for key, row in expected[name].items():
                assert all(
                    (a is None and b is None) or abs(a - b) < 1e-9
                    for a, b in zip(got[name][key], row, strict=True)
                ), (name, key)
        else:
            assert got[name] == expected[name], name

    extract = time_ms(lambda: analytics.extract(clinic, end), runs)
    duck = time_ms(lambda: analytics.compute(data, start, end, now), runs)
    python = time_ms(lambda: reference(data, start, end, now), runs)
    client = Client(HTTP_HOST="localhost")
    client.force_login(User.objects.get(username="bench-manager"))
    query = {"from": start.isoformat(), "to": end.isoformat()}

    def get_page() -> None:
        response = client.get("/analytics/", query)
        if response.status_code != 200:
            raise AssertionError(f"/analytics/ answered {response.status_code}")

    get_page()
    page = time_ms(get_page, runs)

    figures = {
        "extract_p50": statistics.median(extract),
        "extract_p95": percentile(extract, 0.95),
        "duckdb_p50": statistics.median(duck),
        "duckdb_p95": percentile(duck, 0.95),
        "python_p50": statistics.median(python),
        "python_p95": percentile(python, 0.95),
        "page_p50": statistics.median(page),
        "page_p95": percentile(page, 0.95),
    }
    print(f"\nClinic analytics ({platform.processor() or platform.machine()}, SQLite)")
    print(
        f"  {sizes['courses']} courses, {sizes['sessions']} sessions, "
        f"{sizes['measurements']} measurements, {sizes['course_products']} course-products; "
        f"built in {built:.1f} s; {runs} runs each; DuckDB = Python loop: checked"
    )
    for name, label in (
        ("extract", "ORM extract"),
        ("duckdb", "DuckDB compute"),
        ("python", "Python loop (baseline)"),
        ("page", "GET /analytics/ (whole page)"),
    ):
        print(
            f"  {label:<30} p50 {figures[name + '_p50']:8.1f} ms  "
            f"p95 {figures[name + '_p95']:8.1f} ms"
        )
    ratio = figures["duckdb_p50"] / figures["python_p50"]
    print(f"  DuckDB / Python loop (p50): {ratio:.2f}")
    return figures
