"""Booking a whole course into a busy clinic, and a storm of clients racing for one day.

course: 50 practitioners with full working weeks and 20,000 appointments already booked over
    the coming months; each run books one new course (the allergy test visit and 12 weekly
    sessions) through `planning.do_book_course`, the path the front desk and the API use. The
    baseline, in the same process, books one visit with `actions.do_book`. Target: p95 under
    50 ms.

storm (PostgreSQL): many clients, each on its own connection, book 30-minute visits on a
    15-minute grid of one day for a few practitioners and a few patients shared between the
    clients, so most requests overlap another for a practitioner or a patient. Then every
    client asks at once to book one of a few courses, each with another practitioner and
    first day. It reports throughput, p95, how many won and were refused, the double bookings
    of a practitioner and of a patient found afterwards by self-joins, and the courses booked
    more than once; all three must be 0. Run from SQLite, it creates a throwaway database on
    the PostgreSQL server at BENCH_POSTGRES_URL and runs itself there.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from benchmarks.postgres import throwaway_database
from benchmarks.timing import percentile

PRACTITIONERS = 50
EXISTING = 20_000
COURSES = 200
TARGET_MS = 50.0
STORM_CLIENTS = 16
STORM_ATTEMPTS = 40
STORM_PRACTITIONERS = 4
STORM_PATIENTS = 4  # fewer than the clients: two clients often book one patient at once
STORM_COURSES = 4
# Its own name when several people share one PostgreSQL server.
BENCH_DB = os.environ.get("BENCH_DB_NAME", "mesoclinic_bench")


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def _clinic(practitioners: int) -> tuple[Any, list[Any], Any]:
    """A clinic open Monday to Saturday 08:00–20:00, with `practitioners` working 09:00–13:00
    and 14:00–18:00 Monday to Friday, and a front desk."""
    from mesoclinic.accounts.models import Clinic, Membership, PractitionerLicence, User
    from mesoclinic.patients.actions import do_setup_clinic
    from mesoclinic.scheduling.models import OpeningHours, WorkingHours

    clinic = Clinic.objects.create(
        name=f"Bench {random.random():.6f}", city="New York", timezone="America/New_York"
    )
    do_setup_clinic(clinic)
    OpeningHours.objects.bulk_create(
        OpeningHours(clinic=clinic, weekday=d, opens=dt.time(8), closes=dt.time(20))
        for d in range(6)
    )
    staff = []
    for n in range(practitioners):
        user = User.objects.create_user(f"p{n}-{clinic.pk}", first_name="P", last_name=str(n))
        Membership.objects.create(user=user, clinic=clinic, role=Membership.Role.PRACTITIONER)
        PractitionerLicence.objects.create(
            user=user,
            clinic=clinic,
            kind=PractitionerLicence.Kind.PHYSICIAN,
            number=f"MD-{n}",
            jurisdiction="New York",
            expires_on=dt.date(2999, 1, 1),
        )
        staff.append(user)
    WorkingHours.objects.bulk_create(
        WorkingHours(clinic=clinic, user=u, weekday=d, starts=dt.time(s), ends=dt.time(e))
        for u in staff
        for d in range(5)
        for s, e in ((9, 13), (14, 18))
    )
    desk = User.objects.create_user(f"desk-{clinic.pk}")
    Membership.objects.create(user=desk, clinic=clinic, role=Membership.Role.FRONT_DESK)
    return clinic, staff, desk


def _patients(clinic: Any, n: int) -> list[Any]:
    from mesoclinic.patients.models import Patient

    return Patient.objects.bulk_create(
        Patient(
            clinic=clinic,
            first_name="Bench",
            last_name=f"Patient {i}",
            date_of_birth=dt.date(1980, 1, 1 + i % 28),
        )
        for i in range(n)
    )


def _free_patient(
    busy: dict[int, list[tuple[dt.datetime, dt.datetime]]],
    patients: list[Any],
    start: dt.datetime,
    end: dt.datetime,
    rng: random.Random,
) -> Any:
    """A patient with no visit overlapping [start, end), tried at random a few times."""
    for _ in range(10):
        patient = rng.choice(patients)
        if all(e <= start or end <= s for s, e in busy.get(patient.pk, [])):
            return patient
    return None


def _fill(
    clinic: Any, staff: list[Any], patients: list[Any], count: int, rng: random.Random
) -> int:
    """`count` appointments of 30–60 minutes on working days, never overlapping, written with
    bulk_create (the booking path is what is measured, not the setup)."""
    from mesoclinic.scheduling.models import Appointment

    tz = clinic.tz
    today = dt.datetime.now(tz).date()
    rows = []
    # Each patient's visits so far: a patient is never in two visits at once, which the
    # database refuses on PostgreSQL (bulk_create skips the check SQLite relies on).
    busy: dict[int, list[tuple[dt.datetime, dt.datetime]]] = {}
    day = today + dt.timedelta(days=1)
    while len(rows) < count:
        if day.weekday() < 5:
            for user in staff:
                for block_start, block_end in ((9, 13), (14, 18)):
                    t = dt.datetime.combine(day, dt.time(block_start), tzinfo=tz)
                    end = dt.datetime.combine(day, dt.time(block_end), tzinfo=tz)
                    while len(rows) < count:
                        t += dt.timedelta(minutes=rng.choice((0, 15, 30, 45, 60)))
                        length = dt.timedelta(minutes=rng.choice((30, 40, 45, 60)))
                        if t + length > end:
                            break
                        patient = _free_patient(busy, patients, t, t + length, rng)
                        if patient is not None and rng.random() < 0.45:  # about half free
                            busy.setdefault(patient.pk, []).append((t, t + length))
                            rows.append(
                                Appointment(
                                    clinic=clinic,
                                    patient=patient,
                                    kind="session",
                                    practitioner=user,
                                    starts_at=t,
                                    ends_at=t + length,
                                )
                            )
                        t += length
        day += dt.timedelta(days=1)
    Appointment.objects.bulk_create(rows, batch_size=2000)
    return (day - today).days


def run_course(
    practitioners: int = PRACTITIONERS, existing: int = EXISTING, courses: int = COURSES
) -> dict[str, float]:
    """Book `courses` courses into a clinic holding `existing` appointments; print and return
    the figures in ms."""
    from mesoclinic.courses.actions import do_plan_course
    from mesoclinic.protocols.models import ClinicProtocol
    from mesoclinic.scheduling import actions, planning
    from mesoclinic.scheduling.models import Appointment

    rng = random.Random(7)
    started = time.perf_counter()
    clinic, staff, desk = _clinic(practitioners)
    patients = _patients(clinic, courses + 50)
    days = _fill(clinic, staff, patients[courses:], existing, rng)
    protocol = ClinicProtocol.current(clinic, "localized_fat")
    planned = [
        do_plan_course(
            p,
            protocol,  # type: ignore[arg-type]
            indication=protocol.spec.indications.v[0],  # type: ignore[union-attr]
            areas=["abdomen"],
            cadence_days=7,
            planned_sessions=12,
            user=staff[0],
        )
        for p in patients[:courses]
    ]
    built = time.perf_counter() - started
    tz = clinic.tz

    # Baseline: one visit, booked where the practitioner is free.
    baseline = []
    for n in range(min(courses, 100)):
        who = staff[n % len(staff)]
        patient = patients[courses + n % 50]
        slot = planning.next_free_slot(
            clinic, who, dt.timedelta(minutes=30), not_before=dt.datetime.now(tz), patient=patient
        )
        assert slot is not None
        baseline.append(
            _timed(
                lambda who=who, slot=slot, patient=patient: actions.do_book(
                    patient,
                    kind="review",
                    practitioner=who,
                    starts_at=slot,
                    ends_at=slot + dt.timedelta(minutes=30),
                    user=desk,
                )
            )
        )
    booked = []
    for n, course in enumerate(planned):
        who = staff[n % len(staff)]
        booked.append(
            _timed(
                lambda course=course, who=who: planning.do_book_course(
                    course, user=desk, practitioner=who, accept_changes=True
                )
            )
        )
    visits = Appointment.objects.filter(clinic=clinic, course__isnull=False).count()
    figures = {
        "baseline_p95": percentile(baseline, 0.95),
        "course_p50": percentile(booked, 0.5),
        "course_p95": percentile(booked, 0.95),
    }
    print(
        f"Booking a course: {practitioners} practitioners, {existing:,} appointments over "
        f"{days} days (built in {built:.1f} s); {courses} courses of 13 visits booked "
        f"({visits:,} visits) on {platform.processor() or platform.machine()}"
    )
    print(f"  baseline (one visit, do_book)  p95 {figures['baseline_p95']:6.1f} ms")
    print(
        f"  a whole course (do_book_course) p50 {figures['course_p50']:6.1f} ms  "
        f"p95 {figures['course_p95']:6.1f} ms  "
        f"p95/baseline {figures['course_p95'] / figures['baseline_p95']:.1f}x  "
        f"(target p95 < {TARGET_MS:.0f} ms)"
    )
    return figures


# The storm.


def run_storm(
    clients: int = STORM_CLIENTS, attempts: int = STORM_ATTEMPTS
) -> dict[str, float] | None:
    from django.db import connection

    if connection.vendor != "postgresql":
        return _storm_on_postgres(clients, attempts)
    return _storm(clients, attempts)


def _storm_on_postgres(clients: int, attempts: int) -> dict[str, float] | None:
    """Create a throwaway database on the PostgreSQL server and run the storm there."""
    with throwaway_database(BENCH_DB) as url:
        if url is not None:
            env = {**os.environ, "DATABASE_URL": url, "BENCH_STORM": f"{clients},{attempts}"}
            subprocess.run([sys.executable, "-m", "benchmarks", "storm"], env=env, check=True)
    return None


def _storm(clients: int, attempts: int) -> dict[str, float]:
    from django.db import connection, connections

    from mesoclinic.scheduling import actions
    from mesoclinic.scheduling.actions import BookingRefused

    clinic, staff, desk = _clinic(STORM_PRACTITIONERS)
    patients = _patients(clinic, STORM_PATIENTS + STORM_COURSES)
    booked_patients, course_patients = patients[:STORM_PATIENTS], patients[STORM_PATIENTS:]
    tz = clinic.tz
    day = dt.datetime.now(tz).date() + dt.timedelta(days=1)
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    starts = [
        dt.datetime.combine(day, dt.time(9), tzinfo=tz) + dt.timedelta(minutes=15 * k)
        for k in range(14)  # 09:00–12:15, every 15 minutes: each overlaps its neighbours
    ]
    latencies: list[float] = []
    outcomes = {"booked": 0, "refused": 0}
    lock = threading.Lock()
    gate = threading.Barrier(clients)

    def client(n: int) -> None:
        rng = random.Random(n)
        mine: list[float] = []
        won = lost = 0
        gate.wait()
        try:
            for _ in range(attempts):
                start = rng.choice(starts)
                who = rng.choice(staff)
                t0 = time.perf_counter()
                try:
                    actions.do_book(
                        rng.choice(booked_patients),
                        kind="review",
                        practitioner=who,
                        starts_at=start,
                        ends_at=start + dt.timedelta(minutes=30),
                        user=desk,
                    )
                    won += 1
                except BookingRefused:
                    lost += 1
                mine.append((time.perf_counter() - t0) * 1000)
        finally:
            connections.close_all()
        with lock:
            latencies.extend(mine)
            outcomes["booked"] += won
            outcomes["refused"] += lost

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    wall = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - wall
    doubles = _doubles("practitioner_id")
    patient_doubles = _doubles("patient_id")
    series = _course_storm(clients, clinic, staff, desk, course_patients)
    total = clients * attempts
    figures = {
        "throughput": total / wall,
        "p50": percentile(latencies, 0.5),
        "p95": percentile(latencies, 0.95),
        "booked": float(outcomes["booked"]),
        "refused": float(outcomes["refused"]),
        "double_bookings": float(doubles),
        "patient_double_bookings": float(patient_doubles),
        **series,
    }
    print(
        f"Booking storm on PostgreSQL {connection.pg_version // 10000}: {clients} clients × "
        f"{attempts} attempts at 30-minute visits on a 15-minute grid, "
        f"{STORM_PRACTITIONERS} practitioners and {STORM_PATIENTS} patients, one morning"
    )
    print(
        f"  {figures['throughput']:.0f} requests/s  p50 {figures['p50']:.1f} ms  "
        f"p95 {figures['p95']:.1f} ms  booked {outcomes['booked']}  refused "
        f"{outcomes['refused']}  double bookings: practitioner {doubles}, "
        f"patient {patient_doubles}"
    )
    print(
        f"  {clients} clients booking {STORM_COURSES} courses at once: "
        f"{series['series_booked']:.0f} series booked in {series['series_wall_ms']:.0f} ms, "
        f"courses booked more than once {series['courses_booked_twice']:.0f}"
    )
    return figures


def _doubles(column: str) -> int:
    """Pairs of active appointments of one practitioner or one patient that overlap."""
    from django.db import connection

    assert column in ("practitioner_id", "patient_id")
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT count(*) FROM scheduling_appointment a
            JOIN scheduling_appointment b
              ON a.{column} = b.{column} AND a.id < b.id
             AND a.starts_at < b.ends_at AND b.starts_at < a.ends_at
            WHERE a.status NOT IN ('cancelled', 'no_show')
              AND b.status NOT IN ('cancelled', 'no_show')
            """
        )
        return int(cursor.fetchone()[0])


