"""The calendar optimiser: the pure core on small hand-made calendars (a gap it closes, a
confirmed visit that stays, cadence windows, the allergy wait, working hours and holidays,
over-full days, never worse than greedy), `check` catching every broken rule, and the
`optimise` command against the database: it prints, writes only with --apply, audits each
move, and applies moves that swap slots without tripping the overlap constraints."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import zoneinfo
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from benchmarks import optimiser as bench
from mesoclinic.accounts.models import AuditEvent
from mesoclinic.courses.actions import do_plan_course
from mesoclinic.courses.models import AllergyTest, Course
from mesoclinic.patients.models import Patient
from mesoclinic.protocols.models import ClinicProtocol
from mesoclinic.scheduling import actions, logic, optimise_db
from mesoclinic.scheduling import optimise as opt
from mesoclinic.scheduling.models import Appointment, Holiday, WorkingException
from tests.conftest import World
from tests.scheduling_fixtures import at as local

NY = zoneinfo.ZoneInfo("America/New_York")
# Monday 23 Nov 2026 08:00, as in tests/scheduling_fixtures.py; nothing moves before Tuesday
# 08:00 (24 hours' notice).
NOW = dt.datetime(2026, 11, 23, 8, 0, tzinfo=NY)
CLOCK = opt.Clock.starting(NOW, NY, days=60, back=30)
RELEASE = CLOCK.minute(NOW + dt.timedelta(hours=24))
WEEKLY = opt.CourseRules(cadence_days=7, tolerance_days=2, wait_hours=24)
MARIA = 1
DAY = opt.DAY


def at(month: int, day: int, hour: int, minute: int = 0, clock: opt.Clock = CLOCK) -> int:
    return clock.minute(dt.datetime(2026, month, day, hour, minute, tzinfo=NY))


MONDAY = NOW.date()
DEFAULT_WEIGHTS = opt.Weights()


def working_days(
    first: dt.date = MONDAY,
    days: int = 42,
    skip: tuple[dt.date, ...] = (),
    spans: tuple[tuple[int, int], ...] = ((9, 13), (14, 18)),
    clock: opt.Clock = CLOCK,
) -> tuple[tuple[int, int], ...]:
    """Monday to Friday, 09:00–13:00 and 14:00–18:00, except the `skip` dates."""
    out = []
    for n in range(days):
        day = first + dt.timedelta(days=n)
        if day.weekday() >= 5 or day in skip:
            continue
        for start, end in spans:
            out.append(
                (
                    clock.minute(dt.datetime.combine(day, dt.time(start), tzinfo=NY)),
                    clock.minute(dt.datetime.combine(day, dt.time(end), tzinfo=NY)),
                )
            )
    return tuple(out)


def visit(
    vid: int,
    start: int,
    *,
    course: int | None = None,
    kind: str = opt.SESSION,
    movable: bool = True,
    minutes: int = 30,
    patient: int | None = None,
) -> opt.Visit:
    return opt.Visit(
        id=vid,
        kind=kind,
        practitioner=MARIA,
        start=start,
        duration=minutes,
        course=course,
        patient=patient if patient is not None else (course or 100 + vid),
        movable=movable,
    )


def instance(
    visits: list[opt.Visit],
    *,
    hours: tuple[tuple[int, int], ...] | None = None,
    weights: opt.Weights = DEFAULT_WEIGHTS,
    clock: opt.Clock = CLOCK,
    release: int = RELEASE,
) -> opt.Instance:
    courses = {v.course: WEEKLY for v in visits if v.course is not None}
    return opt.Instance(
        clock=clock,
        visits=tuple(visits),
        courses=courses,
        hours={MARIA: working_days(clock=clock) if hours is None else hours},
        release=release,
        weights=weights,
    )


def solve(inst: opt.Instance, **kw: Any) -> opt.Result:
    result = opt.optimise(inst, seconds=kw.pop("seconds", 5.0), **kw)
    assert opt.check(inst, result.plan) == []
    return result


def two_sessions_with_a_gap(second_movable: bool = True) -> opt.Instance:
    """Two courses whose sessions are due on Wednesday 25 Nov at 09:00 and 11:00 (their
    previous sessions were a week before), booked at their due times: 90 idle minutes."""
    return instance(
        [
            visit(1, at(11, 18, 9), course=1, movable=False),
            visit(2, at(11, 25, 9), course=1),
            visit(3, at(11, 18, 11), course=2, movable=False),
            visit(4, at(11, 25, 11), course=2, movable=second_movable),
        ]
    )


class ScoreTests:
    def test_idle_time_is_the_gap_between_visits_inside_one_working_interval(self):
        inst = instance(
            [
                visit(1, at(11, 25, 9)),
                visit(2, at(11, 25, 11)),  # 90 minutes after the first ends
                visit(3, at(11, 25, 14)),  # after lunch: not idle time
            ]
        )
        ctx = opt.Context.of(inst)
        assert opt.score(ctx, inst.current()).idle == 90

    def test_a_sessions_wait_is_its_distance_from_the_due_time_on_the_wall_clock(self):
        inst = instance(
            [visit(1, at(11, 18, 9), course=1, movable=False), visit(2, at(11, 25, 10), course=1)]
        )
        ctx = opt.Context.of(inst)
        assert opt.score(ctx, inst.current()).wait == 60
        assert opt.score(ctx, {**inst.current(), 2: at(11, 25, 8)}).wait == 60

    def test_the_visits_that_need_a_licence_are_the_booking_paths(self):
        assert opt.INJECTING == actions.INJECTING

    def test_the_kinds_are_the_appointment_kinds(self):
        assert (opt.ALLERGY_TEST, opt.TEST_READING, opt.SESSION, opt.REVIEW, opt.MAINTENANCE) == (
            logic.ALLERGY_TEST,
            logic.TEST_READING,
            logic.SESSION,
            logic.REVIEW,
            logic.MAINTENANCE,
        )
        # A consultation needs no course, so the optimiser never plans one; it only works
        # around those booked.
        assert set(Appointment.Kind.values) - {Appointment.Kind.CONSULTATION} == {
            opt.ALLERGY_TEST,
            opt.TEST_READING,
            opt.SESSION,
            opt.REVIEW,
            opt.MAINTENANCE,
        }


class ClockTests:
    def test_a_weekly_session_is_due_at_the_same_local_hour_across_daylight_saving(self):
        clock = opt.Clock.starting(dt.datetime(2026, 3, 2, 7, tzinfo=NY), NY, days=30)
        before = clock.minute(dt.datetime(2026, 3, 2, 10, tzinfo=NY))  # EST
        after = clock.minute(dt.datetime(2026, 3, 9, 10, tzinfo=NY))  # EDT, one hour less
        assert after - before == 7 * DAY - 60
        assert clock.wall(after) - clock.wall(before) == 7 * DAY
        assert clock.from_wall(clock.wall(before) + 7 * DAY) == after
        assert clock.local(after).hour == 10

    def test_the_optimiser_keeps_the_local_hour_across_daylight_saving(self):
        clock = opt.Clock.starting(dt.datetime(2026, 3, 2, 7, tzinfo=NY), NY, days=30)
        march = dt.date(2026, 3, 2)
        inst = instance(
            [
                visit(
                    1, clock.minute(dt.datetime(2026, 3, 2, 10, tzinfo=NY)), course=1, movable=False
                ),
                # Booked two hours late on the wall clock.
                visit(2, clock.minute(dt.datetime(2026, 3, 9, 12, tzinfo=NY)), course=1),
            ],
            hours=working_days(march, clock=clock),
            clock=clock,
            release=clock.minute(dt.datetime(2026, 3, 3, 8, tzinfo=NY)),
        )
        result = solve(inst)
        moved = clock.local(result.plan[2])
        assert (moved.date(), moved.hour, moved.minute) == (dt.date(2026, 3, 9), 10, 0)
        assert result.final.wait == 0


class OptimiseTests:
    def test_it_closes_a_gap_in_a_practitioners_day(self):
        inst = two_sessions_with_a_gap()
        result = solve(inst)
        assert result.current == opt.Score(wait=0, idle=90, moves=0)
        # Greedy keeps each session at its due time, so it leaves the gap.
        assert result.greedy.idle == 90
        # Moving one session by 90 minutes closes it: the cheapest plan.
        assert result.final == opt.Score(wait=90, idle=0, moves=1)
        ((moved, start),) = result.changes(inst)
        assert CLOCK.local(start).date() == dt.date(2026, 11, 25)
        assert {moved.id: start} in ({2: at(11, 25, 10, 30)}, {4: at(11, 25, 9, 30)})

    def test_a_confirmed_appointment_stays_where_it_is(self):
        inst = two_sessions_with_a_gap(second_movable=False)
        result = solve(inst)
        assert result.plan[4] == at(11, 25, 11)
        assert result.plan[2] == at(11, 25, 10, 30)  # next to the confirmed one
        both_fixed = instance(
            [v if v.id != 2 else visit(2, v.start, course=1, movable=False) for v in inst.visits]
        )
        assert solve(both_fixed).changes(both_fixed) == []

    def test_a_session_never_leaves_its_cadence_window_even_to_fill_a_gap(self):
        # Only idle time counts here, so nothing but the window keeps the session away from
        # the gap on Monday 30 Nov between two other patients' visits.
        inst = instance(
            [
                visit(1, at(11, 19, 9), course=1, movable=False),
                visit(2, at(11, 26, 9), course=1),
                visit(3, at(11, 30, 9), movable=False),
                visit(4, at(11, 30, 10, 30), movable=False),
            ],
            weights=opt.Weights(wait=0, idle=10, move=0),
        )
        result = solve(inst)
        assert at(11, 24, 9) <= result.plan[2] <= at(11, 28, 9)  # 7 ± 2 days after Thu 19
        assert result.final.idle == 60

    def test_a_session_waits_the_allergy_test_hours_even_to_fill_a_gap(self):
        inst = instance(
            [
                visit(
                    1, at(11, 24, 10), course=1, kind=opt.ALLERGY_TEST, minutes=20, movable=False
                ),
                visit(2, at(11, 25, 10), course=1),
                visit(3, at(11, 25, 9), movable=False),  # 09:30–10:00 is free: 23.5 h after
            ],
            weights=opt.Weights(wait=0, idle=10, move=0),
        )
        result = solve(inst)
        assert result.plan[2] >= at(11, 25, 10)
        assert result.final.idle == 0  # it went where it leaves no gap instead

    def test_it_never_moves_a_visit_onto_a_holiday_or_outside_working_hours(self):
        wednesday = dt.date(2026, 11, 25)  # the clinic's holiday
        inst = instance(
            [
                visit(1, at(11, 18, 10), course=1, movable=False),
                visit(2, at(11, 27, 10), course=1),  # two days late; due on the holiday
            ],
            hours=working_days(skip=(wednesday,)),
        )
        result = solve(inst)
        # The nearest working time to Wednesday 10:00 is Tuesday's last half hour.
        assert result.plan[2] == at(11, 24, 17, 30)
        assert result.final.wait == 16 * 60 + 30
        assert not any(p.code == "outside_hours" for p in opt.check(inst, result.plan))

    def test_an_over_full_calendar_keeps_what_cannot_move(self):
        # Maria now works one hour, which two confirmed visits fill; the open session was
        # booked on Thursday before her hours changed. It has nowhere to go and stays.
        wednesday = CLOCK.minute(dt.datetime(2026, 11, 25, 9, tzinfo=NY))
        inst = instance(
            [
                visit(1, at(11, 25, 9), movable=False),
                visit(2, at(11, 25, 9, 30), movable=False),
                visit(3, at(11, 26, 10)),
            ],
            hours=((wednesday, wednesday + 60),),
        )
        result = solve(inst)
        assert result.changes(inst) == []
        assert result.greedy_failed == 0
        assert [p.code for p in opt.check(inst, inst.current(), strict=True)] == ["outside_hours"]

    def test_a_patient_booked_twice_at_once_is_left_alone_and_the_rest_improves(self):
        both = dict(course=None, patient=7)
        inst = instance(
            [
                *two_sessions_with_a_gap().visits,
                visit(5, at(11, 26, 9), **both),  # Thursday 09:00 with Maria...
                opt.Visit(6, opt.REVIEW, 2, at(11, 26, 9), 30, None, 7, movable=False),  # ...and Jo
            ]
        )
        result = solve(inst)
        assert result.plan[5] == at(11, 26, 9)
        assert result.final.idle == 0 and result.final.moves == 1

    def test_a_cadence_already_broken_is_mended_or_at_least_not_made_worse(self):
        late = [
            visit(1, at(11, 18, 9), course=1, movable=False),
            visit(2, at(11, 30, 9), course=1),  # 12 days after: the window closed on the 27th
        ]
        monday_only = working_days(first=dt.date(2026, 11, 30), days=1)
        stuck = instance(late, hours=monday_only)
        result = solve(stuck)
        assert result.changes(stuck) == []
        assert [p.code for p in opt.check(stuck, result.plan, strict=True)] == ["cadence"]
        mended = solve(instance(late))
        assert at(11, 23, 9) <= mended.plan[2] <= at(11, 27, 9)
        assert opt.check(instance(late), mended.plan, strict=True) == []

    def test_cp_sat_is_never_worse_than_greedy_nor_than_the_calendar_as_booked(self):
        inst = bench.build(courses=50, practitioners=4, seed=3)
        w = inst.weights
        for hint in (True, False):
            result = opt.optimise(inst, seconds=2.0, hint=hint)
            assert opt.check(inst, result.plan) == []
            assert result.final.total(w) <= result.greedy.total(w)
            assert result.final.total(w) <= result.current.total(w)
        assert result.final.total(w) < result.greedy.total(w)

    def test_every_rule_holds_when_counted_again_from_the_local_times(self):
        """The rules re-counted here with zoneinfo alone, not with `check`."""
        inst = bench.build(courses=40, practitioners=3, seed=5)
        plan = opt.optimise(inst, seconds=3.0).plan
        clock = inst.clock
        broken_now = {p.visits for p in opt.check(inst, inst.current(), strict=True)}

        def local(vid: int) -> dt.datetime:
            return clock.local(plan[vid]).replace(tzinfo=None)

        chains: dict[int, list[opt.Visit]] = {}
        for v in sorted(inst.visits, key=lambda v: v.start):
            chains.setdefault(v.course or -v.id, []).append(v)
        for chain in chains.values():
            sessions = [v for v in chain if v.kind == opt.SESSION]
            for a, b in zip(sessions, sessions[1:], strict=False):
                if (a.id, b.id) in broken_now:
                    continue
                rules = inst.courses[a.course]  # type: ignore[index]
                low = dt.timedelta(days=rules.cadence_days - rules.tolerance_days)
                high = dt.timedelta(days=rules.cadence_days + rules.tolerance_days)
                assert low <= local(b.id) - local(a.id) <= high
            tests = [v for v in chain if v.kind == opt.ALLERGY_TEST]
            if tests and sessions:
                assert plan[sessions[0].id] - plan[tests[-1].id] >= 24 * 60
        for v in inst.visits:  # No moved visit overlaps another of its practitioner.
            if plan[v.id] == v.start:
                continue
            for o in inst.visits:
                if o.id != v.id and o.practitioner == v.practitioner and o.duration:
                    assert (
                        plan[o.id] + o.duration <= plan[v.id]
                        or plan[v.id] + v.duration <= plan[o.id]
                    )
        for v in inst.visits:
            if plan[v.id] != v.start:
                assert v.movable and plan[v.id] >= inst.release
                assert any(
                    s <= plan[v.id] and plan[v.id] + v.duration <= e
                    for s, e in inst.hours[v.practitioner]
                )

    def test_the_cp_sat_objective_is_the_score(self):
        """Two plans of one block cost the same difference in the model as in `score`, so the
        solver minimises what the totals report."""
        from ortools.sat.python import cp_model

        inst = bench.build(courses=40, practitioners=3, seed=11)
        ctx = opt.Context.of(inst)
        (group,) = opt.components(ctx)
        before = opt.greedy(ctx, group, inst.current())
        assert before is not None
        compared = 0
        for block in opt.blocks(ctx, group, 8, whole=0)[:8]:
            after = opt.solve_block(ctx, block, before, seconds=0.3).plan
            assert after is not None

            def cost(plan: dict[int, int], block: list[int] = block) -> float:
                model = opt._Model(ctx, block, before)
                for vid, var in model.start.items():
                    model.model.add(var == plan[vid])
                solver = cp_model.CpSolver()
                assert solver.solve(model.model) == cp_model.OPTIMAL
                return solver.objective_value

            change = opt._block_score(ctx, after, block) - opt._block_score(ctx, before, block)
            assert cost(after) - cost(before) == change
            compared += change != 0
        assert compared  # some block did change the score

    def test_greedy_holds_a_course_still_when_one_of_its_visits_finds_no_start(self, monkeypatch):
        inst = bench.build(courses=120, practitioners=4, seed=7)
        ctx = opt.Context.of(inst)
        passes: list[set[int]] = []
        first_fit = opt._first_fit

        def spy(*args: Any) -> Any:
            plan, stuck = first_fit(*args)
            passes.append(stuck)
            return plan, stuck

        monkeypatch.setattr(opt, "_first_fit", spy)
        (group,) = opt.components(ctx)
        plan = opt.greedy(ctx, group, inst.current())
        assert plan is not None and passes[0] and not passes[-1]
        assert opt.check(inst, plan) == []
        held = {ctx.by_id[v].course for v in passes[0]}
        assert all(plan[v.id] == v.start for v in inst.visits if v.course in held)


class CheckTests:
    """`check` on plans that break each rule, made by hand."""

    def setup_method(self):
        self.inst = instance(
            [
                visit(1, at(11, 24, 10), course=1, kind=opt.ALLERGY_TEST, minutes=20),
                visit(2, at(11, 25, 10), course=1),
                visit(3, at(12, 2, 10), course=1),
                visit(4, at(11, 25, 11), movable=False),
            ]
        )

    def codes(self, **moves: int) -> list[str]:
        plan = {**self.inst.current(), **{int(k[1:]): v for k, v in moves.items()}}
        return sorted(p.code for p in opt.check(self.inst, plan))

    def test_the_calendar_as_booked_passes(self):
        assert self.codes() == []

    def test_it_finds_each_broken_rule(self):
        assert self.codes(v2=at(11, 25, 11)) == ["overlap_practitioner"]
        assert self.codes(v4=at(11, 25, 12)) == ["moved_fixed"]
        assert self.codes(v2=at(11, 25, 18)) == ["outside_hours"]
        assert self.codes(v2=at(11, 25, 9, 50)) == ["allergy_wait", "off_grid"]
        assert self.codes(v3=at(11, 27, 10)) == ["cadence"]  # two days: too soon
        assert self.codes(v3=at(12, 10, 10)) == ["cadence", "too_far"]  # fifteen days
        assert self.codes(v1=at(11, 23, 14)) == ["too_soon"]
        assert self.codes(v1=at(11, 25, 10, 30), v2=at(11, 25, 10)) == ["allergy_wait", "order"]

    def test_an_injecting_visit_may_not_move_past_the_licence(self):
        friday = CLOCK.minute(dt.datetime(2026, 11, 27, tzinfo=NY))
        self.inst = dataclasses.replace(self.inst, licence_ends={MARIA: friday})
        assert self.codes(v3=at(11, 27, 10)) == ["cadence", "unlicensed"]
        assert self.codes(v2=at(11, 26, 10)) == []
        # Staying where it is booked, after the licence ends, is not a move.
        assert opt.check(self.inst, self.inst.current()) == []
        ctx = opt.Context.of(self.inst)
        assert max(ctx.domain[2]) < friday and ctx.domain[3] == [at(12, 2, 10)]


# The command and the database.


def appointment(
    world: World,
    patient: Patient,
    start: dt.datetime,
    *,
    course: Course | None = None,
    status: str = Appointment.Status.BOOKED,
    kind: str = Appointment.Kind.SESSION,
    minutes: int = 30,
) -> Appointment:
    """A row as the calendar holds it (past and done ones included, which booking refuses)."""
    return Appointment.objects.create(
        clinic=world.clinic,
        patient=patient,
        course=course,
        kind=kind,
        practitioner=world.practitioner,
        starts_at=start,
        ends_at=start + dt.timedelta(minutes=minutes),
        status=status,
    )


def other_patient(world: World, first: str = "Bea", last: str = "Cruz") -> Patient:
    return Patient.objects.create(
        clinic=world.clinic, first_name=first, last_name=last, date_of_birth=dt.date(1985, 1, 2)
    )


def weekly_course(world: World, patient: Patient) -> Course:
    return do_plan_course(
        patient,
        ClinicProtocol.current(world.clinic, "cellulite"),  # type: ignore[arg-type]
        indication="cellulite",
        areas=["thighs"],
        cadence_days=7,
        planned_sessions=15,
        user=world.manager,
    )


WEDNESDAY, LAST_WEDNESDAY = dt.date(2026, 11, 25), dt.date(2026, 11, 18)


@pytest.fixture
def gap(cal: World, patient: Patient) -> dict[str, Appointment]:
    """Ana's session due and booked Wed 25 Nov 09:00, Bea's confirmed one at 11:00 (each a
    week after the last, which is done): 90 idle minutes in Maria's morning."""
    bea = other_patient(cal)
    ana_course, bea_course = weekly_course(cal, patient), weekly_course(cal, bea)
    done = Appointment.Status.DONE
    appointment(cal, patient, local(9, day=LAST_WEDNESDAY), course=ana_course, status=done)
    appointment(cal, bea, local(11, day=LAST_WEDNESDAY), course=bea_course, status=done)
    return {
        "ana": appointment(cal, patient, local(9, day=WEDNESDAY), course=ana_course),
        "bea": appointment(
            cal,
            bea,
            local(11, day=WEDNESDAY),
            course=bea_course,
            status=Appointment.Status.CONFIRMED,
        ),
    }


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("optimise", *args, "--seconds", "3", stdout=out)
    return out.getvalue()


