"""Safety surveillance over a clinic's data (issue 5): the database → statistic path against a
CUSUM computed by hand, alerts raised exactly when the limit is crossed, idempotent runs, the
new-lot MaxSPRT, emails to managers through a real SMTP server, the command and the worker's
schedule."""

from __future__ import annotations

import datetime as dt
import io
import math
from typing import Any

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from mesoclinic.accounts.models import AuditEvent, Clinic, User
from mesoclinic.courses.actions import do_plan_course
from mesoclinic.courses.models import Course, Session, SessionInjection
from mesoclinic.formulary.models import Lot
from mesoclinic.lib import surveillance as stats
from mesoclinic.patients.models import Patient
from mesoclinic.protocols.models import ClinicProtocol
from mesoclinic.safety import surveil
from mesoclinic.safety.alerts import do_close_alert
from mesoclinic.safety.models import AdverseEvent, SafetyAlert, SurveillanceRun
from tests.conftest import World, ago
from tests.test_reminders import Mailbox, mail, smtp_server  # noqa: F401

P0 = 0.02
A = math.log(0.10 / 0.02)  # an adverse session adds ln(p1 / p0) = ln 5
B = math.log(0.90 / 0.98)  # a clean one adds ln((1 - p1) / (1 - p0))


@pytest.fixture
def fixed_p0(settings: Any) -> None:
    """A baseline of exactly 2 %: a prior so heavy that the clinic's own sessions cannot move
    it, so the hand computations below hold whatever the test adds."""
    settings.SURVEIL_PRIOR_RATE = P0
    settings.SURVEIL_PRIOR_SESSIONS = 1e12
    settings.SURVEIL_CUSUM_RATE_RATIO = 5.0


class Chart:
    """Sessions and adverse events written straight to the database (the gates are not under
    test here), each session on its own patient's course so no patient data is shared."""

    def __init__(self, world: World, start: dt.datetime | None = None):
        self.world = world
        self.at = start or ago(days=100)
        self.count = 0

    def session(
        self,
        lots: list[Lot] | None = None,
        practitioner: User | None = None,
        adverse: bool = False,
        suspected: list[Lot] | None = None,
        patient: Patient | None = None,
    ) -> Session:
        self.count += 1
        self.at += dt.timedelta(hours=1)
        if patient is None:
            patient = Patient.objects.create(
                clinic=self.world.clinic,
                first_name=f"P{self.count}",
                last_name=f"Patient{self.count:04d}",
                date_of_birth=dt.date(1985, 1, 1),
                phone=f"+1 212 555 {self.count:04d}",
                email=f"p{self.count}@example.com",
            )
        course = Course.objects.filter(patient=patient).first() or do_plan_course(
            patient,
            ClinicProtocol.current(self.world.clinic, "cellulite"),  # type: ignore[arg-type]
            indication="cellulite",
            areas=["thighs"],
            cadence_days=7,
            planned_sessions=15,
            user=self.world.manager,
        )
        number = course.sessions.count() + 1
        [s] = Session.objects.bulk_create(
            [
                Session(
                    course=course,
                    number=number,
                    performed_at=self.at,
                    practitioner=practitioner or self.world.practitioner,
                    stimulants_avoided=True,
                )
            ]
        )
        SessionInjection.objects.bulk_create(
            SessionInjection(session=s, area="thighs", lot=lot, volume_ml=2)
            for lot in (lots if lots is not None else [self.world.lot])
        )
        if adverse:
            self.event(s, suspected)
        return s

    def event(self, session: Session, suspected: list[Lot] | None = None) -> AdverseEvent:
        e = AdverseEvent.objects.create(
            clinic=self.world.clinic,
            patient=session.course.patient,
            course=session.course,
            session=session,
            kind=AdverseEvent.Kind.MYCOBACTERIAL,
            ctcae_grade=2,
            onset_at=session.performed_at + dt.timedelta(days=28),
        )
        if suspected:
            e.suspected_lots.set(suspected)
        return e

    def many(self, outcomes: list[int], **kw: Any) -> list[Session]:
        return [self.session(adverse=bool(x), **kw) for x in outcomes]


def by_hand(outcomes: list[int]) -> list[float]:
    """S_t = max(0, S_{t-1} + w_t), one step at a time."""
    s, path = 0.0, []
    for x in outcomes:
        s = max(0.0, s + (A if x else B))
        path.append(s)
    return path


def signal(report: surveil.Report, method: str, key: str) -> surveil.Signal:
    [found] = [s for s in report.signals if s.method == method and s.key == key]
    return found


