"""Clinic analytics (outcomes/analytics.py): each figure on a small clinic built by hand with
known answers, the DuckDB answers against a plain-Python recomputation on random data, tenancy,
and an empty clinic."""

from __future__ import annotations

import datetime as dt
import random
import zoneinfo
from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any

import pytest

from mesoclinic.courses.logic import add_months
from mesoclinic.courses.models import Course, Session, SessionInjection
from mesoclinic.outcomes import analytics
from mesoclinic.outcomes.analytics import Extract, columns, compute
from mesoclinic.outcomes.models import Measurement
from mesoclinic.patients.models import Patient
from mesoclinic.protocols.models import ClinicProtocol
from tests.conftest import World

UTC = dt.UTC
# The hand-built clinic is judged as of this moment; its default range is 16 Jun 2024 to
# 15 Jun 2025 (America/New_York).
NOW = dt.datetime(2025, 6, 15, 16, 0, tzinfo=UTC)
START, END = dt.date(2024, 6, 16), dt.date(2025, 6, 15)


def at(day: str, hour: int = 15) -> dt.datetime:
    return dt.datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


class Builder:
    """Courses, sessions, injections and measurements written straight to the database.

    bulk_create skips Session.save(), and with it the session gate: these tests are about
    counting what was recorded, and the gate has its own tests (test_rules.py)."""

    def __init__(self, world: World):
        self.world = world
        self.n = 0

    def course(
        self,
        sessions: list[tuple[str, Any]],
        *,
        protocol: str = "cellulite",
        indication: str = "cellulite",
        status: str = "active",
        created: str | None = None,
        maintenance: tuple[str, ...] | list[str] = (),
        products: tuple[Any, ...] | None = None,
    ) -> tuple[Course, list[Session]]:
        self.n += 1
        w = self.world
        patient = Patient.objects.create(
            clinic=w.clinic,
            first_name=f"P{self.n}",
            last_name="Test",
            date_of_birth=dt.date(1990, 1, 1),
        )
        first_day = sessions[0][0] if sessions else (created or "2025-06-01")
        course = Course.objects.create(
            clinic=w.clinic,
            patient=patient,
            protocol=ClinicProtocol.current(w.clinic, protocol),
            indication=indication,
            areas=["thighs"],
            cadence_days=7,
            planned_sessions=15 if protocol == "cellulite" else 10,
            first_session_on=dt.date.fromisoformat(first_day),
            status=status,
            created_at=at(created or first_day, 9) - dt.timedelta(days=1),
        )
        rows = [
            Session(
                course=course,
                number=i + 1,
                performed_at=at(day),
                practitioner=who,
                stimulants_avoided=True,
            )
            for i, (day, who) in enumerate(sessions)
        ]
        rows += [
            Session(
                course=course,
                number=len(sessions) + i + 1,
                kind=Session.Kind.MAINTENANCE,
                performed_at=at(day),
                practitioner=w.practitioner,
                stimulants_avoided=True,
            )
            for i, day in enumerate(maintenance)
        ]
        made = Session.objects.bulk_create(rows)
        lots = [w.lot] if products is None else list(products)
        SessionInjection.objects.bulk_create(
            SessionInjection(session=s, area="thighs", lot=lot, volume_ml=Decimal("2"))
            for s in made
            if s.kind == Session.Kind.COURSE
            for lot in lots
        )
        return course, made

    def measure(
        self,
        course: Course,
        kind: str,
        value: str,
        *,
        taken: dt.datetime,
        session: Session | None = None,
        area: str = "",
        site: str = "",
    ) -> Measurement:
        return Measurement.objects.create(
            clinic=course.clinic,
            course=course,
            session=session,
            kind=kind,
            area=area,
            site=site,
            value=Decimal(value),
            taken_at=taken,
        )


def weekly(first: str, count: int, who: Any) -> list[tuple[str, Any]]:
    day = dt.date.fromisoformat(first)
    return [((day + dt.timedelta(days=7 * i)).isoformat(), who) for i in range(count)]


