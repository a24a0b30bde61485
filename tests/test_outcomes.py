"""Measurements: what is refused and why, the baseline gate before session 1, and a course's
progress (the series, the expected trajectory with its source, the SVG and the drawing)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import xml.etree.ElementTree as ET
import zoneinfo
from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent
from mesoclinic.courses import rules
from mesoclinic.courses.actions import check_session
from mesoclinic.courses.models import Course, Session, SessionRefused
from mesoclinic.outcomes import logic, progress, scales
from mesoclinic.outcomes.actions import do_record_measurement, do_record_measurements
from mesoclinic.outcomes.logic import Raw
from mesoclinic.outcomes.models import Measurement
from mesoclinic.patients.models import Patient
from mesoclinic.protocols.schema import Protocol
from mesoclinic.protocols.vocab import NEVER_OVERRIDABLE
from tests.conftest import World, ago
from tests.test_courses import chart
from tests.test_rules import facts
from tests.test_web import course_with_sessions

SVG = "{http://www.w3.org/2000/svg}"
ITEMS = {"number": 3, "depth": 2, "morphology": 2, "laxity": 1, "nurnberger_muller": 2}


def fresh_course(world: World, patient: Patient, sessions: int = 0) -> Course:
    """A cellulite course (thighs) ready for session 1, planned four days ago, with no
    measurement: the fixtures' own baseline is removed."""
    course: Course = course_with_sessions(world, patient, 0, ago(days=3))
    Measurement.objects.filter(course=course).delete()
    Course.objects.filter(pk=course.pk).update(created_at=ago(days=4))
    course.refresh_from_db()
    return course


def hexsel(**items: Any) -> Raw:
    return Raw(scales.HEXSEL, items={**ITEMS, **items})


def record(course: Course, raw: Raw, world: World, at: dt.datetime | None = None) -> Measurement:
    return do_record_measurement(
        course, raw, taken_at=at or ago(days=2), user=world.practitioner, via="web"
    )


def problems(exc: pytest.ExceptionInfo[ValidationError]) -> dict[str, str]:
    return {k: " ".join(m for e in v for m in e.messages) for k, v in exc.value.error_dict.items()}