class OutcomeTests:
    def test_an_event_counts_against_the_lots_it_names_and_every_lot_when_it_names_none(
        self, world: World
    ) -> None:
        chart = Chart(world)
        a, b = world.lot, world.lidocaine_lot
        named = chart.session(lots=[a, b], adverse=True, suspected=[b])
        unnamed = chart.session(lots=[a, b], adverse=True)
        clean = chart.session(lots=[a])
        streams = surveil.read_streams(world.clinic, ago(seconds=0), 365)
        assert streams.sessions == 3 and streams.adverse_sessions == 2
        assert [(sid, x) for _, sid, x in streams.lots[a.pk]] == [
            (named.pk, 0),
            (unnamed.pk, 1),
            (clean.pk, 0),
        ]
        assert [(sid, x) for _, sid, x in streams.lots[b.pk]] == [(named.pk, 1), (unnamed.pk, 1)]
        assert [x for _, _, x in streams.practitioners[world.practitioner.pk]] == [1, 1, 0]

    def test_two_events_on_one_session_count_once(self, world: World) -> None:
        chart = Chart(world)
        s = chart.session(adverse=True)
        chart.event(s)
        streams = surveil.read_streams(world.clinic, ago(seconds=0), 365)
        assert streams.adverse_sessions == 1
        assert [x for _, _, x in streams.lots[world.lot.pk]] == [1]

    def test_sessions_are_read_in_the_order_they_were_performed(self, world: World) -> None:
        chart = Chart(world)
        late = chart.session(adverse=True)
        chart.at = late.performed_at - dt.timedelta(days=2)
        early = chart.session()
        streams = surveil.read_streams(world.clinic, ago(seconds=0), 365)
        assert [sid for _, sid, _ in streams.lots[world.lot.pk]] == [early.pk, late.pk]


class BaselineTests:
    def test_a_clinic_without_sessions_gets_the_prior_rate(self) -> None:
        assert surveil.baseline_rate(0, 0, 0.01, 100) == 0.01

    def test_many_sessions_outweigh_the_prior(self) -> None:
        # (30 + 0.01 * 100) / (1000 + 100) = 0.02818... -> 0.028
        assert surveil.baseline_rate(30, 1000, 0.01, 100) == 0.028

    def test_ten_clean_sessions_do_not_give_a_rate_of_zero(self) -> None:
        # (0 + 1) / (10 + 100) = 0.00909...
        assert surveil.baseline_rate(0, 10, 0.01, 100) == 0.0091

    def test_it_reads_only_the_look_back_window(self, world: World, settings: Any) -> None:
        settings.SURVEIL_PRIOR_RATE = 0.01
        settings.SURVEIL_PRIOR_SESSIONS = 100
        settings.SURVEIL_BASELINE_DAYS = 365
        Chart(world, start=ago(days=800)).many([1] * 50)  # two years ago: outside the window
        Chart(world, start=ago(days=30)).many([0] * 100)
        report = surveil.run(world.clinic, dry_run=True)
        # (0 + 1) / (100 + 100) = 0.005, not (50 + 1) / (150 + 100)
        assert report.baseline_rate == 0.005
        assert report.sessions == 150 and report.adverse_sessions == 50