def build_hand_clinic(world: World) -> dict[str, Course]:
    """The clinic of the docstring's known answers (see HandClinicTests)."""
    b = Builder(world)
    p, q = world.practitioner, world.manager
    hexsel, circ, gais = analytics.HEXSEL, analytics.CIRCUMFERENCE, analytics.GAIS
    c: dict[str, Course] = {}

    # C1: ten sessions, Hexsel 10 -> 8 at session 5 -> 6 at session 10. Completed.
    c["c1"], s = b.course(
        weekly("2025-01-06", 10, p),
        status="completed",
        products=(world.lot, world.lidocaine_lot),
    )
    b.measure(c["c1"], hexsel, "10", taken=at("2025-01-05"), area="thighs")
    b.measure(c["c1"], hexsel, "8", taken=s[4].performed_at, session=s[4], area="thighs")
    b.measure(c["c1"], hexsel, "6", taken=s[9].performed_at, session=s[9], area="thighs")
    # C2: five sessions, Hexsel 9 -> 9. Still active, last session 3 Mar: lapsed.
    c["c2"], s = b.course(weekly("2025-02-03", 5, p))
    b.measure(c["c2"], hexsel, "9", taken=at("2025-02-02"), area="thighs")
    b.measure(c["c2"], hexsel, "9", taken=s[4].performed_at, session=s[4], area="thighs")
    # C3: three sessions by Q, Hexsel 12 -> 11, the baseline taken at session 1 itself.
    c["c3"], s = b.course(weekly("2025-05-19", 3, q))
    b.measure(c["c3"], hexsel, "12", taken=s[0].performed_at, session=s[0], area="thighs")
    b.measure(c["c3"], hexsel, "11", taken=s[2].performed_at, session=s[2], area="thighs")
    # C4: stopped after two sessions, nothing measured.
    c["c4"], s = b.course(weekly("2025-03-03", 2, p), status="stopped")
    # C5: five sessions, no Hexsel, GAIS 2 ("much improved") at session 5.
    c["c5"], s = b.course(weekly("2025-05-05", 5, p))
    b.measure(c["c5"], gais, "2", taken=s[4].performed_at, session=s[4])
    # C6: six sessions, three by Q then three by P (a tie: Q gave the earlier one). Thighs
    # 7 -> 6, buttocks 5 -> 7: a mean change of +0.5, not improved. Completed.
    c["c6"], s = b.course(
        weekly("2025-01-13", 3, q) + weekly("2025-02-03", 3, p), status="completed"
    )
    b.measure(c["c6"], hexsel, "7", taken=at("2025-01-12"), area="thighs")
    b.measure(c["c6"], hexsel, "5", taken=at("2025-01-12"), area="buttocks")
    b.measure(c["c6"], hexsel, "6", taken=s[5].performed_at, session=s[5], area="thighs")
    b.measure(c["c6"], hexsel, "7", taken=s[5].performed_at, session=s[5], area="buttocks")
    # C7: localized fat, waist 90.0 -> 88.5 and hip 100.0 -> 99.4: a mean of -1.05 cm.
    c["c7"], s = b.course(
        weekly("2025-05-12", 4, p), protocol="localized_fat", indication="localized_fat"
    )
    b.measure(c["c7"], circ, "90.0", taken=at("2025-05-11"), site="waist")
    b.measure(c["c7"], circ, "100.0", taken=at("2025-05-11"), site="hip")
    b.measure(c["c7"], circ, "88.5", taken=s[3].performed_at, session=s[3], site="waist")
    b.measure(c["c7"], circ, "99.4", taken=s[3].performed_at, session=s[3], site="hip")
    # C8: planned on 1 Jun 2025, not started.
    c["c8"], _ = b.course([], status="planned", created="2025-06-02")
    # C9-C11: started in January 2024 (before the range), completed; their maintenance windows
    # (6-8 months after the last session, seed 002) open inside the range.
    c["c9"], _ = b.course(
        [("2024-01-10", p), ("2024-10-01", p)], status="completed", maintenance=["2025-05-10"]
    )
    c["c10"], _ = b.course([("2024-01-10", p), ("2024-11-15", p)], status="completed")
    c["c11"], _ = b.course(
        [("2024-01-10", p), ("2024-08-01", p)], status="completed", maintenance=["2025-04-20"]
    )
    return c