class MeasurementTests:
    def test_a_hexsel_score_keeps_its_five_items_and_their_total_and_is_audited(
        self, world: World, patient: Patient
    ) -> None:
        course = fresh_course(world, patient)
        m = record(course, hexsel(), world)
        assert (m.kind, m.value, m.items, m.area) == ("hexsel_css", Decimal(10), ITEMS, "thighs")
        assert scales.hexsel_band(int(m.value)) == "moderate"
        event = AuditEvent.objects.get(object_type="outcomes.Measurement")
        assert (event.action, event.patient_id, event.object_id) == (
            "create",
            patient.pk,
            str(m.pk),
        )
        assert event.detail["kind"] == "hexsel_css" and event.detail["value"] == "10"

    def test_a_waist_carries_its_loinc_code_and_a_thigh_none(
        self, world: World, patient: Patient
    ) -> None:
        course = fresh_course(world, patient)
        waist = record(course, Raw(scales.CIRCUMFERENCE, "82.5", site="waist"), world)
        thigh = record(course, Raw(scales.CIRCUMFERENCE, 56, site="thigh_left"), world)
        assert (waist.value, waist.unit, waist.loinc) == (Decimal("82.5"), "cm", "8280-0")
        assert (thigh.loinc, thigh.site) == ("", "thigh_left")

    @pytest.mark.parametrize(
        ("value", "reason"),
        [
            (4, "must be from 0 to 3, not 4"),
            (-1, "must be from 0 to 3, not -1"),
            ("2.5", "must be a whole number"),
            ("two", "must be a number"),
            (None, "is required"),
        ],
    )
    def test_a_hexsel_item_out_of_range_or_not_a_whole_number_is_refused_by_name(
        self, world: World, patient: Patient, value: Any, reason: str
    ) -> None:
        course = fresh_course(world, patient)
        with pytest.raises(ValidationError) as exc:
            record(course, hexsel(depth=value), world)
        assert list(problems(exc)) == ["items.depth"]
        assert reason in problems(exc)["items.depth"]
        assert not Measurement.objects.exists()

    @pytest.mark.parametrize(
        ("kind", "value", "reason"),
        [
            (scales.NURNBERGER_MULLER, 4, "from 0 to 3"),
            (scales.SATISFACTION, 11, "from 0 to 10"),
            (scales.SATISFACTION, "7.5", "whole number"),
            (scales.WEIGHT, 0, "more than 0 kg"),
            (scales.WEIGHT, -70, "more than 0 kg"),
            (scales.WEIGHT, 720, "not plausible"),
            (scales.WEIGHT, "70.25", "one decimal place"),
        ],
    )
    def test_a_bad_score_or_reading_is_refused_naming_value(
        self, world: World, patient: Patient, kind: str, value: Any, reason: str
    ) -> None:
        course = fresh_course(world, patient)
        with pytest.raises(ValidationError) as exc:
            record(course, Raw(kind, value), world)
        assert reason in problems(exc)["value"]

    def test_a_negative_zero_or_implausible_circumference_is_refused(
        self, world: World, patient: Patient
    ) -> None:
        course = fresh_course(world, patient)
        for value, reason in ((-3, "more than 0 cm"), (0, "more than 0 cm"), (820, "at most 300")):
            with pytest.raises(ValidationError) as exc:
                record(course, Raw(scales.CIRCUMFERENCE, value, site="waist"), world)
            assert reason in problems(exc)["value"]
        assert "the product's own" in problems(exc)["value"]

    def test_an_unknown_site_is_refused(self, world: World, patient: Patient) -> None:
        course = fresh_course(world, patient)
        with pytest.raises(ValidationError) as exc:
            record(course, Raw(scales.CIRCUMFERENCE, 60, site="neck"), world)
        assert "'neck' is not a known site" in problems(exc)["site"]

    def test_an_area_outside_the_course_is_refused(self, world: World, patient: Patient) -> None:
        course = fresh_course(world, patient)
        with pytest.raises(ValidationError) as exc:
            record(course, dataclasses.replace(hexsel(), area="face"), world)
        assert "not one of this course's areas" in problems(exc)["area"]

    def test_a_measurement_before_the_course_or_in_the_future_is_refused(
        self, world: World, patient: Patient
    ) -> None:
        course = fresh_course(world, patient)
        with pytest.raises(ValidationError) as exc:
            # Before the course's first day: its allergy test, six days ago.
            record(course, Raw(scales.WEIGHT, 70), world, at=ago(days=10))
        assert "is before the course" in problems(exc)["taken_at"]
        with pytest.raises(ValidationError) as exc:
            record(course, Raw(scales.WEIGHT, 70), world, at=timezone.now() + dt.timedelta(hours=1))
        assert problems(exc) == {"taken_at": "cannot be in the future."}

    def test_a_measurement_on_the_local_day_the_course_was_planned_is_accepted(
        self, world: World, patient: Patient
    ) -> None:
        course = fresh_course(world, patient)
        planned = course.created_at.astimezone(world.clinic.tz)
        morning = planned.replace(hour=0, minute=1)
        assert record(course, Raw(scales.WEIGHT, 70), world, at=morning).taken_at == morning

    def test_gais_is_refused_before_session_1_and_taken_at_a_review_after(
        self, world: World, patient: Patient
    ) -> None:
        course = fresh_course(world, patient)
        record(course, hexsel(), world)
        with pytest.raises(ValidationError) as exc:
            record(course, Raw(scales.GAIS, 2), world, at=ago(days=1))
        assert "after session 1" in problems(exc)["kind"]
        session = chart(world, course, ago(hours=5), lots=[world.lot])
        with pytest.raises(ValidationError) as exc:
            record(course, Raw(scales.GAIS, 6), world, at=ago(hours=1))
        assert "from 1 to 5" in problems(exc)["value"]
        gais = record(course, Raw(scales.GAIS, 2), world, at=ago(hours=1))
        assert gais.value == 2 and session.number == 1

    def test_a_visit_is_recorded_all_together_or_not_at_all(
        self, world: World, patient: Patient
    ) -> None:
        course = fresh_course(world, patient)
        visit = [
            ("hexsel.", hexsel()),
            ("nm.", Raw(scales.NURNBERGER_MULLER, 2)),
            ("waist.", Raw(scales.CIRCUMFERENCE, "81.0", site="waist")),
            ("weight.", Raw(scales.WEIGHT, "-70")),
        ]
        with pytest.raises(ValidationError) as exc:
            do_record_measurements(course, visit, taken_at=ago(days=2), user=world.practitioner)
        assert list(problems(exc)) == ["weight.value"]
        assert not Measurement.objects.exists()
        assert not AuditEvent.objects.filter(object_type="outcomes.Measurement").exists()
        visit[-1] = ("weight.", Raw(scales.WEIGHT, "70.4"))
        rows = do_record_measurements(course, visit, taken_at=ago(days=2), user=world.practitioner)
        assert [r.kind for r in rows] == [
            "hexsel_css",
            "nurnberger_muller",
            "circumference",
            "weight",
        ]
        assert AuditEvent.objects.filter(object_type="outcomes.Measurement").count() == 4

    def test_a_measurement_tied_to_a_session_takes_its_time_and_must_be_of_the_course(
        self, world: World, patient: Patient, other: World
    ) -> None:
        course = fresh_course(world, patient)
        record(course, hexsel(), world)
        session = chart(world, course, ago(hours=5), lots=[world.lot])
        m = do_record_measurement(
            course,
            Raw(scales.WEIGHT, 69),
            taken_at=ago(hours=1),
            session=session,
            user=world.practitioner,
        )
        assert (m.session, m.taken_at) == (session, session.performed_at)
        second = fresh_course(
            world,
            Patient.objects.create(
                clinic=world.clinic,
                first_name="Bo",
                last_name="Ng",
                date_of_birth=dt.date(1990, 1, 1),
            ),
        )
        with pytest.raises(ValidationError) as exc:
            do_record_measurement(
                second,
                Raw(scales.WEIGHT, 69),
                taken_at=ago(hours=1),
                session=session,
                user=world.practitioner,
            )
        assert problems(exc) == {"session": "is not a session of this course."}

    def test_the_database_refuses_an_out_of_range_score_behind_the_checks(
        self, world: World, patient: Patient
    ) -> None:
        from django.db import IntegrityError, transaction

        course = fresh_course(world, patient)
        with pytest.raises(IntegrityError), transaction.atomic():
            Measurement.objects.create(
                clinic=world.clinic,
                course=course,
                kind=scales.HEXSEL,
                value=16,
                taken_at=ago(days=1),
            )