def reloaded(a: Appointment) -> Appointment:
    return Appointment.objects.get(pk=a.pk)


class CommandTests:
    def test_it_prints_the_changes_and_the_totals_and_writes_nothing(self, cal, gap):
        out = run("--clinic", str(cal.clinic.pk))
        assert (
            "Demo Mesotherapy Clinic (America/New_York): 1 open appointment with 1 practitioner "
            "from Tue 24 Nov 08:00 on; 1 confirmed appointment kept where it is" in out
        )
        assert "Changes (1):" in out
        assert "Ana Lopez · Session · Wed 25 Nov 09:00 → Wed 25 Nov 10:30 · Maria Silva" in out
        assert "as booked" in out and "greedy first fit" in out and "CP-SAT" in out
        lines = {
            line.split()[0]: line.split() for line in out.splitlines() if line.startswith("  ")
        }
        assert lines["CP-SAT"][1:] == ["1.5", "h", "0.0", "h", "1"]  # wait, idle, moves
        assert "Dry run: nothing was changed" in out
        assert reloaded(gap["ana"]).starts_at == local(9, day=WEDNESDAY)
        assert not AuditEvent.objects.filter(via="optimiser").exists()

    def test_with_apply_it_moves_and_audits_each_appointment(self, cal, gap):
        out = run("--clinic", cal.clinic.name, "--apply", "--user", cal.manager.username)
        assert "Moved 1 appointment" in out
        ana = reloaded(gap["ana"])
        assert (ana.starts_at, ana.ends_at) == (local(10, 30, WEDNESDAY), local(11, 0, WEDNESDAY))
        assert ana.status == Appointment.Status.BOOKED
        assert reloaded(gap["bea"]).starts_at == local(11, day=WEDNESDAY)
        event = AuditEvent.objects.get(via="optimiser")
        assert (event.object_id, event.user, event.action) == (
            str(ana.pk),
            cal.manager,
            AuditEvent.Action.UPDATE,
        )
        assert dt.datetime.fromisoformat(event.detail["previous_starts_at"]) == local(
            9, day=WEDNESDAY
        )
        assert dt.datetime.fromisoformat(event.detail["starts_at"]) == ana.starts_at
        # Run again: the calendar is as good as it gets, so nothing more moves.
        assert "No change" in run("--clinic", str(cal.clinic.pk), "--apply")

    def test_confirmed_appointments_move_only_when_asked(self, cal, gap):
        run("--clinic", str(cal.clinic.pk), "--apply", "--move-confirmed")
        ana, bea = reloaded(gap["ana"]), reloaded(gap["bea"])
        moved = [a for a, was in ((ana, 9), (bea, 11)) if a.starts_at != local(was, day=WEDNESDAY)]
        assert len(moved) == 1  # one of them closes the gap
        first, second = sorted((ana, bea), key=lambda a: a.starts_at)
        assert first.ends_at == second.starts_at
        assert bea.status == Appointment.Status.CONFIRMED

    def test_it_never_moves_into_time_off_or_onto_a_holiday(self, cal, patient):
        """Ana's session is due Tuesday 09:00 and booked a day late. The optimiser brings it
        to Tuesday, after Maria's morning off; on a holiday it leaves it where it is."""
        tuesday = dt.date(2026, 11, 24)
        course = weekly_course(cal, patient)
        appointment(
            cal,
            patient,
            local(9, day=tuesday - dt.timedelta(days=7)),
            course=course,
            status=Appointment.Status.DONE,
        )
        ana = appointment(cal, patient, local(9, day=WEDNESDAY), course=course)
        WorkingException.objects.create(
            clinic=cal.clinic,
            user=cal.practitioner,
            date=tuesday,
            kind=WorkingException.Kind.TIME_OFF,
            starts=dt.time(8),
            ends=dt.time(12),
        )
        assert "Wed 25 Nov 09:00 → Tue 24 Nov 12:00" in run("--clinic", str(cal.clinic.pk))
        Holiday.objects.create(clinic=cal.clinic, date=tuesday, name="Closed")
        assert "No change" in run("--clinic", str(cal.clinic.pk), "--apply")
        assert reloaded(ana).starts_at == local(9, day=WEDNESDAY)

    def test_it_never_moves_a_session_past_the_practitioners_licence(self, cal, patient):
        """Ana's session is due Wednesday 09:00 and booked a day late. With Maria's licence
        ending on Tuesday it can only come forward to Tuesday's last half hour."""
        course = weekly_course(cal, patient)
        done = Appointment.Status.DONE
        appointment(cal, patient, local(9, day=LAST_WEDNESDAY), course=course, status=done)
        ana = appointment(cal, patient, local(9, day=dt.date(2026, 11, 26)), course=course)
        licence = cal.practitioner.licences.get(clinic=cal.clinic)
        licence.expires_on = dt.date(2026, 11, 24)
        licence.save()
        assert "Thu 26 Nov 09:00 → Tue 24 Nov 17:30" in run("--clinic", str(cal.clinic.pk))
        licence.expires_on = dt.date(2027, 11, 24)
        licence.save()
        run("--clinic", str(cal.clinic.pk), "--apply")
        assert reloaded(ana).starts_at == local(9, day=WEDNESDAY)

    def test_it_refuses_an_unknown_clinic_and_a_user_who_is_not_its_manager(self, cal):
        with pytest.raises(CommandError, match="No clinic 'Nowhere'"):
            run("--clinic", "Nowhere")
        with pytest.raises(CommandError, match="No clinic '999999'"):
            run("--clinic", "999999")
        with pytest.raises(CommandError, match="is not a manager"):
            run("--clinic", str(cal.clinic.pk), "--user", cal.front_desk.username)
        with pytest.raises(CommandError, match="weights not negative"):
            run("--clinic", str(cal.clinic.pk), "--weight-idle", "-1")

    def test_an_empty_calendar_has_nothing_to_replan(self, cal):
        assert "Nothing to re-plan." in run("--clinic", str(cal.clinic.pk))

    def test_a_charted_allergy_test_without_an_appointment_still_holds_session_one(
        self, cal, patient
    ):
        course = weekly_course(cal, patient)
        AllergyTest.objects.create(
            course=course, given_at=local(7, day=NOW.date()), given_by=cal.practitioner
        )
        first = appointment(cal, patient, local(14, day=WEDNESDAY), course=course)
        run("--clinic", str(cal.clinic.pk), "--apply", "--notice-hours", "0")
        # As early as it may be: 24 hours after the test (Tuesday 07:00), in working hours.
        assert reloaded(first).starts_at == local(9, day=dt.date(2026, 11, 24))