def by_key(groups: list[analytics.Group]) -> dict[str, analytics.Group]:
    return {g.key: g for g in groups}


class HandClinicTests:
    @pytest.fixture
    def result(self, world: World, other: World) -> analytics.Analytics:
        build_hand_clinic(world)
        # The other clinic has the same courses; none of them may be counted.
        build_hand_clinic(other)
        return analytics.clinic_analytics(world.clinic, START, END, NOW)

    def test_it_counts_the_courses_that_started_in_the_range(self, result: Any) -> None:
        # C1-C8; C9-C11 started in January 2024.
        assert result.courses == 8

    def test_it_gives_the_outcome_by_protocol(self, world: World, result: Any) -> None:
        groups = by_key(result.by_protocol)
        cellulite = groups["cellulite"]
        # C1-C6 started; C4 has nothing to judge; C1, C3 (Hexsel) and C5 (GAIS) improved.
        assert (cellulite.courses, cellulite.assessed, cellulite.improved) == (6, 5, 3)
        assert cellulite.enough and cellulite.improved_share == pytest.approx(3 / 5)
        # Hexsel changes: C1 -4, C2 0, C3 -1, C6 +0.5; four courses, too few to compare.
        assert cellulite.hexsel_courses == 4
        assert cellulite.hexsel_mean_change == pytest.approx((-4 + 0 - 1 + 0.5) / 4)
        assert not cellulite.hexsel_enough
        fat = groups["localized_fat"]
        # C7: a mean circumference change of -1.05 cm counts as improved.
        assert (fat.courses, fat.assessed, fat.improved, fat.enough) == (1, 1, 1, False)
        assert cellulite.label == ClinicProtocol.current(world.clinic, "cellulite").name  # type: ignore[union-attr]

    def test_it_gives_the_outcome_by_practitioner(self, world: World, result: Any) -> None:
        groups = by_key(result.by_practitioner)
        p, q = groups[str(world.practitioner.pk)], groups[str(world.manager.pk)]
        # P leads C1, C2, C4, C5, C7; Q leads C3 and, on the tie, C6.
        assert (p.courses, p.assessed, p.improved) == (5, 4, 3)
        assert (q.courses, q.assessed, q.improved) == (2, 2, 1)
        assert p.label == world.practitioner.display_name

    def test_it_gives_the_outcome_by_product_with_overlapping_groups(
        self, world: World, result: Any
    ) -> None:
        groups = by_key(result.by_product)
        lipo, lido = groups[str(world.product.pk)], groups[str(world.lidocaine_product.pk)]
        assert (lipo.courses, lipo.assessed, lipo.improved) == (7, 6, 4)
        assert (lido.courses, lido.assessed, lido.improved) == (1, 1, 1)
        assert lipo.label == world.product.name
        assert set(groups) == {str(world.product.pk), str(world.lidocaine_product.pk)}

    def test_it_gives_the_share_improved_at_sessions_5_and_10(self, result: Any) -> None:
        at5, at10 = result.milestones
        # Session 5 reached by C1, C2, C5, C6: C1 (8 < 10) and C5 (GAIS 2) improved.
        assert (at5.session, at5.reached, at5.assessed, at5.improved) == (5, 4, 4, 2)
        # Session 10 reached by C1 only: 6 < 10.
        assert (at10.session, at10.reached, at10.assessed, at10.improved) == (10, 1, 1, 1)

    def test_it_gives_completion_and_drop_out(self, result: Any) -> None:
        done = result.completion
        assert (done.completed, done.in_progress, done.lapsed, done.stopped) == (2, 3, 1, 1)
        assert done.not_started == 1 and done.started == 7
        assert done.completion_rate == pytest.approx(2 / 7)
        assert done.dropout_rate == pytest.approx(2 / 7)

    def test_it_gives_maintenance_adherence(self, result: Any) -> None:
        care = result.maintenance
        # C9 inside its window, C10's window still open, C11 came after its window closed.
        assert (care.in_window, care.waiting, care.missed) == (1, 1, 1)
        assert care.adherence == pytest.approx(1 / 3)

    def test_a_narrower_range_leaves_out_what_started_outside_it(self, world: World) -> None:
        build_hand_clinic(world)
        found = analytics.clinic_analytics(
            world.clinic, dt.date(2025, 5, 1), dt.date(2025, 5, 31), NOW
        )
        # C3, C5 and C7 started in May. Only C10's maintenance window opened in May (15 May);
        # C9's opened on 1 Apr and C11's on 1 Feb.
        assert found.courses == 3
        care = found.maintenance
        assert (care.in_window, care.waiting, care.missed) == (0, 1, 0)
        assert {g.key for g in found.by_protocol} == {"cellulite", "localized_fat"}