class BaselineGateTests:
    def test_session_1_is_refused_without_a_baseline_and_no_override_lifts_it(
        self, world: World, patient: Patient
    ) -> None:
        course = fresh_course(world, patient)
        assert world.clinic.baseline_required is True  # the default
        with pytest.raises(SessionRefused) as exc:
            chart(world, course, ago(hours=1), lots=[world.lot])
        [refusal] = exc.value.refusals
        assert refusal.code == "no_baseline" and refusal.overridable is False
        assert "Session 1 needs a baseline first" in refusal.message
        assert "no_baseline" in NEVER_OVERRIDABLE
        assert not Session.objects.filter(course=course).exists()
        refused = AuditEvent.objects.get(action="refuse")
        assert refused.detail["reasons"][0]["code"] == "no_baseline"

    def test_a_protocol_cannot_make_the_baseline_overridable(self) -> None:
        from mesoclinic.protocols.loader import shipped_protocols

        spec = shipped_protocols()["cellulite"]
        data = spec.model_dump(mode="json")
        data["overridable"] = ["no_baseline"]
        with pytest.raises(ValueError, match="no_baseline can never be overridden"):
            Protocol.model_validate(data)

    def test_a_baseline_taken_after_the_session_time_does_not_count(
        self, world: World, patient: Patient
    ) -> None:
        course = fresh_course(world, patient)
        record(course, hexsel(), world, at=ago(hours=1))
        assert [r.code for r in check_session(course, ago(hours=2), world.practitioner, [])] == [
            "no_baseline"
        ]
        assert check_session(course, ago(minutes=30), world.practitioner, []) == []

    def test_any_measurement_is_a_baseline_and_session_1_goes_ahead(
        self, world: World, patient: Patient
    ) -> None:
        course = fresh_course(world, patient)
        record(course, Raw(scales.CIRCUMFERENCE, "57.5", site="thigh_left"), world)
        assert chart(world, course, ago(hours=1), lots=[world.lot]).number == 1

    def test_a_clinic_that_turns_it_off_charts_session_1_without_one(
        self, world: World, patient: Patient
    ) -> None:
        course = fresh_course(world, patient)
        world.clinic.baseline_required = False
        world.clinic.save()
        course.refresh_from_db()
        assert chart(world, course, ago(hours=1), lots=[world.lot]).number == 1

    def test_only_session_1_is_judged(self) -> None:
        # The rule itself, pure: a session with another before it is not session 1.
        later = facts(baseline_required=True, has_baseline=False)
        assert later.other_sessions_at and rules.refusals(later) == []
        first = facts(baseline_required=True, has_baseline=False, other_sessions_at=())
        assert [r.code for r in rules.refusals(first)] == ["no_baseline"]
        # A session charted after the fact, before the existing ones, is session 1 too.
        after = facts(
            baseline_required=True,
            has_baseline=False,
            other_sessions_at=(facts().performed_at + dt.timedelta(days=7),),
        )
        assert [r.code for r in rules.refusals(after)] == ["no_baseline"]
        off = facts(baseline_required=False, has_baseline=False, other_sessions_at=())
        assert rules.refusals(off) == []


