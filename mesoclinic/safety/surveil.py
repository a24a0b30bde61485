"""Safety surveillance of a clinic: read every session's outcome, run a Bernoulli CUSUM per
practitioner and per lot and a binomial MaxSPRT per new lot, and raise alerts.

The statistics live in mesoclinic.lib.surveillance; this module decides what they read.

What a session's outcome is:

1. A session is adverse (1) when an AdverseEvent names it, and clean (0) otherwise. Several
   events on one session still count once: the CUSUM watches sessions, not events.
2. For a practitioner, the stream is the sessions they performed, in the order they were
   performed (``performed_at``, then id).
3. For a lot, the stream is the sessions that injected it (courses.SessionInjection.lot). An
   event counts against a lot when it names the lot among its suspected lots, or when it names
   no lot at all: then every lot of that session is suspect, because nobody has ruled any out.
   A session that injected a lot twice is one observation of that lot.

The baseline rate p0 is the clinic's own adverse-session rate over the last
``SURVEIL_BASELINE_DAYS`` days, pulled towards ``SURVEIL_PRIOR_RATE`` as if
``SURVEIL_PRIOR_SESSIONS`` sessions at that rate had been seen too (a beta prior's posterior
mean). SPEC gives no number for the rate ("infection: small risk", seed 002), so the prior rate
is the product's choice and a setting, not a clinical fact; its weight keeps a new clinic with
ten clean sessions from a p0 of zero, which no CUSUM can use. The baseline includes the
subject's own sessions, so a very bad lot raises p0 a little and delays its own alert: the
conservative side.

Closing an alert restarts the subject's CUSUM from the sessions performed after the close
(the chart was investigated), and ends the MaxSPRT of that lot (its test has concluded).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from django.conf import settings
from django.db import transaction
from django.db.models import Max, Min
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent, Clinic, User, audit
from mesoclinic.courses.models import Session, SessionInjection
from mesoclinic.formulary.models import Lot
from mesoclinic.lib import formats
from mesoclinic.lib import surveillance as stats
from mesoclinic.safety.models import AdverseEvent, SafetyAlert, SurveillanceRun

logger = logging.getLogger(__name__)

# Defaults for the settings of the same name (see README, "Configuration", and
# docs/surveillance.md). None of these numbers comes from SPEC: each is the product's choice.
DEFAULTS: dict[str, Any] = {
    "SURVEIL_BASELINE_DAYS": 365,
    "SURVEIL_PRIOR_RATE": 0.01,
    "SURVEIL_PRIOR_SESSIONS": 100,
    # The issue asks for a lot at five times the baseline rate to be caught early.
    "SURVEIL_CUSUM_RATE_RATIO": 5.0,
    "SURVEIL_CUSUM_FALSE_ALARM": 0.05,
    "SURVEIL_CUSUM_HORIZON": 500,
    "SURVEIL_MAXSPRT_ALPHA": 0.05,
    "SURVEIL_MAXSPRT_SESSIONS": 200,
    "SURVEIL_MAXSPRT_MIN_EVENTS": 2,
    "SURVEIL_NEW_LOT_DAYS": 180,
    "SURVEIL_INTERVAL_HOURS": 6.0,
}

# The simulation behind each control limit; fixed so a limit is the same in every process.
LIMIT_RUNS = 20_000
LIMIT_SEED = 0


def setting(name: str) -> Any:
    return getattr(settings, name, DEFAULTS[name])


@dataclass(frozen=True)
class Params:
    """Every number a run depends on, read from the settings once per run."""

    baseline_days: int
    prior_rate: float
    prior_sessions: float
    ratio: float
    false_alarm: float
    horizon: int
    maxsprt_alpha: float
    maxsprt_sessions: int
    maxsprt_min_events: int
    new_lot_days: int

    @classmethod
    def from_settings(cls) -> Params:
        return cls(
            baseline_days=int(setting("SURVEIL_BASELINE_DAYS")),
            prior_rate=float(setting("SURVEIL_PRIOR_RATE")),
            prior_sessions=float(setting("SURVEIL_PRIOR_SESSIONS")),
            ratio=float(setting("SURVEIL_CUSUM_RATE_RATIO")),
            false_alarm=float(setting("SURVEIL_CUSUM_FALSE_ALARM")),
            horizon=int(setting("SURVEIL_CUSUM_HORIZON")),
            maxsprt_alpha=float(setting("SURVEIL_MAXSPRT_ALPHA")),
            maxsprt_sessions=int(setting("SURVEIL_MAXSPRT_SESSIONS")),
            maxsprt_min_events=int(setting("SURVEIL_MAXSPRT_MIN_EVENTS")),
            new_lot_days=int(setting("SURVEIL_NEW_LOT_DAYS")),
        )


# --------------------------------------------------------------------------------------------
# Pure logic: no database below this line until "Reading the clinic".
# --------------------------------------------------------------------------------------------


def baseline_rate(adverse: int, sessions: int, prior_rate: float, prior_sessions: float) -> float:
    """The clinic's rate, shrunk towards the prior: (adverse + r m) / (sessions + m).

    With no sessions it is the prior rate; with many, the clinic's own. It is rounded to two
    significant figures, so that runs a few sessions apart share a cached control limit, and
    kept inside (0, 0.5] where the CUSUM weights are defined and a rise can still be seen.
    """
    if not 0 < prior_rate < 1 or prior_sessions <= 0:
        raise ValueError("The prior rate must lie in (0, 1) and its weight must be positive.")
    raw = (adverse + prior_rate * prior_sessions) / (sessions + prior_sessions)
    return min(round_rate(raw), 0.5)


def round_rate(p: float) -> float:
    """p to two significant figures."""
    return float(f"{p:.2g}")


@functools.lru_cache(maxsize=256)
def control_limit(p0: float, ratio: float, horizon: int, false_alarm: float) -> float:
    """The CUSUM limit h for p0, cached per process: one simulation per rounded p0."""
    p1 = stats.out_of_control_p(p0, ratio)
    return stats.cusum_control_limit(
        p0, p1, n=horizon, alpha=false_alarm, runs=LIMIT_RUNS, seed=LIMIT_SEED
    )


@functools.lru_cache(maxsize=256)
def critical_value(p0: float, sessions: int, alpha: float, min_events: int) -> float:
    """The MaxSPRT critical value for a lot watched over ``sessions`` sessions against p0.

    A new lot's sessions against a known rate p0 are the binomial MaxSPRT with each session
    as one trial: under H0 a session is adverse with probability p0 = 1 / (1 + z), so the
    matching ratio is z = (1 - p0) / p0, and the upper limit N is the planned number of
    sessions.
    """
    return stats.maxsprt_critical_value(sessions, _z(p0), alpha, min_events).cv


def _z(p0: float) -> float:
    return (1 - p0) / p0


def grouped_cusum(
    groups: npt.NDArray[np.int64], outcomes: npt.NDArray[np.int8], w_event: float, w_none: float
) -> npt.NDArray[np.float64]:
    """The CUSUM path of many streams at once: S restarts at 0 where ``groups`` changes.

    ``groups`` must be sorted (each subject's sessions together, in time order). Steps:

    1. Weight each observation and take the running sum C over the whole array; subtracting
       the sum just before each group starts gives each group's own running sum.
    2. The reflected walk is S = C - min(0, running minimum of C) (Lindley's identity). To
       take a running minimum that restarts per group in one pass, shift each group down by
       more than every earlier group's range, so earlier groups can never be the minimum.
    3. Undo the shift.
    """
    n = outcomes.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    is_start = np.empty(n, dtype=bool)
    is_start[0] = True
    np.not_equal(groups[1:], groups[:-1], out=is_start[1:])
    starts = np.flatnonzero(is_start)
    lengths = np.diff(starts, append=n)
    # The arrays are ten million long in the benchmark: work in place where numpy allows.
    path = np.where(outcomes == 1, w_event, w_none)
    np.cumsum(path, out=path)
    path -= np.repeat(np.concatenate(([0.0], path[starts[1:] - 1])), lengths)
    floor = np.minimum(path, 0.0)
    step = float(-floor.min()) + 1.0
    shift = np.repeat(np.arange(starts.size, dtype=np.float64) * step, lengths)
    floor -= shift
    np.minimum.accumulate(floor, out=floor)
    floor += shift
    path -= floor
    return path


@dataclass(frozen=True)
class Signal:
    """What one statistic says about one subject: the numbers an alert shows."""

    method: str  # SafetyAlert.Method
    subject: str  # SafetyAlert.Subject
    subject_id: int
    sessions: int
    adverse_sessions: int
    statistic: float
    threshold: float
    crossed_at: int | None  # 1-based session number of the first crossing, or None

    @property
    def key(self) -> str:
        return f"{self.subject}:{self.subject_id}"

    @property
    def alarm(self) -> bool:
        return self.crossed_at is not None


def cusum_signal(
    subject: str, subject_id: int, outcomes: list[int], p0: float, h: float, ratio: float
) -> Signal:
    """The CUSUM of one stream: the highest S so far and where it first reached h."""
    p1 = stats.out_of_control_p(p0, ratio)
    result = stats.bernoulli_cusum(outcomes, p0, p1, h)
    top = float(result.path.max()) if len(outcomes) else 0.0
    return Signal(
        method=SafetyAlert.Method.CUSUM,
        subject=subject,
        subject_id=subject_id,
        sessions=len(outcomes),
        adverse_sessions=sum(outcomes),
        statistic=top,
        threshold=h,
        crossed_at=None if result.first_signal is None else result.first_signal + 1,
    )


def maxsprt_signal(
    lot_id: int, outcomes: list[int], p0: float, cv: float, limit: int, min_events: int
) -> Signal:
    """The MaxSPRT of a new lot over its first ``limit`` sessions; it stops at a signal."""
    z = _z(p0)
    watched = outcomes[:limit]
    cases, llr, crossed = 0, 0.0, None
    for n, x in enumerate(watched, start=1):
        cases += x
        llr = stats.maxsprt_llr(cases, n, z)
        if cases >= min_events and llr >= cv:
            crossed = n
            break
    seen = crossed or len(watched)
    return Signal(
        method=SafetyAlert.Method.MAXSPRT,
        subject=SafetyAlert.Subject.LOT,
        subject_id=lot_id,
        sessions=seen,
        adverse_sessions=sum(watched[:seen]),
        statistic=llr,
        threshold=cv,
        crossed_at=crossed,
    )


# --------------------------------------------------------------------------------------------
# Reading the clinic
# --------------------------------------------------------------------------------------------


@dataclass
class Streams:
    """Every session of the clinic with its outcome, and each subject's stream of them."""

    sessions: int = 0
    adverse_sessions: int = 0
    recent_sessions: int = 0
    recent_adverse: int = 0
    # subject id -> [(performed_at, session id, outcome)], in time order
    practitioners: dict[int, list[tuple[dt.datetime, int, int]]] = field(default_factory=dict)
    lots: dict[int, list[tuple[dt.datetime, int, int]]] = field(default_factory=dict)


def read_streams(clinic: Clinic, now: dt.datetime, baseline_days: int) -> Streams:
    """Four queries, whatever the clinic's size: sessions, events, their lots, injections."""
    sessions = list(
        Session.objects.filter(course__clinic=clinic)
        .order_by("performed_at", "pk")
        .values_list("pk", "practitioner_id", "performed_at")
    )
    events = AdverseEvent.objects.filter(clinic=clinic)
    adverse = set(events.values_list("session_id", flat=True))
    named: dict[int, set[int]] = defaultdict(set)  # session -> lots some event names
    unnamed: set[int] = set()  # sessions with an event that names no lot
    event_lots: dict[int, set[int]] = defaultdict(set)
    through = AdverseEvent.suspected_lots.through.objects.filter(adverseevent__clinic=clinic)
    for event_id, lot_id in through.values_list("adverseevent_id", "lot_id"):
        event_lots[event_id].add(lot_id)
    for event_id, session_id in events.values_list("pk", "session_id"):
        if event_lots.get(event_id):
            named[session_id] |= event_lots[event_id]
        else:
            unnamed.add(session_id)
    lots_of: dict[int, set[int]] = defaultdict(set)
    injections = SessionInjection.objects.filter(session__course__clinic=clinic)
    for session_id, lot_id in injections.values_list("session_id", "lot_id").distinct():
        lots_of[session_id].add(lot_id)

    since = now - dt.timedelta(days=baseline_days)
    out = Streams()
    for session_id, practitioner_id, at in sessions:
        x = int(session_id in adverse)
        out.sessions += 1
        out.adverse_sessions += x
        if since <= at <= now:
            out.recent_sessions += 1
            out.recent_adverse += x
        out.practitioners.setdefault(practitioner_id, []).append((at, session_id, x))
        for lot_id in sorted(lots_of.get(session_id, ())):
            against = int(session_id in unnamed or lot_id in named.get(session_id, ()))
            out.lots.setdefault(lot_id, []).append((at, session_id, against))
    return out


# --------------------------------------------------------------------------------------------
# Running it
# --------------------------------------------------------------------------------------------


@dataclass
class Report:
    """What a run found, for the command's output, the API and the run's record."""

    clinic: Clinic
    baseline_rate: float
    sessions: int
    adverse_sessions: int
    signals: list[Signal]
    raised: list[SafetyAlert]
    updated: list[SafetyAlert]
    run: SurveillanceRun | None
    seconds: float

    @property
    def alarms(self) -> list[Signal]:
        return [s for s in self.signals if s.alarm]


def run(
    clinic: Clinic,
    *,
    now: dt.datetime | None = None,
    dry_run: bool = False,
    user: User | None = None,
    via: str = "worker",
    notify: bool = True,
) -> Report:
    """Run every statistic over the clinic and raise or update its alerts.

    Steps:

    1. Read the streams (four queries) and compute the baseline rate p0.
    2. For each practitioner and each lot, run the CUSUM over the sessions after its last
       closed CUSUM alert, against the control limit for p0.
    3. For each new lot (first session within SURVEIL_NEW_LOT_DAYS) without a closed MaxSPRT
       alert, run the MaxSPRT over its first SURVEIL_MAXSPRT_SESSIONS sessions.
    4. Unless this is a dry run, in one transaction: record the run, create an alert for each
       new signal and update the live alert of a signal that persists; then email managers
       about the new ones.
    """
    started = time.perf_counter()
    now = now or timezone.now()
    params = Params.from_settings()
    streams = read_streams(clinic, now, params.baseline_days)
    p0 = baseline_rate(
        streams.recent_adverse,
        streams.recent_sessions,
        params.prior_rate,
        params.prior_sessions,
    )
    h = control_limit(p0, params.ratio, params.horizon, params.false_alarm)
    closed = _closed_since(clinic)
    signals: list[Signal] = []
    for subject, table in (
        (SafetyAlert.Subject.PRACTITIONER, streams.practitioners),
        (SafetyAlert.Subject.LOT, streams.lots),
    ):
        for subject_id, stream in table.items():
            reset = closed.get((SafetyAlert.Method.CUSUM, f"{subject}:{subject_id}"))
            outcomes = [x for at, _, x in stream if reset is None or at > reset]
            if outcomes:
                signals.append(cusum_signal(subject, subject_id, outcomes, p0, h, params.ratio))
    new_since = now - dt.timedelta(days=params.new_lot_days)
    for lot_id, stream in streams.lots.items():
        if stream[0][0] < new_since or (SafetyAlert.Method.MAXSPRT, f"lot:{lot_id}") in closed:
            continue
        cv = critical_value(
            p0, params.maxsprt_sessions, params.maxsprt_alpha, params.maxsprt_min_events
        )
        outcomes = [x for _, _, x in stream]
        signals.append(
            maxsprt_signal(
                lot_id, outcomes, p0, cv, params.maxsprt_sessions, params.maxsprt_min_events
            )
        )
    report = Report(
        clinic=clinic,
        baseline_rate=p0,
        sessions=streams.sessions,
        adverse_sessions=streams.adverse_sessions,
        signals=signals,
        raised=[],
        updated=[],
        run=None,
        seconds=0.0,
    )
    if not dry_run:
        _record(report, params, streams, now, user, via)
        if notify and report.raised:
            from mesoclinic.safety.alerts import email_managers

            for alert in report.raised:
                email_managers(alert)
    report.seconds = time.perf_counter() - started
    if report.run is not None:
        SurveillanceRun.objects.filter(pk=report.run.pk).update(
            detail={**report.run.detail, "seconds": round(report.seconds, 4)}
        )
    return report


def _closed_since(clinic: Clinic) -> dict[tuple[str, str], dt.datetime]:
    """When each (method, subject) last had an alert closed: its statistic restarts there."""
    rows = (
        SafetyAlert.objects.filter(clinic=clinic, status=SafetyAlert.Status.CLOSED)
        .values("method", "subject_key")
        .annotate(last=Max("handled_at"))
    )
    return {(r["method"], r["subject_key"]): r["last"] for r in rows if r["last"] is not None}


def _record(
    report: Report,
    params: Params,
    streams: Streams,
    now: dt.datetime,
    user: User | None,
    via: str,
) -> None:
    clinic = report.clinic
    alarms = report.alarms
    names = subject_names(clinic, alarms)
    with transaction.atomic():
        # One run per clinic at a time (the worker and a manager's "Run now" may overlap): on
        # PostgreSQL the clinic row's lock makes the second wait and then see the first's
        # alerts, so it updates them instead of failing on one_live_alert_per_subject. SQLite
        # transactions already start with the write lock.
        Clinic.objects.select_for_update().filter(pk=clinic.pk).first()
        run_row = SurveillanceRun.objects.create(
            clinic=clinic,
            started_at=now,
            sessions=streams.sessions,
            adverse_sessions=streams.adverse_sessions,
            baseline_rate=report.baseline_rate,
            detail={
                "baseline_sessions": streams.recent_sessions,
                "baseline_adverse": streams.recent_adverse,
                "practitioners": len(streams.practitioners),
                "lots": len(streams.lots),
                "statistics": len(report.signals),
                "signals": [s.key + ":" + s.method for s in alarms],
                "params": params.__dict__,
            },
        )
        live = {
            (a.method, a.subject_key): a
            for a in SafetyAlert.objects.select_for_update()
            .filter(clinic=clinic)
            .exclude(status=SafetyAlert.Status.CLOSED)
        }
        for signal in alarms:
            message = describe(signal, names, report.baseline_rate)
            found = live.get((signal.method, signal.key))
            if found is not None:
                found.run = run_row
                found.sessions = signal.sessions
                found.adverse_sessions = signal.adverse_sessions
                found.baseline_rate = report.baseline_rate
                found.statistic = signal.statistic
                found.threshold = signal.threshold
                found.message = message
                found.save(
                    update_fields=[
                        "run",
                        "sessions",
                        "adverse_sessions",
                        "baseline_rate",
                        "statistic",
                        "threshold",
                        "message",
                    ]
                )
                report.updated.append(found)
                continue
            alert = SafetyAlert.objects.create(
                clinic=clinic,
                run=run_row,
                method=signal.method,
                subject=signal.subject,
                practitioner_id=signal.subject_id if signal.subject == "practitioner" else None,
                lot_id=signal.subject_id if signal.subject == "lot" else None,
                subject_key=signal.key,
                raised_at=now,
                sessions=signal.sessions,
                adverse_sessions=signal.adverse_sessions,
                baseline_rate=report.baseline_rate,
                statistic=signal.statistic,
                threshold=signal.threshold,
                message=message,
            )
            audit(
                clinic=clinic,
                user=user,
                action=AuditEvent.Action.CREATE,
                obj=alert,
                via=via,
                method=alert.method,
                subject=alert.subject_key,
            )
            report.raised.append(alert)
        run_row.alerts_raised = len(report.raised)
        run_row.finished_at = timezone.now()
        run_row.save(update_fields=["alerts_raised", "finished_at"])
    report.run = run_row


def subject_names(clinic: Clinic, signals: list[Signal]) -> dict[str, str]:
    """How an alert names its subject: the practitioner's name, or the product and lot."""
    out: dict[str, str] = {}
    lot_ids = [s.subject_id for s in signals if s.subject == "lot"]
    for lot in Lot.objects.filter(pk__in=lot_ids).select_related("product"):
        out[f"lot:{lot.pk}"] = f"{lot.product.name} lot {lot.lot_number}"
    user_ids = [s.subject_id for s in signals if s.subject == "practitioner"]
    for u in User.objects.filter(pk__in=user_ids):
        out[f"practitioner:{u.pk}"] = u.display_name
    return out


def percent(p: float) -> str:
    """A rate as a person reads it: 0.5 %, 2 %, 12 %."""
    value = p * 100
    text = f"{value:.2g}" if value < 10 else f"{value:.0f}"
    return f"{text} %"


def describe(signal: Signal, names: dict[str, str], p0: float) -> str:
    """The alert in words, e.g. "Lipo mix lot L7: 4 adverse sessions in 23 sessions, against
    a clinic rate of 0.5 % (CUSUM 4.12 passed its limit 3.85 at session 19)."."""
    name = names.get(signal.key, signal.key)
    events = f"{signal.adverse_sessions} session{'s' if signal.adverse_sessions != 1 else ''}"
    how = (
        f"CUSUM {signal.statistic:.2f}, limit {signal.threshold:.2f}, first reached at session "
        f"{signal.crossed_at}"
        if signal.method == SafetyAlert.Method.CUSUM
        else f"MaxSPRT log-likelihood ratio {signal.statistic:.2f}, critical value "
        f"{signal.threshold:.2f}, reached at session {signal.crossed_at}"
    )
    return (
        f"{name}: {events} with an adverse event in {signal.sessions} sessions "
        f"({percent(signal.adverse_sessions / max(signal.sessions, 1))}), against a clinic rate "
        f"of {percent(p0)} ({how})."
    )


# What each kind of watch found, in words: the CUSUM follows every practitioner and lot session
# by session, so its alarm is about their recent sessions; the MaxSPRT follows a new lot from its
# first use. Two live alerts on one subject differ by their kind, so the headline says it.
KIND_WORDS = {
    SafetyAlert.Method.CUSUM: "in recent sessions",
    SafetyAlert.Method.MAXSPRT: "since the lot was first used",
}


def _subject_words(alert: SafetyAlert, *, full: bool = False) -> str:
    """Whom or what the alert is about. `full` adds what tells apart two practitioners of one
    name (their sign-in name) and two lots of one number and product name (the supplier)."""
    if alert.subject == SafetyAlert.Subject.LOT and alert.lot is not None:
        who = f"Lot {alert.lot.lot_number} of {alert.lot.product.name}"
        supplier = alert.lot.product.supplier
        return f"{who} from {supplier}" if full and supplier else who
    if alert.practitioner is not None:
        name = alert.practitioner.display_name
        login = alert.practitioner.get_username()
        if full and login != name:
            name = f"{name} ({login})"
        return f"Sessions given by {name}"
    return "Some sessions"


def _headline(alert: SafetyAlert, *, full: bool = False) -> str:
    kind = KIND_WORDS.get(SafetyAlert.Method(alert.method), "")
    return f"{_subject_words(alert, full=full)}: more adverse events than usual {kind}."


def alert_words(alert: SafetyAlert) -> dict[str, str]:
    """An alert as a clinic manager reads it: what is wrong (the lot or practitioner, and the
    kind of watch that found it) and what the figures are, in plain words, then the test's
    statistic for whoever checks the method. The alert's lot (with its product) and
    practitioner should be read with it."""
    n, bad = alert.sessions, alert.adverse_sessions
    rate = percent(bad / max(n, 1))
    if alert.method == SafetyAlert.Method.CUSUM:
        statistic = (
            f"Bernoulli CUSUM {alert.statistic:.2f}, above its limit of {alert.threshold:.2f}."
        )
    else:
        statistic = (
            f"Binomial MaxSPRT log-likelihood ratio {alert.statistic:.2f}, above its critical "
            f"value of {alert.threshold:.2f}."
        )
    return {
        "headline": _headline(alert),
        "detail": (
            f"{bad} of {n} session{'s' if n != 1 else ''} ({rate}) were followed by an adverse "
            f"event, where the clinic's usual rate is {percent(alert.baseline_rate)}. "
            "Check these sessions and decide what to do."
        ),
        "statistic": statistic,
    }


def alert_rows(alerts: list[SafetyAlert], clinic: Any = None) -> list[dict[str, Any]]:
    """Each alert with its words (`alert_words`), for a list where no two headlines may read
    the same:

    1. each headline names the subject and the kind of watch, which tells apart the live
       alerts of one clinic (one per kind and subject);
    2. where two still read the same, their subjects are named in full: the practitioner's
       sign-in name, the lot's supplier;
    3. where two still do (a subject alerted again after an earlier alert was closed), each
       says when it was raised."""
    rows: list[dict[str, Any]] = [{"alert": a, **alert_words(a)} for a in alerts]

    def repeated() -> set[str]:
        seen: dict[str, int] = defaultdict(int)
        for row in rows:
            seen[row["headline"]] += 1
        return {h for h, count in seen.items() if count > 1}

    same = repeated()
    for row in rows:
        if row["headline"] in same:
            row["headline"] = _headline(row["alert"], full=True)
    same = repeated()
    for row in rows:
        if row["headline"] in same:
            raised = formats.datetime_text(row["alert"].raised_at, clinic or row["alert"].clinic)
            row["headline"] = f"{row['headline'][:-1]}, raised {raised}."
    return rows


# --------------------------------------------------------------------------------------------
# The schedule
# --------------------------------------------------------------------------------------------


def clinics_due(now: dt.datetime | None = None) -> list[Clinic]:
    """Clinics whose last surveillance run is older than SURVEIL_INTERVAL_HOURS, or that never
    had one, and that have at least one session to read."""
    now = now or timezone.now()
    cutoff = now - dt.timedelta(hours=float(setting("SURVEIL_INTERVAL_HOURS")))
    last = dict(
        SurveillanceRun.objects.values("clinic_id")
        .annotate(last=Max("started_at"))
        .values_list("clinic_id", "last")
    )
    with_sessions = set(
        Session.objects.values("course__clinic_id")
        .annotate(first=Min("performed_at"))
        .values_list("course__clinic_id", flat=True)
    )
    return [
        c
        for c in Clinic.objects.filter(pk__in=with_sessions).order_by("pk")
        if last.get(c.pk) is None or last[c.pk] <= cutoff
    ]


def run_due(now: dt.datetime | None = None) -> list[Report]:
    """Run every clinic that is due; one clinic's failure does not stop the others."""
    reports = []
    for clinic in clinics_due(now):
        try:
            reports.append(run(clinic, now=now))
        except Exception:
            logger.exception("surveillance of clinic %s failed", clinic.pk)
    return reports


__all__ = [
    "DEFAULTS",
    "Params",
    "Report",
    "Signal",
    "baseline_rate",
    "clinics_due",
    "control_limit",
    "critical_value",
    "cusum_signal",
    "describe",
    "grouped_cusum",
    "maxsprt_signal",
    "percent",
    "read_streams",
    "run",
    "run_due",
]