def _course_storm(
    clients: int, clinic: Any, staff: list[Any], desk: Any, patients: list[Any]
) -> dict[str, float]:
    """Every client books one of the courses at once, each with another practitioner and first
    day (so no two series would clash on a practitioner or a time): each course must be booked
    once, as one series."""
    from django.db import connections

    from mesoclinic.courses.actions import do_plan_course
    from mesoclinic.protocols.models import ClinicProtocol
    from mesoclinic.scheduling import planning
    from mesoclinic.scheduling.actions import BookingRefused
    from mesoclinic.scheduling.models import Appointment

    courses = [
        do_plan_course(
            patient,
            ClinicProtocol.current(clinic, "cellulite"),  # type: ignore[arg-type]
            indication="cellulite",
            areas=["thighs", "buttocks"],
            cadence_days=7,
            planned_sessions=15,
            user=desk,
        )
        for patient in patients
    ]
    first = dt.datetime.now(clinic.tz) + dt.timedelta(days=30)
    gate = threading.Barrier(clients)
    won: list[int] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        gate.wait()
        try:
            planning.do_book_course(
                courses[n % len(courses)],
                user=desk,
                practitioner=staff[(n // len(courses)) % len(staff)],
                not_before=first + dt.timedelta(days=n),
                accept_changes=True,
            )
            with lock:
                won.append(n)
        except BookingRefused:
            pass
        finally:
            connections.close_all()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    wall = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - wall
    visits = {
        c.pk: Appointment.objects.filter(course=c).exclude(status__in=Appointment.INACTIVE).count()
        for c in courses
    }
    return {
        "series_booked": float(len(won)),
        "series_wall_ms": wall * 1000,
        "courses_booked_twice": float(sum(1 for n in visits.values() if n > 16)),
    }


def storm_from_env() -> None:
    clients, attempts = (int(x) for x in os.environ["BENCH_STORM"].split(","))
    _storm(clients, attempts)