class CusumTests:
    def test_the_lot_statistic_is_the_hand_computed_cusum(
        self, world: World, fixed_p0: None
    ) -> None:
        Chart(world).many([0, 0, 1, 0, 1, 1])
        report = surveil.run(world.clinic, dry_run=True)
        s = signal(report, "cusum", f"lot:{world.lot.pk}")
        # 0, 0, a, a + b, 2a + b, 3a + b: the highest is 3 ln 5 + ln(0.90/0.98) = 4.7432
        assert s.statistic == pytest.approx(3 * A + B, abs=1e-12)
        assert s.statistic == pytest.approx(4.7432, abs=1e-4)
        assert (s.sessions, s.adverse_sessions) == (6, 3)
        assert report.baseline_rate == P0
        assert s.threshold == surveil.control_limit(P0, 5.0, 500, 0.05)

    def test_the_practitioner_stream_has_only_their_own_sessions(
        self, world: World, fixed_p0: None
    ) -> None:
        chart = Chart(world)
        chart.many([1, 0], practitioner=world.manager)
        chart.many([0, 1, 1])
        report = surveil.run(world.clinic, dry_run=True)
        mine = signal(report, "cusum", f"practitioner:{world.practitioner.pk}")
        theirs = signal(report, "cusum", f"practitioner:{world.manager.pk}")
        assert mine.statistic == pytest.approx(max(by_hand([0, 1, 1])), abs=1e-12)
        assert theirs.statistic == pytest.approx(max(by_hand([1, 0])), abs=1e-12)

    def test_an_alert_is_raised_exactly_when_the_limit_is_crossed(
        self, world: World, fixed_p0: None, settings: Any
    ) -> None:
        settings.SURVEIL_NEW_LOT_DAYS = 0  # the MaxSPRT is tested on its own below
        h = surveil.control_limit(P0, 5.0, 500, 0.05)
        outcomes = [0] * 10 + [1, 0, 0, 1, 0, 1, 0, 0, 1, 1, 1]
        path = by_hand(outcomes)
        first = next(i for i, s in enumerate(path) if s >= h)
        assert path[first - 1] < h  # the crossing is inside the sequence, not at its start
        chart = Chart(world)
        # Each session on the manager's name, so only the lot's CUSUM sees this stream... and
        # the manager's; other lots and practitioners see nothing.
        chart.many(outcomes[:first], practitioner=world.manager)
        surveil.run(world.clinic)
        assert not SafetyAlert.objects.filter(subject="lot").exists()
        chart.many(outcomes[first : first + 1], practitioner=world.manager)
        report = surveil.run(world.clinic)
        alert = SafetyAlert.objects.get(subject="lot", method="cusum")
        assert alert.lot == world.lot and alert.subject_key == f"lot:{world.lot.pk}"
        assert alert.sessions == first + 1
        assert alert.adverse_sessions == sum(outcomes[: first + 1])
        assert alert.statistic == pytest.approx(path[first], abs=1e-12)
        assert alert.threshold == h and alert.baseline_rate == P0
        assert alert.status == "open" and alert.run == report.run
        assert f"{world.product.name} lot {world.lot.lot_number}" in alert.message
        assert f"in {first + 1} sessions" in alert.message and "2 %" in alert.message
        assert AuditEvent.objects.filter(
            object_type="safety.SafetyAlert", object_id=str(alert.pk), action="create"
        ).exists()

    def test_a_persisting_signal_updates_its_alert(self, world: World, fixed_p0: None) -> None:
        chart = Chart(world)
        chart.many([1, 1, 1, 1])
        first = surveil.run(world.clinic)
        assert len(first.raised) >= 1
        alerts = set(SafetyAlert.objects.values_list("pk", "method", "subject_key"))
        chart.many([1])
        second = surveil.run(world.clinic)
        assert second.raised == [] and len(second.updated) == len(first.raised)
        assert set(SafetyAlert.objects.values_list("pk", "method", "subject_key")) == alerts
        lot_alert = SafetyAlert.objects.get(method="cusum", subject_key=f"lot:{world.lot.pk}")
        assert lot_alert.sessions == 5 and lot_alert.adverse_sessions == 5
        assert lot_alert.run == second.run
        assert SurveillanceRun.objects.count() == 2
        assert SurveillanceRun.objects.get(pk=second.run.pk).alerts_raised == 0  # type: ignore[union-attr]

    def test_closing_an_alert_restarts_its_cusum(self, world: World, fixed_p0: None) -> None:
        chart = Chart(world, start=ago(days=10))
        chart.many([1, 1, 1, 1])
        surveil.run(world.clinic)
        alert = SafetyAlert.objects.get(method="cusum", subject_key=f"lot:{world.lot.pk}")
        alert = do_close_alert(alert, world.manager, "Lot withdrawn from use; patients called.")
        surveil.run(world.clinic)
        assert not SafetyAlert.objects.filter(
            method="cusum", subject_key=f"lot:{world.lot.pk}", status="open"
        ).exists()
        # Only sessions after the close count from now on.
        chart.at = alert.handled_at  # type: ignore[assignment]
        chart.many([1, 1, 1, 1])
        surveil.run(world.clinic)
        again = SafetyAlert.objects.get(
            method="cusum", subject_key=f"lot:{world.lot.pk}", status="open"
        )
        assert again.pk != alert.pk and again.sessions == 4

    def test_a_dry_run_records_nothing(self, world: World, fixed_p0: None) -> None:
        Chart(world).many([1, 1, 1, 1])
        report = surveil.run(world.clinic, dry_run=True)
        assert report.alarms and report.run is None
        assert not SafetyAlert.objects.exists() and not SurveillanceRun.objects.exists()

    def test_the_grouped_cusum_matches_each_stream_on_its_own(self) -> None:
        rng = np.random.default_rng(3)
        groups = np.sort(rng.integers(0, 40, size=5_000))
        outcomes = (rng.random(5_000) < 0.05).astype(np.int8)
        w_event, w_none = stats.cusum_weights(P0, 0.10)
        got = surveil.grouped_cusum(groups, outcomes, w_event, w_none)
        for g in np.unique(groups):
            mask = groups == g
            want = stats.cusum_path(outcomes[mask], P0, 0.10)
            assert np.allclose(got[mask], want, rtol=0, atol=1e-9)

    def test_another_clinic_is_surveyed_apart(
        self, world: World, other: World, fixed_p0: None
    ) -> None:
        Chart(world).many([1, 1, 1, 1])
        Chart(other).many([0, 0])
        surveil.run(other.clinic)
        assert not SafetyAlert.objects.exists()
        surveil.run(world.clinic)
        assert set(SafetyAlert.objects.values_list("clinic", flat=True)) == {world.clinic.pk}