class LoadTests:
    def test_only_booked_appointments_after_the_notice_are_open(self, cal, patient):
        """Past, in-progress, arrived, done and confirmed visits are fixed; cancelled and
        missed ones free their slot and are left out."""
        status = Appointment.Status
        rows = {
            name: appointment(cal, other_patient(cal, name), start, status=state)
            for name, start, state in (
                ("past", NOW - dt.timedelta(hours=3), status.BOOKED),
                ("started", NOW - dt.timedelta(minutes=10), status.BOOKED),
                ("soon", local(9, day=MONDAY), status.BOOKED),
                ("open", local(9, day=WEDNESDAY), status.BOOKED),
                ("confirmed", local(10, day=WEDNESDAY), status.CONFIRMED),
                ("arrived", local(11, day=WEDNESDAY), status.ARRIVED),
                ("done", local(12, day=WEDNESDAY), status.DONE),
                ("missed", local(14, day=WEDNESDAY), status.NO_SHOW),
                ("cancelled", local(15, day=WEDNESDAY), status.CANCELLED),
            )
        }

        def names(calendar: optimise_db.Calendar) -> tuple[set[str], set[str]]:
            by_pk = {a.pk: name for name, a in rows.items()}
            return {by_pk[a.pk] for a in calendar.open}, {by_pk[pk] for pk in calendar.appointments}

        opened, read = names(optimise_db.load(cal.clinic))
        assert opened == {"open"}
        assert read == {"past", "started", "soon", "open", "confirmed", "arrived", "done"}
        opened, _ = names(optimise_db.load(cal.clinic, optimise_db.Options(move_confirmed=True)))
        assert opened == {"open", "confirmed"}
        # Without notice, today's 09:00 may move too, but never the one in progress.
        no_notice = optimise_db.Options(notice=dt.timedelta(0))
        assert names(optimise_db.load(cal.clinic, no_notice))[0] == {"soon", "open"}


