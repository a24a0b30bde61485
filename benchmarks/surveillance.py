"""Safety surveillance: speed over 10 million sessions, time to detect a bad lot, false alarms.

1. Speed. Ten million synthetic sessions spread over many subjects (lots and practitioners),
   in time order. Time the CUSUM of every subject at once (safety.surveil.grouped_cusum: sort
   by subject, segmented running sums, a running minimum offset per group) and each subject's
   highest value, against a plain np.cumsum over the same ten million weights in the same
   process (the ratio is the figure to compare between machines).
2. The database read path, timed apart: a clinic of realistic size in SQLite, read and judged
   by safety.surveil.run (dry run, so nothing is written), first with the control limit's
   simulation and then with the limit cached.
3. Detection: a lot at five times the baseline rate; sessions until the alert over many
   simulated runs (median and 90th percentile), for the CUSUM and the MaxSPRT.
4. False alarms: the same statistics on clean data (the baseline rate) over the same horizon.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from mesoclinic.lib import surveillance as stats

SESSIONS = 10_000_000
SUBJECTS = 20_000
P0 = 0.01
RATIO = 5.0
HORIZON = 500  # the CUSUM's false-alarm horizon, in sessions of one subject
ALPHA = 0.05
MAXSPRT_SESSIONS = 200
MIN_EVENTS = 2
RUNS = 2_000
REPEATS = 5


def _best(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median and best wall time of ``repeats`` calls, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def machine() -> str:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next(
                (line.split(":", 1)[1].strip() for line in f if line.startswith("model name")),
                "",
            )
    except OSError:
        pass
    return (
        f"{dt.date.today().isoformat()} · {platform.machine()}, {os.cpu_count()} cores "
        f"({model or 'CPU model unknown'}) · Python {platform.python_version()} · "
        f"numpy {np.__version__}"
    )


def speed(sessions: int = SESSIONS, subjects: int = SUBJECTS, repeats: int = REPEATS) -> dict:
    from mesoclinic.safety.surveil import grouped_cusum

    rng = np.random.default_rng(1)
    subject = rng.integers(0, subjects, size=sessions, dtype=np.int64)  # sessions in time order
    outcome = (rng.random(sessions) < P0).astype(np.int8)
    p1 = stats.out_of_control_p(P0, RATIO)
    w_event, w_none = stats.cusum_weights(P0, p1)
    h = stats.cusum_control_limit(P0, p1, n=HORIZON, alpha=ALPHA, runs=5_000)
    weights = np.where(outcome == 1, w_event, w_none)

    order = np.argsort(subject, kind="stable")  # each subject's sessions together, in time order
    groups, outcomes = subject[order], outcome[order]
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])

    def judge(g: np.ndarray, x: np.ndarray) -> int:
        path = grouped_cusum(g, x, w_event, w_none)
        top = np.maximum.reduceat(path, starts)
        return int((top >= h).sum())

    def with_sort() -> int:
        # Subject codes below 65,536 sort as uint16, which numpy's stable sort does by radix
        # in linear time; int64 keys would take a comparison sort, several times slower.
        keys = subject.astype(np.uint16) if subjects < 65_536 else subject
        o = np.argsort(keys, kind="stable")
        # The sorted subjects are known without gathering them: each code, as often as it occurs.
        counts = np.bincount(subject, minlength=subjects)
        return judge(np.repeat(np.arange(counts.size), counts), outcome[o])

    baseline = _best(lambda: np.cumsum(weights), repeats)
    sorted_input = _best(lambda: judge(groups, outcomes), repeats)
    unsorted_input = _best(with_sort, repeats)
    alarms = judge(groups, outcomes)
    figures = {
        "sessions": sessions,
        "subjects": subjects,
        "baseline_s": baseline[0],
        "cusum_s": sorted_input[0],
        "cusum_with_sort_s": unsorted_input[0],
        "ratio": sorted_input[0] / baseline[0],
        "ratio_with_sort": unsorted_input[0] / baseline[0],
        "alarms": alarms,
        "h": h,
    }
    print(
        f"Speed: {sessions:,} sessions, {subjects:,} subjects, p0 {P0}, h {h:.3f}\n"
        f"  baseline np.cumsum of the weights   {baseline[0] * 1000:8.1f} ms (best "
        f"{baseline[1] * 1000:.1f})\n"
        f"  CUSUM of every subject + max        {sorted_input[0] * 1000:8.1f} ms (best "
        f"{sorted_input[1] * 1000:.1f}), {figures['ratio']:.1f}x baseline\n"
        f"  the same, sorting by subject first  {unsorted_input[0] * 1000:8.1f} ms (best "
        f"{unsorted_input[1] * 1000:.1f}), {figures['ratio_with_sort']:.1f}x baseline\n"
        f"  subjects signalling on clean data: {alarms} of {subjects:,}"
    )
    return figures


def read_path(patients: int = 1_500, sessions_each: int = 13, lots: int = 40) -> dict:
    """A clinic in SQLite with patients x sessions_each sessions, read by safety.surveil.run."""
    from mesoclinic.safety import surveil

    clinic, total = _build_clinic(patients, sessions_each, lots)
    surveil.control_limit.cache_clear()
    surveil.critical_value.cache_clear()
    start = time.perf_counter()
    first = surveil.run(clinic, dry_run=True)
    cold = time.perf_counter() - start
    warm = _best(lambda: surveil.run(clinic, dry_run=True), REPEATS)
    start = time.perf_counter()
    streams = surveil.read_streams(clinic, dt.datetime.now(dt.UTC), 365)
    read = time.perf_counter() - start
    figures = {
        "sessions": total,
        "statistics": len(first.signals),
        "cold_s": cold,
        "warm_s": warm[0],
        "read_s": read,
    }
    print(
        f"Database read path: {total:,} sessions, {len(streams.practitioners)} practitioners, "
        f"{len(streams.lots)} lots, {len(first.signals)} statistics\n"
        f"  first run (simulates the control limit, computes the critical value) "
        f"{cold * 1000:8.1f} ms\n"
        f"  later runs (limits cached)                                          "
        f"{warm[0] * 1000:8.1f} ms\n"
        f"  of which reading the four queries into streams                      "
        f"{read * 1000:8.1f} ms"
    )
    return figures


def _build_clinic(patients: int, sessions_each: int, lots: int) -> tuple[Any, int]:
    from django.utils import timezone

    from mesoclinic.accounts.models import Clinic, Membership, User
    from mesoclinic.courses.actions import do_plan_course
    from mesoclinic.courses.models import Course, Session, SessionInjection
    from mesoclinic.formulary.models import Lot, Product
    from mesoclinic.patients.actions import do_setup_clinic
    from mesoclinic.patients.models import Patient
    from mesoclinic.protocols.models import ClinicProtocol
    from mesoclinic.safety.models import AdverseEvent

    rng = np.random.default_rng(2)
    clinic = Clinic.objects.create(name="Surveillance bench", timezone="UTC")
    do_setup_clinic(clinic)
    staff = []
    for i in range(10):
        u = User.objects.create_user(f"sb-doc{i}", password="x")
        Membership.objects.create(user=u, clinic=clinic, role=Membership.Role.PRACTITIONER)
        staff.append(u)
    product = Product.objects.create(clinic=clinic, name="Mix", supplier="S", vial="single")
    expires = dt.date.today() + dt.timedelta(days=400)
    lot_rows = Lot.objects.bulk_create(
        Lot(product=product, lot_number=f"B{i}", expires_on=expires) for i in range(lots)
    )
    people = Patient.objects.bulk_create(
        Patient(clinic=clinic, first_name="P", last_name=f"{i}", date_of_birth=dt.date(1980, 1, 1))
        for i in range(patients)
    )
    template = do_plan_course(
        people[0],
        ClinicProtocol.current(clinic, "cellulite"),  # type: ignore[arg-type]
        indication="cellulite",
        areas=["thighs"],
        cadence_days=7,
        planned_sessions=15,
        user=None,
    )
    copies = []
    for p in people[1:]:
        c = Course.objects.get(pk=template.pk)
        c.pk = None
        c.patient = p
        copies.append(c)
    courses = [template, *Course.objects.bulk_create(copies)]
    now = timezone.now()
    start = now - dt.timedelta(days=300)
    session_rows = []
    for ci, course in enumerate(courses):
        first = start + dt.timedelta(minutes=int(rng.integers(0, 60 * 24 * 200)))
        doc = staff[ci % len(staff)]
        for n in range(1, sessions_each + 1):
            session_rows.append(
                Session(
                    course=course,
                    number=n,
                    performed_at=first + dt.timedelta(days=7 * (n - 1)),
                    practitioner=doc,
                    stimulants_avoided=True,
                )
            )
    made = Session.objects.bulk_create(session_rows, batch_size=2_000)
    picks = rng.integers(0, lots, size=len(made))
    SessionInjection.objects.bulk_create(
        (
            SessionInjection(session=s, area="thighs", lot=lot_rows[int(k)], volume_ml=2)
            for s, k in zip(made, picks, strict=True)
        ),
        batch_size=2_000,
    )
    adverse = [s for s in made if rng.random() < P0]
    AdverseEvent.objects.bulk_create(
        AdverseEvent(
            clinic=clinic,
            patient_id=s.course.patient_id,
            course=s.course,
            session=s,
            kind="infection",
            ctcae_grade=2,
            onset_at=s.performed_at + dt.timedelta(days=20),
        )
        for s in adverse
    )
    return clinic, len(made)


def detection(runs: int = RUNS) -> dict:
    """Sessions of a lot at 5x the baseline until each statistic signals; and false alarms."""
    rng = np.random.default_rng(3)
    p1 = stats.out_of_control_p(P0, RATIO)
    h = stats.cusum_control_limit(P0, p1, n=HORIZON, alpha=ALPHA)
    bad = stats.simulate_run_lengths(P0, p1, h, RATIO * P0, runs, HORIZON, rng)
    # Ten times as many clean runs: a 5 % rate needs them for a standard error near 0.15 %.
    clean = stats.simulate_run_lengths(P0, p1, h, P0, 10 * runs, HORIZON, rng)
    z = (1 - P0) / P0
    cv = stats.maxsprt_critical_value(MAXSPRT_SESSIONS, z, ALPHA, MIN_EVENTS)
    m_bad = _maxsprt_run_lengths(RATIO * P0, z, cv.cv, runs, rng)
    m_clean = _maxsprt_run_lengths(P0, z, cv.cv, 10 * runs, rng)
    exact = stats.maxsprt_performance(MAXSPRT_SESSIONS, z, cv.cv, RATIO, MIN_EVENTS)

    def summary(lengths: np.ndarray, limit: int) -> tuple[float, float, float]:
        hit = lengths[lengths <= limit]
        share = hit.size / lengths.size
        if not hit.size:
            return share, float("nan"), float("nan")
        # Runs that never signal count as "more than the limit" for the percentiles.
        return share, float(np.median(lengths)), float(np.percentile(lengths, 90))

    c_share, c_med, c_p90 = summary(bad, HORIZON)
    m_share, m_med, m_p90 = summary(m_bad, MAXSPRT_SESSIONS)
    figures = {
        "cusum_h": h,
        "cusum_detected": c_share,
        "cusum_median": c_med,
        "cusum_p90": c_p90,
        "cusum_false_alarm": float((clean <= HORIZON).mean()),
        "maxsprt_cv": cv.cv,
        "maxsprt_detected": m_share,
        "maxsprt_median": m_med,
        "maxsprt_p90": m_p90,
        "maxsprt_false_alarm": float((m_clean <= MAXSPRT_SESSIONS).mean()),
        "maxsprt_exact_power": exact.power,
        "maxsprt_exact_alpha": cv.type_i_error,
    }
    print(
        f"Detection: p0 {P0}, a lot at {RATIO:g}x ({RATIO * P0:.2f}), {runs:,} simulated runs\n"
        f"  CUSUM (h {h:.3f} for {ALPHA:.0%} false alarms in {HORIZON} sessions): detected "
        f"{c_share:.1%} within {HORIZON}; sessions to alert median {c_med:.0f}, "
        f"p90 {c_p90:.0f}\n"
        f"  MaxSPRT (cv {cv.cv:.4f}, N {MAXSPRT_SESSIONS} sessions, at least {MIN_EVENTS} events):"
        f" detected {m_share:.1%} within {MAXSPRT_SESSIONS} (exact power {exact.power:.1%}); "
        f"median {m_med:.0f}, p90 {m_p90:.0f}\n"
        f"False alarms on clean data ({10 * runs:,} runs): "
        f"CUSUM {figures['cusum_false_alarm']:.1%} within {HORIZON}"
        f" sessions; MaxSPRT {figures['maxsprt_false_alarm']:.1%} within {MAXSPRT_SESSIONS} "
        f"(exact {cv.type_i_error:.1%})"
    )
    return figures


def _maxsprt_run_lengths(
    p: float, z: float, cv: float, runs: int, rng: np.random.Generator
) -> np.ndarray:
    """Sessions until the MaxSPRT signals, MAXSPRT_SESSIONS + 1 when it does not."""
    n = MAXSPRT_SESSIONS
    # The fewest adverse sessions that signal after k sessions, from the library's own LLR.
    need = np.full(n + 1, n + 2)
    for k in range(1, n + 1):
        for c in range(MIN_EVENTS, k + 1):
            if stats.maxsprt_llr(c, k, z) >= cv:
                need[k] = c
                break
    cases = np.cumsum(rng.random((runs, n)) < p, axis=1)
    signalled = cases >= need[1:]
    first = signalled.argmax(axis=1) + 1
    return np.where(signalled.any(axis=1), first, n + 1)


def run(sessions: int = SESSIONS, runs: int = RUNS, patients: int = 1_500) -> dict:
    print(machine())
    figures: dict[str, Any] = {}
    figures["speed"] = speed(sessions=sessions, subjects=min(SUBJECTS, max(sessions // 50, 1)))
    figures["read"] = read_path(patients=patients)
    figures["detection"] = detection(runs=runs)
    return figures