class MaxSprtTests:
    def test_a_new_lot_signals_at_the_first_session_its_llr_reaches_the_critical_value(
        self, world: World, fixed_p0: None, settings: Any
    ) -> None:
        cv = surveil.critical_value(P0, 200, 0.05, 2)
        # The published-style check of the critical value itself is in test_surveillance.py.
        assert cv == stats.maxsprt_critical_value(200, 0.98 / 0.02, 0.05, 2).cv
        outcomes = [0] * 8 + [1] + [0] * 6 + [1] + [0] * 2 + [1, 0, 1]
        z = 0.98 / 0.02
        cases, expected = 0, None
        for n, x in enumerate(outcomes, start=1):
            cases += x
            if cases >= 2 and stats.maxsprt_llr(cases, n, z) >= cv:
                expected = n
                break
        assert expected is not None and expected < len(outcomes)
        chart = Chart(world)
        chart.many(outcomes[: expected - 1])
        surveil.run(world.clinic)
        assert not SafetyAlert.objects.filter(method="maxsprt").exists()
        chart.many(outcomes[expected - 1 :])
        surveil.run(world.clinic)
        alert = SafetyAlert.objects.get(method="maxsprt")
        assert alert.lot == world.lot and alert.sessions == expected
        assert alert.threshold == cv and alert.statistic >= cv
        assert "MaxSPRT" in alert.message

    def test_a_single_event_does_not_signal(self, world: World, fixed_p0: None) -> None:
        Chart(world).many([1])
        report = surveil.run(world.clinic, dry_run=True)
        s = signal(report, "maxsprt", f"lot:{world.lot.pk}")
        # ln(1 / 0.02) = 3.9 passes the critical value, but two events are required.
        assert s.statistic > s.threshold and not s.alarm

    def test_a_lot_first_used_long_ago_is_left_to_the_cusum(
        self, world: World, fixed_p0: None, settings: Any
    ) -> None:
        settings.SURVEIL_NEW_LOT_DAYS = 180
        Chart(world, start=ago(days=400)).many([0, 1, 1])
        report = surveil.run(world.clinic, dry_run=True)
        assert not [s for s in report.signals if s.method == "maxsprt"]
        assert signal(report, "cusum", f"lot:{world.lot.pk}")

    def test_closing_a_maxsprt_alert_ends_that_lots_test(
        self, world: World, fixed_p0: None
    ) -> None:
        Chart(world).many([1, 1, 1])
        surveil.run(world.clinic)
        alert = SafetyAlert.objects.get(method="maxsprt", lot=world.lot)
        do_close_alert(alert, world.manager, "Reviewed with the supplier.")
        report = surveil.run(world.clinic, dry_run=True)
        assert not [
            s for s in report.signals if s.method == "maxsprt" and s.subject_id == world.lot.pk
        ]