class ApplyTests:
    def test_moves_that_swap_two_slots_never_overlap_on_the_way(self, cal, patient):
        """Ana and Bea swap slots. Saved one by one, the first would land on the other's old
        slot; the plan is applied with the moving rows set aside first."""
        bea = other_patient(cal)
        a = appointment(cal, patient, local(9, day=WEDNESDAY))
        b = appointment(cal, bea, local(9, 30, WEDNESDAY))
        calendar = optimise_db.load(cal.clinic)
        clock = calendar.instance.clock
        plan = {
            a.pk: clock.minute(local(9, 30, WEDNESDAY)),
            b.pk: clock.minute(local(9, day=WEDNESDAY)),
        }
        moved = optimise_db.apply(calendar, plan)
        assert {m.pk for m in moved} == {a.pk, b.pk}
        assert reloaded(a).starts_at == local(9, 30, WEDNESDAY)
        assert reloaded(b).starts_at == local(9, day=WEDNESDAY)
        assert {reloaded(a).status, reloaded(b).status} == {Appointment.Status.BOOKED}
        assert AuditEvent.objects.filter(via="optimiser").count() == 2

    def test_a_plan_is_refused_when_the_calendar_changed_since_it_was_read(self, cal, patient):
        a = appointment(cal, patient, local(11, day=WEDNESDAY))
        calendar = optimise_db.load(cal.clinic)
        clock = calendar.instance.clock
        plan = {a.pk: clock.minute(local(9, day=WEDNESDAY))}
        # Someone books 09:00 for another patient before the plan is applied.
        appointment(cal, other_patient(cal), local(9, day=WEDNESDAY))
        with pytest.raises(optimise_db.PlanRefused) as refused:
            optimise_db.apply(calendar, plan)
        assert [p.code for p in refused.value.problems] == ["overlap_practitioner"]
        assert reloaded(a).starts_at == local(11, day=WEDNESDAY)
        # And a row that itself changed is refused before anything is read again.
        Appointment.objects.filter(pk=a.pk).update(
            starts_at=local(12, day=WEDNESDAY), ends_at=local(12, 30, WEDNESDAY)
        )
        with pytest.raises(optimise_db.PlanRefused, match="changed since it was read"):
            optimise_db.apply(calendar, plan)
        assert not AuditEvent.objects.filter(via="optimiser").exists()

    def test_working_intervals_follow_the_booking_rules(self, cal):
        """The template, less time off, plus extra hours, inside opening hours; nothing on a
        holiday or a whole day off."""
        maria = cal.practitioner.pk
        day_off, holiday, saturday = (
            dt.date(2026, 11, 30),
            dt.date(2026, 12, 1),
            dt.date(2026, 11, 28),
        )
        exceptions = [
            (WEDNESDAY, WorkingException.Kind.TIME_OFF, dt.time(10), dt.time(11)),
            (day_off, WorkingException.Kind.TIME_OFF, None, None),
            (saturday, WorkingException.Kind.EXTRA_HOURS, dt.time(7), dt.time(12)),
        ]
        for day, kind, starts, ends in exceptions:
            WorkingException.objects.create(
                clinic=cal.clinic,
                user=cal.practitioner,
                date=day,
                kind=kind,
                starts=starts,
                ends=ends,
            )
        Holiday.objects.create(clinic=cal.clinic, date=holiday, name="Closed")
        hours = optimise_db.working_intervals(cal.clinic, {maria}, WEDNESDAY, dt.date(2026, 12, 2))
        by_day: dict[dt.date, list[tuple[str, str]]] = {}
        for start, end in hours[maria]:
            by_day.setdefault(start.date(), []).append((f"{start:%H:%M}", f"{end:%H:%M}"))
        assert by_day[WEDNESDAY] == [("09:00", "10:00"), ("11:00", "13:00"), ("14:00", "18:00")]
        assert by_day[saturday] == [("08:00", "12:00")]  # the clinic opens at 08:00
        assert day_off not in by_day and holiday not in by_day
        assert dt.date(2026, 11, 29) not in by_day  # Sunday
        assert by_day[dt.date(2026, 12, 2)] == [("09:00", "13:00"), ("14:00", "18:00")]


def test_the_optimiser_benchmark_runs() -> None:
    """A small version of benchmarks/optimiser.py, so that it cannot rot."""
    figures = bench.run(courses=30, practitioners=3, seconds=2.0)
    assert figures["objective_ratio"] <= 1.0 and figures["no_hint_objective_ratio"] <= 1.0
    assert figures["total_s"] > 0 and figures["greedy_s"] > 0