class LapseTests:
    def test_a_course_lapses_only_after_three_cadences_without_a_session(
        self, world: World
    ) -> None:
        b = Builder(world)
        b.course([("2025-05-25", world.practitioner)])  # 21 days 1 hour before NOW
        b.course([("2025-05-26", world.practitioner)])  # 20 days 1 hour before NOW
        found = analytics.clinic_analytics(world.clinic, START, END, NOW)
        assert (found.completion.lapsed, found.completion.in_progress) == (1, 1)


class EmptyClinicTests:
    def test_an_empty_clinic_has_no_data_and_no_error(self, world: World) -> None:
        found = analytics.clinic_analytics(world.clinic, START, END, NOW)
        assert not found.has_data
        assert found.courses == 0
        assert found.by_protocol == [] and found.by_product == [] and found.by_practitioner == []
        assert [m.reached for m in found.milestones] == [0, 0]
        assert found.completion.completion_rate is None
        assert found.maintenance.adherence is None


class RangeTests:
    def test_the_default_range_is_the_last_twelve_months(self) -> None:
        assert analytics.default_range(dt.date(2025, 6, 15)) == (
            dt.date(2024, 6, 16),
            dt.date(2025, 6, 15),
        )

    def test_it_refuses_a_range_back_to_front_or_too_long_or_implausible(self) -> None:
        assert "from" in analytics.check_range(dt.date(2025, 2, 1), dt.date(2025, 1, 1))
        assert "to" in analytics.check_range(dt.date(2000, 1, 1), dt.date(2011, 1, 1))
        assert "from" in analytics.check_range(dt.date(1, 1, 1), dt.date(2011, 1, 1))
        assert analytics.check_range(dt.date(2025, 1, 1), dt.date(2025, 1, 1)) == {}


# The property test: DuckDB against a plain-Python recomputation of every definition.


