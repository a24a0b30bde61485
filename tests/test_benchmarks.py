"""The benchmarks still run: each is run here on a small clinic, so a change to the actions or
the pages that breaks one fails the suite, not the next `make bench`. No figure is asserted
on; speed is measured by `make bench`, not by tests."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from benchmarks import pages, session_gate
from mesoclinic.courses.models import Session
from mesoclinic.patients.models import Patient


def test_the_session_gate_benchmark_runs(db: Any) -> None:
    figures = session_gate.run(patients=3, runs=3)
    assert set(figures) == {"baseline_p95", "check_p95", "record_p95"}
    # Every course got its six sessions, and the charting step added one more to each.
    assert Session.objects.count() == 3 * (session_gate.SESSIONS + 1)


def test_the_pages_benchmark_runs_on_the_demo(db: Any) -> None:
    figures = pages.run(scale=1, runs=3)
    assert figures["today_p95"] > 0 and figures["chart_p95"] > 0
    assert figures["portal_home_p95"] > 0
    assert Patient.objects.count() == 30


def test_the_course_booking_benchmark_runs(db: Any) -> None:
    from benchmarks import booking
    from mesoclinic.scheduling.models import Appointment

    figures = booking.run_course(practitioners=3, existing=300, courses=3)
    assert figures["course_p95"] > 0
    # Three courses of 13 visits, and a baseline visit for each course.
    assert Appointment.objects.filter(course__isnull=False).count() == 39
    assert Appointment.objects.count() == 300 + 39 + 3


@pytest.mark.django_db(transaction=True)
def test_the_booking_storm_never_double_books(django_db_setup: Any) -> None:
    from django.db import connection

    from benchmarks import booking

    if connection.vendor != "postgresql":
        pytest.skip("the storm runs on PostgreSQL (the suite's PostgreSQL run covers it)")
    figures = booking.run_storm(clients=6, attempts=8)
    assert figures is not None
    assert figures["booked"] + figures["refused"] == 48
    assert figures["booked"] >= 1 and figures["double_bookings"] == 0


def test_the_surveillance_benchmark_runs(db: Any) -> None:
    from benchmarks import surveillance

    speed = surveillance.speed(sessions=20_000, subjects=100, repeats=1)
    assert speed["cusum_s"] > 0 and speed["baseline_s"] > 0
    read = surveillance.read_path(patients=12, sessions_each=3, lots=3)
    assert read["sessions"] == 36 and read["statistics"] >= 3
    found = surveillance.detection(runs=50)
    # A lot at five times the baseline is caught far more often than clean data alarms.
    assert found["cusum_detected"] > found["cusum_false_alarm"]
    assert 0 < found["maxsprt_exact_alpha"] <= 0.05


def test_the_request_limits_benchmark_runs(db: Any, settings: Any) -> None:
    from benchmarks import request_limits

    # A small ceiling and a 16 MB upload: the same path as the 200 MB run, in a fraction of it.
    settings.PHOTO_MAX_BYTES = 1000
    settings.MAX_REQUEST_BYTES = 4000
    figures = request_limits.run(upload_bytes=16 * 1024 * 1024, runs=3)
    assert figures["upload_before_taken_mb"] == 16.0
    assert figures["upload_now_taken_mb"] < 16.0


def test_the_serving_benchmark_runs(db: Any) -> None:
    from benchmarks import serving

    figures = serving.run(runs=3)
    assert figures["readyz_p95"] > 0 and figures["login page_p95"] > 0


def test_the_import_benchmark_runs(db: Any) -> None:
    from benchmarks import imports

    figures = imports.run(patients=40)
    assert figures["import_s"] > 0
    assert Patient.objects.count() == 40


def test_the_load_benchmark_drives_a_real_server(tmp_path: Any) -> None:
    """`python -m benchmarks load-here` on a small clinic and short phases: it starts
    `mesoclinic serve` in its own processes, every phase is answered without an error, and it
    reports the workers' memory."""
    import os
    import re
    import subprocess
    import sys

    if os.environ.get("DATABASE_URL"):
        pytest.skip("it runs its own SQLite server; the suite's SQLite run covers it")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "DJANGO_SETTINGS_MODULE", "SECRET_KEY"}
    }
    env.update(
        BENCH_LOAD_SCALE="1", BENCH_LOAD_SECONDS="1", BENCH_LOAD_NOW="1", TMPDIR=str(tmp_path)
    )
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "load-here"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    phases = re.findall(
        r"^ {4}(\S.*?) +[\d.]+ req/s .* errors (\d+) of (\d+)$", result.stdout, re.M
    )
    assert [name for name, _, _ in phases] == [
        "login page",
        "static file",
        "mix, hammering",
        "mix, paced",
    ]
    assert all(errors == "0" and int(requests) > 0 for _, errors, requests in phases), result.stdout
    assert re.search(r"memory per worker: \d+ MB resident", result.stdout)


def test_the_scaling_benchmark_measures_every_page(db: Any) -> None:
    from benchmarks import scaling

    figures = scaling.run_here(1, runs=2)
    assert (figures["patients"], figures["scale"]) == (30, 1)
    for page in scaling.PAGES:
        assert figures[page]["p95"] > 0
    # Every page but the login page reads the database.
    assert all(figures[page]["queries"] > 0 for page in scaling.PAGES if page != "baseline")


def test_the_money_benchmark_runs(db: Any) -> None:
    from benchmarks import money
    from mesoclinic.billing.models import Invoice

    figures = money.run(sessions=300, runs=5)
    assert set(figures) == {
        "baseline: one invoice by key",
        "an invoice and its payment",
        "the daily close of a busy day",
        "balances outstanding, whole year",
        "revenue, whole year",
    }
    assert all(v > 0 for v in figures.values())
    # The year is built (with its packages and credit notes), and each measured invoice was
    # issued with the next number.
    numbers = list(Invoice.objects.order_by("number").values_list("number", flat=True))
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) > 305
    measured = Invoice.objects.order_by("-number")[:5]
    assert {(i.total, i.appointment_id) for i in measured} == {(Decimal("544.38"), None)}


def test_the_fhir_export_benchmark_runs(db: Any) -> None:
    from benchmarks import fhir_export

    figures = fhir_export.run(sessions=300)
    assert figures["resources"] > 300
