"""Pure course calculations (courses/logic.py): the plan, session windows across daylight
saving, aftercare clock times and the status of a side effect. No database is used; the
protocols are the files that ship with mesoclinic."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

import pytest

from mesoclinic.courses import logic
from mesoclinic.protocols.loader import shipped_protocols, validate_protocol
from mesoclinic.protocols.schema import Protocol

UTC = dt.UTC
PARIS = zoneinfo.ZoneInfo("Europe/Paris")
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")

S002 = "002_fa4d881737f3a5fe.txt"
S004 = "004_775ed0aecb2fac00.txt"

PROTOCOLS = shipped_protocols()
CELLULITE = PROTOCOLS["cellulite"]
FACIAL = PROTOCOLS["facial_rejuvenation"]
HAIR = PROTOCOLS["hair_loss"]


def cellulite_plan(**kwargs: Any) -> dict[str, Any]:
    args: dict[str, Any] = dict(
        planned_sessions=15,
        cadence_days=7,
        first_session_on=dt.date(2026, 1, 5),
        currency="USD",
    )
    args.update(kwargs)
    return logic.plan(CELLULITE, **args)


def edited(protocol: Protocol, change: Any) -> Protocol:
    document = protocol.model_dump(mode="json", exclude_none=True)
    change(document)
    return validate_protocol(document, "edited")


class PlanTests:
    def test_session_n_is_due_n_minus_one_cadences_after_the_first(self) -> None:
        sessions = cellulite_plan()["sessions"]
        assert [s["number"] for s in sessions] == list(range(1, 16))
        for s in sessions:
            due = dt.date(2026, 1, 5) + dt.timedelta(days=7 * (s["number"] - 1))
            assert s["due"] == due.isoformat()

    def test_every_later_session_may_fall_within_the_tolerance_either_side(self) -> None:
        plan = cellulite_plan()
        assert plan["tolerance_days"] == CELLULITE.cadence.tolerance_days.v == 2
        second = plan["sessions"][1]
        assert second == {
            "number": 2,
            "earliest": "2026-01-10",
            "due": "2026-01-12",
            "latest": "2026-01-14",
        }
        assert plan["sessions"][-1] == {
            "number": 15,
            "earliest": "2026-04-11",
            "due": "2026-04-13",
            "latest": "2026-04-15",
        }

    def test_the_first_session_is_never_planned_before_its_date(self) -> None:
        # Session 1 follows the allergy test, so it may be late but not early.
        first = cellulite_plan()["sessions"][0]
        assert first == {
            "number": 1,
            "earliest": "2026-01-05",
            "due": "2026-01-05",
            "latest": "2026-01-07",
        }

    def test_a_fortnightly_course_is_due_every_14_days(self) -> None:
        plan = cellulite_plan(cadence_days=14, planned_sessions=16)
        assert plan["cadence_days"] == 14
        assert [s["due"] for s in plan["sessions"][:3]] == [
            "2026-01-05",
            "2026-01-19",
            "2026-02-02",
        ]
        assert len(plan["sessions"]) == 16

    def test_cost_is_the_per_session_range_times_the_number_of_sessions(self) -> None:
        cost = cellulite_plan(planned_sessions=18)["cost"]
        assert cost["per_session_min"] == 500 and cost["per_session_max"] == 800
        assert cost["sessions"] == 18
        assert cost["total_min"] == 500 * 18
        assert cost["total_max"] == 800 * 18
        assert cost["currency"] == "USD"
        assert cost["sources"] == [{"source": S002, "label": "Reducing Cellulite with Mesotherapy"}]
        assert "note" not in cost

    def test_cost_notes_when_the_clinic_works_in_another_currency(self) -> None:
        cost = cellulite_plan(currency="EUR")["cost"]
        assert cost["currency"] == "USD"
        assert "USD" in cost["note"] and "EUR" in cost["note"]

    def test_cost_carries_the_liposuction_comparison_with_its_source(self) -> None:
        comparison = cellulite_plan()["cost"]["comparison"]
        assert comparison["amount"] == 10000
        assert comparison["currency"] == "USD"
        assert [s["source"] for s in comparison["sources"]] == [S002]

    def test_a_protocol_without_a_comparison_has_none_in_the_cost(self) -> None:
        assert FACIAL.comparison is None
        plan = logic.plan(
            FACIAL,
            planned_sessions=10,
            cadence_days=7,
            first_session_on=dt.date(2026, 1, 5),
            currency="USD",
        )
        assert "comparison" not in plan["cost"]

    def test_milestones_sit_at_their_session_with_their_sources(self) -> None:
        milestones = {m["key"]: m for m in cellulite_plan()["milestones"]}
        first = milestones["first_visible"]
        assert first["after_sessions"] == {"min": 2, "max": 3}
        assert first["expected_by"] == "2026-01-19"  # session 3
        assert [s["source"] for s in first["sources"]] == [S004]
        half = milestones["about_half"]
        assert half["after_sessions"] == {"min": 10, "max": 10}
        assert half["expected_by"] == "2026-03-09"  # session 10
        assert half["improvement_percent"] == 50
        assert half["sources"] == [{"source": S002, "label": "Reducing Cellulite with Mesotherapy"}]

    def test_the_50_percent_trajectory_is_flagged_as_a_single_source(self) -> None:
        half = next(m for m in cellulite_plan()["milestones"] if m["key"] == "about_half")
        assert half["single_source"] is True
        assert "“Reducing Cellulite with Mesotherapy” alone" in half["note"]

    def test_a_milestone_with_several_sources_is_not_flagged_single_source(self) -> None:
        def two_sources(document: dict[str, Any]) -> None:
            half = next(m for m in document["milestones"] if m["key"] == "about_half")
            half["after_sessions"]["source"] = [S002, S004]

        plan = logic.plan(
            edited(CELLULITE, two_sources),
            planned_sessions=15,
            cadence_days=7,
            first_session_on=dt.date(2026, 1, 5),
            currency="USD",
        )
        half = next(m for m in plan["milestones"] if m["key"] == "about_half")
        assert half["single_source"] is False
        assert [s["source"] for s in half["sources"]] == [S002, S004]

    def test_a_milestone_beyond_the_last_session_is_expected_by_the_last(self) -> None:
        plan = cellulite_plan(planned_sessions=2)
        first = next(m for m in plan["milestones"] if m["key"] == "first_visible")
        assert first["expected_by"] == plan["sessions"][-1]["due"] == "2026-01-12"

    def test_maintenance_is_6_to_8_months_after_the_last_due_date(self) -> None:
        window = cellulite_plan()["maintenance_window"]
        # Session 15 is due 13 Apr 2026.
        assert window["from"] == "2026-10-13"
        assert window["to"] == "2026-12-13"
        assert window["every_months"] == {"min": 6, "max": 8}
        assert [s["source"] for s in window["sources"]] == [S002]

    def test_maintenance_month_arithmetic_clamps_to_the_end_of_the_month(self) -> None:
        # Session 15 weekly from 25 May 2025 is due on 31 Aug 2025.
        plan = cellulite_plan(first_session_on=dt.date(2025, 5, 25))
        assert plan["sessions"][-1]["due"] == "2025-08-31"
        assert plan["maintenance_window"]["from"] == "2026-02-28"
        assert plan["maintenance_window"]["to"] == "2026-04-30"

    def test_maintenance_month_arithmetic_knows_leap_years(self) -> None:
        plan = cellulite_plan(first_session_on=dt.date(2027, 5, 25))
        assert plan["sessions"][-1]["due"] == "2027-08-31"
        assert plan["maintenance_window"]["from"] == "2028-02-29"

    def test_maintenance_window_after_the_actual_last_session(self) -> None:
        assert logic.maintenance_window(dt.date(2026, 8, 31), CELLULITE) == {
            "from": "2027-02-28",
            "to": "2027-04-30",
        }
        assert logic.maintenance_window(dt.date(2026, 1, 15), CELLULITE) == {
            "from": "2026-07-15",
            "to": "2026-09-15",
        }

    @pytest.mark.parametrize(
        "day, months, expected",
        [
            (dt.date(2025, 8, 31), 6, dt.date(2026, 2, 28)),
            (dt.date(2026, 1, 31), 1, dt.date(2026, 2, 28)),
            (dt.date(2024, 1, 31), 1, dt.date(2024, 2, 29)),
            (dt.date(2026, 11, 15), 2, dt.date(2027, 1, 15)),
            (dt.date(2026, 12, 31), 12, dt.date(2027, 12, 31)),
            (dt.date(2026, 3, 31), 8, dt.date(2026, 11, 30)),
        ],
    )
    def test_add_months(self, day: dt.date, months: int, expected: dt.date) -> None:
        assert logic.add_months(day, months) == expected

    def test_the_plan_names_the_allergy_test_and_what_to_do_before(self) -> None:
        plan = cellulite_plan()
        assert plan["allergy_test"]["injections"] == 2
        assert plan["allergy_test"]["wait_hours"] == 24
        assert [s["source"] for s in plan["allergy_test"]["sources"]] == [S004]
        keys = [i["key"] for i in plan["before_each_session"]]
        assert keys == ["no_stimulants", "numbing_cream"]
        for item in plan["before_each_session"]:
            assert item["sources"]


class NextWindowTests:
    def test_a_weekly_session_keeps_its_local_hour_across_spring_forward(self) -> None:
        # Europe/Paris moves from UTC+1 to UTC+2 on Sunday 29 March 2026.
        last = dt.datetime(2026, 3, 24, 9, 0, tzinfo=UTC)  # 10:00 in Paris
        window = logic.next_window(last, 7, 2, PARIS)
        assert window.due.isoformat() == "2026-03-31T10:00:00+02:00"
        assert last.astimezone(PARIS).utcoffset() == dt.timedelta(hours=1)
        assert window.due.utcoffset() == dt.timedelta(hours=2)
        # So the real gap is one hour short of a week.
        assert window.due - last == dt.timedelta(days=6, hours=23)
        assert window.as_dict() == {
            "earliest": "2026-03-29T10:00:00+02:00",
            "due": "2026-03-31T10:00:00+02:00",
            "latest": "2026-04-02T10:00:00+02:00",
        }

    def test_a_weekly_session_keeps_its_local_hour_across_fall_back(self) -> None:
        # America/New_York moves from UTC-4 to UTC-5 on Sunday 1 November 2026.
        last = dt.datetime(2026, 10, 27, 10, 0, tzinfo=NEW_YORK)
        window = logic.next_window(last, 7, 2, NEW_YORK)
        assert window.due.isoformat() == "2026-11-03T10:00:00-05:00"
        assert window.earliest.isoformat() == "2026-11-01T10:00:00-05:00"
        assert window.latest.isoformat() == "2026-11-05T10:00:00-05:00"
        # Subtracting in UTC: two times in one zone would subtract their wall clocks.
        assert window.due.astimezone(UTC) - last.astimezone(UTC) == dt.timedelta(days=7, hours=1)

    def test_a_fortnightly_window(self) -> None:
        last = dt.datetime(2026, 6, 2, 14, 30, tzinfo=PARIS)
        window = logic.next_window(last, 14, 2, PARIS)
        assert window.earliest.isoformat() == "2026-06-14T14:30:00+02:00"
        assert window.due.isoformat() == "2026-06-16T14:30:00+02:00"
        assert window.latest.isoformat() == "2026-06-18T14:30:00+02:00"

    def test_the_window_is_in_the_clinics_zone_whatever_zone_the_input_is_in(self) -> None:
        # 23:30 UTC on 9 June is 01:30 on 10 June in Paris: the next is due 17 June, 01:30.
        last = dt.datetime(2026, 6, 9, 23, 30, tzinfo=UTC)
        window = logic.next_window(last, 7, 0, PARIS)
        assert window.due.isoformat() == "2026-06-17T01:30:00+02:00"
        assert window.earliest == window.due == window.latest


def aftercare(protocol: Protocol, at: dt.datetime, areas: set[str], tz: Any = PARIS) -> dict:
    return {item["key"]: item for item in logic.aftercare(protocol, at, areas, tz)}


class AftercareTests:
    def test_no_hot_shower_for_8_hours_as_a_clock_time(self) -> None:
        at = dt.datetime(2026, 5, 12, 8, 30, tzinfo=UTC)  # 10:30 in Paris
        items = aftercare(CELLULITE, at, {"thighs"})
        shower = items["no_hot_shower"]
        assert shower["text"] == "No hot shower until 18:30."
        assert shower["until"] == "2026-05-12T18:30:00+02:00"
        assert [s["source"] for s in shower["sources"]] == [S004]

    def test_clock_times_are_in_the_clinics_time_zone(self) -> None:
        at = dt.datetime(2026, 5, 12, 14, 30, tzinfo=UTC)  # 10:30 in New York
        shower = aftercare(CELLULITE, at, {"thighs"}, NEW_YORK)["no_hot_shower"]
        assert shower["text"] == "No hot shower until 18:30."
        assert shower["until"] == "2026-05-12T18:30:00-04:00"

    def test_a_time_past_midnight_names_the_day(self) -> None:
        at = dt.datetime(2026, 5, 12, 20, 0, tzinfo=PARIS)
        shower = aftercare(CELLULITE, at, {"thighs"})["no_hot_shower"]
        assert shower["text"] == "No hot shower until 04:00 on Wed 13 May."

    def test_hours_are_real_hours_across_a_daylight_saving_change(self) -> None:
        # 22:00 on Saturday 28 March 2026 in Paris; the clocks go forward at 02:00, so eight
        # hours later it is 07:00, not 06:00.
        at = dt.datetime(2026, 3, 28, 22, 0, tzinfo=PARIS)
        shower = aftercare(CELLULITE, at, {"thighs"})["no_hot_shower"]
        assert shower["text"] == "No hot shower until 07:00 on Sun 29 Mar."
        until = dt.datetime.fromisoformat(shower["until"])
        assert until.astimezone(UTC) - at.astimezone(UTC) == dt.timedelta(hours=8)

    def test_no_makeup_after_a_facial_session(self) -> None:
        at = dt.datetime(2026, 5, 12, 8, 30, tzinfo=UTC)  # 10:30 in Paris
        items = aftercare(FACIAL, at, {"face"})
        assert items["no_makeup"]["text"] == "No makeup on the treated face until 14:30."
        assert items["no_makeup"]["until"] == "2026-05-12T14:30:00+02:00"
        assert items["no_hot_shower"]["text"] == "No hot shower until 18:30."

    def test_no_makeup_rule_appears_after_a_chin_session(self) -> None:
        at = dt.datetime(2026, 5, 12, 8, 30, tzinfo=UTC)
        assert "no_makeup" in aftercare(FACIAL, at, {"chin"})

    def test_cellulite_makeup_rule_applies_only_to_face_or_chin(self) -> None:
        at = dt.datetime(2026, 5, 12, 8, 30, tzinfo=UTC)
        assert "no_makeup" not in aftercare(CELLULITE, at, {"thighs", "buttocks", "arms"})
        assert "no_makeup" in aftercare(CELLULITE, at, {"thighs", "chin"})
        assert "no_makeup" in aftercare(CELLULITE, at, {"face"})

    def test_a_session_without_areas_gets_no_area_rule(self) -> None:
        at = dt.datetime(2026, 5, 12, 8, 30, tzinfo=UTC)
        assert "no_makeup" not in aftercare(FACIAL, at, set())

    def test_untimed_rules_have_no_clock(self) -> None:
        at = dt.datetime(2026, 5, 12, 8, 30, tzinfo=UTC)
        items = aftercare(CELLULITE, at, {"thighs"})
        assert set(items) == {
            "no_hot_shower",
            "high_protein_diet",
            "return_to_work",
            "report_warning_signs",
        }
        assert items["high_protein_diet"]["until"] is None
        assert items["high_protein_diet"]["text"] == (
            "Eat a high-protein diet in the days after your session."
        )
        for item in items.values():
            assert "{until}" not in item["text"]
            assert item["sources"]


T0 = dt.datetime(2026, 5, 12, 8, 0, tzinfo=UTC)


def status(
    kind: str | None,
    grade: int = 1,
    *,
    resolved_after: float | None = None,
    now_after: float = 1,
    protocol: Protocol = CELLULITE,
) -> tuple[str, dt.datetime | None]:
    resolved = T0 + dt.timedelta(hours=resolved_after) if resolved_after is not None else None
    return logic.side_effect_status(
        protocol.side_effect(kind) if kind is not None else None,
        grade,
        T0,
        resolved,
        T0 + dt.timedelta(hours=now_after),
        protocol.urgent_from_grade.v,
    )


class SideEffectStatusTests:
    def test_swelling_that_resolves_within_5_days_is_expected(self) -> None:
        assert status("swelling", resolved_after=100, now_after=300) == (
            "expected",
            T0 + dt.timedelta(hours=120),
        )

    def test_swelling_that_resolves_after_5_days_is_beyond_expected(self) -> None:
        assert status("swelling", resolved_after=121, now_after=300)[0] == "beyond_expected"

    def test_swelling_that_resolves_exactly_at_5_days_is_expected(self) -> None:
        assert status("swelling", resolved_after=120, now_after=300)[0] == "expected"

    def test_unresolved_swelling_is_expected_until_5_days_have_passed(self) -> None:
        assert status("swelling", now_after=119)[0] == "expected"
        assert status("swelling", now_after=121)[0] == "beyond_expected"

    def test_soreness_uses_the_clinics_chosen_duration(self) -> None:
        # cellulite.toml chooses 004's "a day or two" (48 h) over 002's "several days".
        assert status("soreness", now_after=47) == ("expected", T0 + dt.timedelta(hours=48))
        assert status("soreness", now_after=49)[0] == "beyond_expected"

    def test_burning_longer_than_20_minutes_is_beyond_expected(self) -> None:
        assert status("burning", resolved_after=0.25)[0] == "expected"
        assert status("burning", resolved_after=0.5)[0] == "beyond_expected"

    @pytest.mark.parametrize("kind", ["infection", "allergic_reaction", "ulceration", "necrosis"])
    def test_serious_kinds_are_urgent_at_any_grade(self, kind: str) -> None:
        assert status(kind, grade=1) == ("urgent", None)
        assert status(kind, grade=1, resolved_after=1, protocol=FACIAL) == ("urgent", None)

    def test_grade_3_or_more_is_urgent(self) -> None:
        assert status("swelling", grade=3)[0] == "urgent"
        assert status("bruising", grade=5)[0] == "urgent"
        assert status("swelling", grade=2)[0] == "expected"

    def test_the_urgent_grade_comes_from_the_protocol(self) -> None:
        def from_grade_2(document: dict[str, Any]) -> None:
            document["urgent_from_grade"]["value"] = 2

        assert status("swelling", grade=2, protocol=edited(CELLULITE, from_grade_2))[0] == (
            "urgent"
        )

    def test_a_kind_the_protocol_does_not_list_is_beyond_expected(self) -> None:
        assert CELLULITE.side_effect("other") is None
        assert status(None, grade=1) == ("beyond_expected", None)
        assert status(None, grade=1, resolved_after=0.1) == ("beyond_expected", None)

    def test_an_unlisted_kind_at_grade_3_is_urgent(self) -> None:
        assert status(None, grade=3) == ("urgent", None)

    def test_expected_duration_counts_real_hours_across_daylight_saving(self) -> None:
        # Onset at 10:00 on Saturday 28 March 2026 in Paris (09:00 UTC); 120 real hours later
        # is 09:00 UTC on 2 April, whatever the wall clock did in between.
        onset = dt.datetime(2026, 3, 28, 10, 0, tzinfo=PARIS)
        swelling = CELLULITE.side_effect("swelling")
        now = dt.datetime(2026, 4, 2, 8, 30, tzinfo=UTC)
        result, until = logic.side_effect_status(swelling, 1, onset, None, now, 3)
        assert until == dt.datetime(2026, 4, 2, 9, 0, tzinfo=UTC)
        assert result == "expected"

    def test_hair_loss_protocol_has_the_same_urgent_kinds(self) -> None:
        assert status("necrosis", protocol=HAIR) == ("urgent", None)


class DisputedMilestoneTests:
    def test_a_milestone_where_the_seeds_disagree_is_disputed_not_single_source(self) -> None:
        first = next(m for m in cellulite_plan()["milestones"] if m["key"] == "first_visible")
        assert first["disputed"] is True
        assert first["single_source"] is False
        half = next(m for m in cellulite_plan()["milestones"] if m["key"] == "about_half")
        assert half["disputed"] is False