def reference(data: Extract, start: dt.date, end: dt.date, as_of: dt.datetime) -> dict[str, Any]:
    """Every figure of outcomes.analytics, computed with loops and dictionaries."""
    tz = zoneinfo.ZoneInfo(data.tz)

    def rows(table: str) -> list[dict[str, Any]]:
        cols = {k: v.tolist() for k, v in data.tables[table].items()}
        return [dict(zip(cols, values, strict=True)) for values in zip(*cols.values(), strict=True)]

    def local_day(moment: dt.datetime) -> dt.date:
        return moment.replace(tzinfo=UTC).astimezone(tz).date()

    protocols = {p["id"]: p for p in rows("protocols")}
    sessions = rows("sessions")
    session_by_id = {s["id"]: s for s in sessions}
    course_sessions: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for s in sessions:
        if s["kind"] == "course":
            course_sessions[s["course_id"]].append(s)
    included = {}
    everything = {}
    for c in rows("courses"):
        mine = course_sessions.get(c["id"], [])
        c["first_at"] = min((s["performed_at"] for s in mine), default=None)
        c["last_at"] = max((s["performed_at"] for s in mine), default=None)
        c["protocol"] = protocols[c["protocol_id"]]
        everything[c["id"]] = c
        if start <= local_day(c["first_at"] or c["created_at"]) <= end:
            included[c["id"]] = c
    by_number = {
        (s["course_id"], s["number"]): s for cid in course_sessions for s in course_sessions[cid]
    }

    baseline: dict[tuple[int, str, str], tuple[Any, int]] = {}
    follow_ups: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for m in rows("measurements"):
        c = included.get(m["course_id"])
        if c is None:
            continue
        linked = session_by_id.get(m["session_id"])
        at_number = linked["number"] if linked and linked["kind"] == "course" else None
        if c["first_at"] is None or m["taken_at"] < c["first_at"] or at_number == 1:
            if m["kind"] in ("hexsel_css", "circumference"):
                key = (m["course_id"], m["kind"], m["part"])
                order = (m["taken_at"], m["id"])
                if key not in baseline or order > baseline[key][0]:
                    baseline[key] = (order, m["v10"])
        else:
            follow_ups[m["course_id"]].append(m | {"at_number": at_number})

    def score(c: dict[str, Any], chosen: dict[tuple[str, str], int]) -> tuple[Any, Any]:
        changes: dict[str, list[int]] = defaultdict(list)
        for (kind, part), v10 in chosen.items():
            if kind == "gais":
                continue
            base = baseline.get((c["id"], kind, part))
            if base is not None:
                changes[kind].append(v10 - base[1])
        hexsel = changes.get("hexsel_css")
        circ = changes.get("circumference")
        if hexsel:
            return sum(hexsel) / len(hexsel) / 10, sum(hexsel) < 0
        if circ and c["indication"] in ("localized_fat", "weight_loss"):
            return None, sum(circ) <= -10 * len(circ)
        if ("gais", "") in chosen:
            return None, chosen[("gais", "")] <= 30
        return None, None

    def pick(measures: list[dict[str, Any]], latest: bool) -> dict[tuple[str, str], int]:
        chosen: dict[tuple[str, str], tuple[Any, int]] = {}
        for m in measures:
            key, order = (m["kind"], m["part"]), (m["taken_at"], m["id"])
            if key not in chosen or (order > chosen[key][0] if latest else order < chosen[key][0]):
                chosen[key] = (order, m["v10"])
        return {k: v for k, (_, v) in chosen.items()}

    started = {cid: c for cid, c in included.items() if c["first_at"] is not None}
    latest = {cid: score(c, pick(follow_ups[cid], True)) for cid, c in started.items()}

    def group(keys: dict[int, list[str]]) -> dict[str, tuple[int, int, float | None, int, int]]:
        acc: dict[str, list[Any]] = defaultdict(lambda: [0, [], 0, 0])
        for cid, ks in keys.items():
            change, improved = latest[cid]
            for k in ks:
                a = acc[k]
                a[0] += 1
                if change is not None:
                    a[1].append(change)
                if improved is not None:
                    a[2] += 1
                    a[3] += bool(improved)
        return {
            k: (a[0], len(a[1]), sum(a[1]) / len(a[1]) if a[1] else None, a[2], a[3])
            for k, a in acc.items()
        }

    products: dict[int, set[str]] = defaultdict(set)
    for r in rows("course_products"):
        products[r["course_id"]].add(str(r["product_id"]))
    leads = {}
    for cid, mine in course_sessions.items():
        tally: dict[int, list[int]] = {}
        for s in mine:
            t = tally.setdefault(s["practitioner_id"], [0, s["number"]])
            t[0] += 1
            t[1] = min(t[1], s["number"])
        leads[cid] = min(tally, key=lambda who: (-tally[who][0], tally[who][1], who))

    milestones = []
    for k in analytics.MILESTONES:
        reached = assessed = improved = 0
        for cid, c in started.items():
            session_k = by_number.get((cid, k))
            if session_k is None:
                continue
            reached += 1
            after = [
                m
                for m in follow_ups[cid]
                if (m["at_number"] is not None and m["at_number"] >= k)
                or m["taken_at"] >= session_k["performed_at"]
            ]
            _, ok = score(c, pick(after, False))
            if ok is not None:
                assessed += 1
                improved += bool(ok)
        milestones.append((k, reached, assessed, improved))

    states: Counter[str] = Counter()
    as_of_naive = as_of.astimezone(UTC).replace(tzinfo=None)
    for c in included.values():
        if c["first_at"] is None:
            states["not_started"] += 1
        elif c["status"] in ("completed", "maintenance"):
            states["completed"] += 1
        elif c["status"] == "stopped":
            states["stopped"] += 1
        elif as_of_naive - c["last_at"] > dt.timedelta(days=3 * c["cadence_days"]):
            states["lapsed"] += 1
        else:
            states["in_progress"] += 1

    today = as_of.astimezone(tz).date()
    windows: Counter[str] = Counter()
    visits_of: dict[int, list[dt.date]] = defaultdict(list)
    for s in sessions:
        if s["kind"] == "maintenance":
            visits_of[s["course_id"]].append(local_day(s["performed_at"]))
    for c in everything.values():
        if c["status"] not in ("completed", "maintenance") or c["last_at"] is None:
            continue
        last_on = local_day(c["last_at"])
        opens = add_months(last_on, c["protocol"]["maint_min"])
        closes = add_months(last_on, c["protocol"]["maint_max"])
        if not start <= opens <= min(end, today):
            continue
        if any(opens <= v <= closes for v in visits_of[c["id"]]):
            windows["in_window"] += 1
        elif closes >= today:
            windows["waiting"] += 1
        else:
            windows["missed"] += 1

    return {
        "courses": len(included),
        "by_protocol": group({cid: [c["protocol"]["key"]] for cid, c in started.items()}),
        "by_product": group({cid: sorted(products.get(cid, ())) for cid in started}),
        "by_practitioner": group({cid: [str(leads[cid])] for cid in started}),
        "milestones": milestones,
        "completion": dict(states),
        "maintenance": dict(windows),
    }