# Progress: pure -------------------------------------------------------------------------------

UTC = zoneinfo.ZoneInfo("UTC")
DAY0 = dt.datetime(2026, 1, 5, 10, tzinfo=UTC)
SESSIONS = [DAY0 + dt.timedelta(days=1 + 7 * n) for n in range(10)]
HALF = logic.MilestoneFacts(
    label="About 50 % improvement",
    after_min=10,
    after_max=10,
    improvement_percent=50,
    sources=("Reducing Cellulite with Mesotherapy",),
)
FIRST = logic.MilestoneFacts("First visible results", 2, 3, None, ("004 “x”",))


def points() -> list[logic.Point]:
    return [
        logic.Point(scales.HEXSEL, Decimal(10), DAY0, area="thighs"),
        logic.Point(scales.HEXSEL, Decimal(8), SESSIONS[4] + dt.timedelta(hours=1), area="thighs"),
        logic.Point(scales.HEXSEL, Decimal(6), SESSIONS[9] + dt.timedelta(hours=1), area="thighs"),
        logic.Point(scales.CIRCUMFERENCE, Decimal("60.0"), DAY0, site="waist"),
        logic.Point(scales.CIRCUMFERENCE, Decimal("58.5"), SESSIONS[9], site="waist"),
        logic.Point(scales.SATISFACTION, Decimal(8), SESSIONS[9], site=""),
    ]


def cellulite_progress(milestones: list[logic.MilestoneFacts] | None = None) -> logic.Progress:
    return logic.progress(
        points(),
        SESSIONS,
        [FIRST, HALF] if milestones is None else milestones,
        sessions_planned=15,
        tz=UTC,
        area_labels={"thighs": "Thighs"},
    )


class ProgressTests:
    def test_each_point_is_placed_at_the_sessions_done_when_it_was_taken(self) -> None:
        found = cellulite_progress()
        css, waist = found.series
        assert (css.key, css.label, css.unit) == (
            "hexsel_css:thighs",
            "Hexsel CSS, Thighs",
            "points",
        )
        assert [(p.sessions, p.value) for p in css.points] == [(0, 10), (5, 8), (10, 6)]
        # A measurement at the very time of a session counts that session as done.
        assert [(p.sessions, p.value) for p in waist.points] == [
            (0, Decimal("60.0")),
            (10, Decimal("58.5")),
        ]
        assert (found.sessions_done, found.sessions_planned) == (10, 15)

    def test_the_change_from_baseline_is_given_in_points_and_per_cent(self) -> None:
        css, waist = cellulite_progress().series
        assert (css.change, css.change_percent) == (Decimal(-4), Decimal("-40.0"))
        assert logic.describe_change(css) == "From 10 to 6 points: −4 points (−40.0 %)"
        assert logic.describe_change(waist) == "From 60 to 58.5 cm: −1.5 cm (−2.5 %)"

    def test_the_trajectory_runs_from_the_baseline_to_half_after_ten_sessions_with_its_source(
        self,
    ) -> None:
        css, waist = cellulite_progress().series
        assert css.trajectory is not None
        assert css.trajectory.points == ((0, Decimal(10)), (10, Decimal("5.0")))
        assert css.trajectory.sources == ("Reducing Cellulite with Mesotherapy",)
        assert progress.trajectory_caption(css.trajectory) == (
            "Expected: About 50 % improvement, after 10 sessions. Source: Reducing "
            "Cellulite with Mesotherapy (a single source)."
        )
        # The seeds' figure is about cellulite: no circumference is expected to halve.
        assert waist.trajectory is None

    def test_a_protocol_without_a_trajectory_says_so(self) -> None:
        found = cellulite_progress([FIRST])
        assert (
            found.no_trajectory == "This protocol gives no expected trajectory, so none is drawn."
        )
        assert all(s.trajectory is None for s in found.series)

    def test_the_cellulite_protocol_carries_the_seed_002_milestone(
        self, world: World, patient: Patient
    ) -> None:
        course = fresh_course(world, patient)
        half = [m for m in progress.milestones_of(course) if m.improvement_percent]
        assert half == [
            logic.MilestoneFacts(
                "About 50 % improvement",
                10,
                10,
                50.0,
                ("Reducing Cellulite with Mesotherapy",),
            )
        ]

    def test_no_measurement_no_series(self) -> None:
        found = logic.progress([], SESSIONS, [HALF], sessions_planned=15, tz=UTC)
        assert found.series == () and found.as_dict()["series"] == []