class EmailTests:
    def test_each_manager_gets_one_email_about_a_new_alert(
        self,
        world: World,
        fixed_p0: None,
        mail: Mailbox,  # noqa: F811
    ) -> None:
        world.manager.email = "boss@example.com"
        world.manager.save()
        second = User.objects.create_user("boss2", email="boss2@example.com", password="pw")
        second.memberships.create(clinic=world.clinic, role="manager")
        world.practitioner.email = "doc@example.com"
        world.practitioner.save()
        Chart(world).many([1, 1, 1, 1])
        report = surveil.run(world.clinic)
        assert report.raised
        recipients = sorted(r for m in mail.received for r in m.rcpt_tos)
        per_alert = ["boss2@example.com", "boss@example.com"]
        assert recipients == sorted(per_alert * len(report.raised))
        subjects = {m.message["Subject"] for m in mail.received}
        assert any("Safety alert at Demo Mesotherapy Clinic" in s for s in subjects)
        body = mail.received[0].text
        assert f"/safety/alerts/{report.raised[0].pk}/" in body
        # Numbers, never a patient's name.
        assert "Patient0001" not in body
        mail.received.clear()
        surveil.run(world.clinic)  # the same signal: updated, not emailed again
        assert mail.received == []

    def test_a_mail_server_that_is_down_does_not_stop_the_alert(
        self, world: World, fixed_p0: None, settings: Any
    ) -> None:
        from tests.test_reminders import free_port

        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = (
            "127.0.0.1",
            free_port(),
            2,
        )
        world.manager.email = "boss@example.com"
        world.manager.save()
        Chart(world).many([1, 1, 1, 1])
        report = surveil.run(world.clinic)
        assert report.raised and SafetyAlert.objects.filter(status="open").exists()


class CommandTests:
    def test_it_prints_the_signals_and_records_the_run(self, world: World, fixed_p0: None) -> None:
        Chart(world).many([1, 1, 1, 1])
        out = io.StringIO()
        call_command("surveil", "--clinic", world.clinic.name, stdout=out)
        text = out.getvalue()
        assert "Demo Mesotherapy Clinic: 4 sessions, 4 with an adverse event" in text
        assert "baseline rate 2 %" in text
        assert f"lot {world.lot.lot_number}: 4 sessions with an adverse event" in text
        assert "new alert" in text
        assert SurveillanceRun.objects.filter(clinic=world.clinic).count() == 1

    def test_a_dry_run_writes_nothing(self, world: World, fixed_p0: None) -> None:
        Chart(world).many([1, 1, 1, 1])
        out = io.StringIO()
        call_command("surveil", "--dry-run", stdout=out)
        assert "dry run, nothing recorded" in out.getvalue()
        assert not SurveillanceRun.objects.exists() and not SafetyAlert.objects.exists()

    def test_it_refuses_an_unknown_clinic(self, world: World) -> None:
        with pytest.raises(CommandError, match="No clinic 'Nowhere'"):
            call_command("surveil", "--clinic", "Nowhere", stdout=io.StringIO())


class ScheduleTests:
    def test_the_worker_runs_surveillance_when_the_last_run_is_older_than_the_interval(
        self, world: World, other: World, fixed_p0: None, settings: Any
    ) -> None:
        settings.SURVEIL_INTERVAL_HOURS = 6
        Chart(world).many([0, 0])
        # The other clinic has no session: nothing to survey.
        assert surveil.clinics_due() == [world.clinic]
        call_command("worker", "--once", stdout=io.StringIO())
        assert SurveillanceRun.objects.filter(clinic=world.clinic).count() == 1
        call_command("worker", "--once", stdout=io.StringIO())
        assert SurveillanceRun.objects.filter(clinic=world.clinic).count() == 1
        SurveillanceRun.objects.update(started_at=ago(hours=7))
        assert surveil.clinics_due() == [world.clinic]
        call_command("worker", "--once", stdout=io.StringIO())
        assert SurveillanceRun.objects.filter(clinic=world.clinic).count() == 2
        assert not SurveillanceRun.objects.filter(clinic=other.clinic).exists()

    def test_a_clinic_run_recently_is_not_due(self, world: World) -> None:
        Chart(world).many([0])
        SurveillanceRun.objects.create(clinic=world.clinic, started_at=ago(hours=1))
        assert surveil.clinics_due() == []
        assert isinstance(world.clinic, Clinic)


class DemoTests:
    def test_the_demo_clinic_has_an_open_lot_alert_from_a_cluster_of_infections(
        self, db: Any
    ) -> None:
        from mesoclinic import demo

        assert demo.load() is True
        clinic = Clinic.objects.get(name=demo.CLINIC_NAME)
        alert = SafetyAlert.objects.get(clinic=clinic, subject="lot", status="open")
        assert alert.lot is not None and not alert.lot.recalled
        events = AdverseEvent.objects.filter(
            clinic=clinic, kind="mycobacterial_infection", suspected_lots=alert.lot
        )
        assert 1 <= events.count() <= 8
        assert alert.adverse_sessions >= events.count()
        assert alert.statistic >= alert.threshold
        assert SurveillanceRun.objects.filter(clinic=clinic).count() == 1