def random_clinic(rng: random.Random) -> Extract:
    tz = rng.choice(["UTC", "Europe/Paris", "America/New_York", "Pacific/Auckland"])
    epoch = dt.datetime(2023, 1, 1)

    def moment(days: float) -> dt.datetime:
        return epoch + dt.timedelta(seconds=int(days * 86400))

    protocols = [(1, "cellulite", 6, 8), (2, "localized_fat", 3, 5), (3, "cellulite", 6, 6)]
    courses, sessions, products, measurements = [], [], [], []
    session_id = measurement_id = 0
    for course_id in range(1, rng.randint(0, 45) + 1):
        begin = rng.uniform(0, 900)
        cadence = rng.choice([7, 14])
        indication = rng.choice(["cellulite", "localized_fat", "weight_loss", "wrinkles"])
        status = rng.choice(["planned", "active", "active", "completed", "stopped", "maintenance"])
        courses.append((course_id, rng.randint(1, 3), indication, status, cadence, moment(begin)))
        count = rng.choice([0, 1, 3, 5, 6, 10, 12])
        mine = []
        for n in range(1, count + 1):
            session_id += 1
            at_ = moment(begin + 1 + (n - 1) * cadence + rng.uniform(-2, 2))
            mine.append((session_id, course_id, n, "course", at_, rng.randint(1, 4)))
        for n in range(count + 1, count + 1 + rng.choice([0, 0, 1, 2])):
            session_id += 1
            at_ = moment(begin + count * cadence + rng.uniform(60, 320))
            mine.append((session_id, course_id, n, "maintenance", at_, rng.randint(1, 4)))
        sessions += mine
        if count:
            for product in rng.sample([11, 12, 13], rng.randint(1, 3)):
                products.append((course_id, product))
        for _ in range(rng.randint(0, 12)):
            measurement_id += 1
            kind = rng.choice(["hexsel_css", "hexsel_css", "circumference", "gais"])
            part = {
                "hexsel_css": rng.choice(["thighs", "buttocks"]),
                "circumference": rng.choice(["waist", "hip"]),
                "gais": "",
            }[kind]
            v10 = {
                "hexsel_css": rng.randint(0, 15) * 10,
                "circumference": rng.randint(700, 1100),
                "gais": rng.randint(1, 5) * 10,
            }[kind]
            linked = rng.choice(mine) if mine and rng.random() < 0.5 else None
            if linked is not None:
                taken = linked[4] + dt.timedelta(minutes=rng.randint(-30, 30))
            else:
                taken = moment(begin + rng.uniform(-3, count * cadence + 30))
            measurements.append(
                (measurement_id, course_id, linked[0] if linked else -1, kind, part, v10, taken)
            )
    return Extract(
        tz=tz,
        tables={
            "protocols": columns("protocols", protocols),
            "courses": columns("courses", courses),
            "sessions": columns("sessions", sessions),
            "course_products": columns("course_products", products),
            "measurements": columns("measurements", measurements),
        },
        protocol_names={"cellulite": "Cellulite", "localized_fat": "Localized fat"},
    )