class SvgTests:
    def parse(self) -> tuple[ET.Element, ET.Element]:
        found = cellulite_progress()
        css, waist = found.series
        return (
            ET.fromstring(progress.svg(css, found, "t1")),
            ET.fromstring(progress.svg(waist, found, "t2")),
        )

    def test_it_has_a_title_and_a_description_in_words(self) -> None:
        css, _ = self.parse()
        assert css.get("role") == "img" and css.get("aria-labelledby") == "t1-title t1-desc"
        assert css.findtext(f"{SVG}title") == "Hexsel CSS, Thighs (points) by sessions done"
        desc = css.findtext(f"{SVG}desc") or ""
        assert "after 0 sessions, 10 points" in desc and "after 10 sessions, 6 points" in desc
        assert "−4 points (−40.0 %)" in desc and "5 points after 10 sessions" in desc

    def test_each_measurement_is_a_point_and_the_measured_line_joins_them(self) -> None:
        css, _ = self.parse()
        dots = css.findall(f"{SVG}circle")
        assert [(d.get("data-sessions"), d.get("data-value")) for d in dots] == [
            ("0", "10"),
            ("5", "8"),
            ("10", "6"),
        ]
        line = css.find(f"{SVG}polyline[@class='measured']")
        assert line is not None
        xs = [float(p.split(",")[0]) for p in (line.get("points") or "").split()]
        ys = [float(p.split(",")[1]) for p in (line.get("points") or "").split()]
        assert xs == sorted(xs) and ys == sorted(ys)  # later and lower (y grows downwards)
        assert (dots[0].findtext(f"{SVG}title") or "").startswith("10 points on 05 Jan 2026")

    def test_the_expected_trajectory_is_dashed_from_the_baseline_and_labelled_with_its_source(
        self,
    ) -> None:
        css, waist = self.parse()
        expected = css.find(f"{SVG}polyline[@class='expected']")
        assert expected is not None and expected.get("stroke-dasharray")
        start, end = (expected.get("points") or "").split()
        first = css.findall(f"{SVG}circle")[0]
        assert start == f"{first.get('cx')},{first.get('cy')}"  # from the baseline point
        found = css.find(f"{SVG}text[@class='expected-label']")
        assert found is not None
        label = "".join(found.itertext())
        assert found.text == "Expected: About 50 % improvement, after 10 sessions."
        assert "Reducing Cellulite with Mesotherapy" in label and "a single source" in label
        assert waist.find(f"{SVG}polyline[@class='expected']") is None
        assert "Hexsel score only" in (waist.findtext(f"{SVG}text[@class='no-trajectory']") or "")

    def test_text_from_records_is_escaped(self) -> None:
        found = logic.progress(
            [logic.Point(scales.HEXSEL, Decimal(5), DAY0, area="<script>")],
            [],
            [],
            sessions_planned=10,
            tz=UTC,
        )
        text = progress.svg(found.series[0], found, "x")
        assert "<script>" not in text and "&lt;script&gt;" in text
        ET.fromstring(text)

    def test_the_pdf_drawing_has_the_same_points(self) -> None:
        from reportlab.graphics.shapes import Circle

        found = cellulite_progress()
        d = progress.drawing(found.series[0], found)
        group = d.contents[0]
        assert len([s for s in group.contents if isinstance(s, Circle)]) == 3
        assert d.width == pytest.approx(progress.WIDTH * 0.85)