def as_reference(found: analytics.Analytics) -> dict[str, Any]:
    def groups(gs: list[analytics.Group]) -> dict[str, Any]:
        return {
            g.key: (g.courses, g.hexsel_courses, g.hexsel_mean_change, g.assessed, g.improved)
            for g in gs
        }

    done, care = found.completion, found.maintenance
    return {
        "courses": found.courses,
        "by_protocol": groups(found.by_protocol),
        "by_product": groups(found.by_product),
        "by_practitioner": groups(found.by_practitioner),
        "milestones": [(m.session, m.reached, m.assessed, m.improved) for m in found.milestones],
        "completion": {
            k: v
            for k, v in (
                ("not_started", done.not_started),
                ("completed", done.completed),
                ("in_progress", done.in_progress),
                ("lapsed", done.lapsed),
                ("stopped", done.stopped),
            )
            if v
        },
        "maintenance": {
            k: v
            for k, v in (
                ("in_window", care.in_window),
                ("waiting", care.waiting),
                ("missed", care.missed),
            )
            if v
        },
    }


class PropertyTests:
    @pytest.mark.parametrize("seed", range(40))
    def test_duckdb_agrees_with_a_plain_python_recomputation(self, seed: int) -> None:
        rng = random.Random(seed)
        data = random_clinic(rng)
        start = dt.date(2023, 1, 1) + dt.timedelta(days=rng.randint(0, 500))
        end = start + dt.timedelta(days=rng.randint(0, 700))
        as_of = dt.datetime(2025, 9, 1, tzinfo=UTC) + dt.timedelta(hours=rng.randint(0, 5000))
        got = as_reference(compute(data, start, end, as_of))
        expected = reference(data, start, end, as_of)
        for name in ("by_protocol", "by_product", "by_practitioner"):
            assert got[name].keys() == expected[name].keys(), name
            for key, row in expected[name].items():
                assert got[name][key] == pytest.approx(row), (name, key)
        for name in ("courses", "milestones", "completion", "maintenance"):
            assert got[name] == expected[name], name

    def test_the_random_clinics_exercise_every_branch(self) -> None:
        # Guard against a generator too tame to test anything: across the seeds, every kind of
        # figure must come out non-zero somewhere.
        totals: Counter[str] = Counter()
        for seed in range(40):
            rng = random.Random(seed)
            data = random_clinic(rng)
            found = reference(data, dt.date(2023, 1, 1), dt.date(2025, 12, 31), NOW)
            totals.update(found["completion"])
            totals.update(found["maintenance"])
            totals["improved_at_5"] += found["milestones"][0][3]
            totals["improved_at_10"] += found["milestones"][1][3]
        for name in ("completed", "lapsed", "in_progress", "stopped", "not_started"):
            assert totals[name] > 0, name
        for name in ("in_window", "waiting", "missed", "improved_at_5", "improved_at_10"):
            assert totals[name] > 0, name
