"""The protocol editor's rules, one function at a time: when a clinic's value lies inside what
a source gives, how an edit keeps the sourced options and adds the clinic's own, the note that
says which sources a value lies within, which facts a save changed, and values in words.

tests/test_web_protocols.py posts the edit form and reads the pages; these call the pure
functions in mesoclinic.protocols.editing and .describe directly, so they need no database.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mesoclinic.protocols.describe import (
    CLINIC_OPTION,
    SOURCED_OPTION,
    changed_paths,
    duration,
    kind_of,
    sections,
    words,
)
from mesoclinic.protocols.editing import (
    OWN,
    apply_edit,
    auto_note,
    covering,
    inside,
    own_note,
    sourced_options,
)
from mesoclinic.protocols.loader import ProtocolError, shipped_protocols, validate_protocol
from mesoclinic.protocols.vocab import NO_SOURCE

S000 = "000_921d467bf3295337.txt"
S001 = "001_d38809c806382382.txt"
S002 = "002_fa4d881737f3a5fe.txt"
S003 = "003_60688675efef3c1d.txt"


def cellulite() -> dict[str, Any]:
    """The shipped cellulite protocol as a clinic stores it (version 1 of its copy)."""
    return shipped_protocols()["cellulite"].model_dump(mode="json", exclude_none=True)


def sessions_fact() -> dict[str, Any]:
    """Sessions in a course: the sources disagree (10–15 from 000, 001, 003; 15–20 from 002)."""
    return cellulite()["sessions"]


def cadence_fact() -> dict[str, Any]:
    """Days between sessions: one sourced value, every 7 or 14 days from 002."""
    return cellulite()["cadence"]["days"]


def price_fact() -> dict[str, Any]:
    """Price per session: one sourced value, USD 500–800 from 002."""
    return cellulite()["price_per_session"]


class InsideTests:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ({"min": 16, "max": 18}, True),  # narrower
            ({"min": 15, "max": 20}, True),  # the same range
            ({"min": 15, "max": 15}, True),  # one end
            ({"min": 14, "max": 18}, False),  # below the source's lowest
            ({"min": 16, "max": 21}, False),  # above its highest
            ({"min": 10, "max": 25}, False),  # around it
        ],
    )
    @pytest.mark.parametrize("kind", ["sessions", "months"])
    def test_a_range_lies_inside_when_both_ends_do(
        self, kind: str, value: dict[str, int], expected: bool
    ) -> None:
        assert inside(kind, value, {"min": 15, "max": 20}) is expected

    def test_money_lies_inside_only_in_the_same_currency(self) -> None:
        usd = {"min": 500.0, "max": 800.0, "currency": "USD"}
        assert inside("money", {"min": 600.0, "max": 700.0, "currency": "USD"}, usd)
        assert inside("money", {"min": 500, "max": 800, "currency": "USD"}, usd)
        assert not inside("money", {"min": 600.0, "max": 700.0, "currency": "EUR"}, usd)
        assert not inside("money", {"min": 450.0, "max": 700.0, "currency": "USD"}, usd)

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ([7], True),  # only weekly, of "weekly or fortnightly"
            ([14], True),
            ([14, 7], True),  # a set: the order does not matter
            ([7, 14], True),
            ([7, 21], False),  # 21 days is in no source
            ([10], False),
        ],
    )
    def test_a_cadence_lies_inside_when_it_is_a_subset(
        self, value: list[int], expected: bool
    ) -> None:
        assert inside("cadence", value, [7, 14]) is expected

    def test_any_other_kind_lies_inside_only_when_equal(self) -> None:
        assert inside("days", 2, 2)
        assert not inside("days", 1, 2)  # a single number is not a range

    @pytest.mark.parametrize(
        ("kind", "value", "sourced"),
        [
            ("sessions", {"min": 16}, {"min": 15, "max": 20}),
            ("sessions", None, {"min": 15, "max": 20}),
            ("money", {"min": 600, "max": 700}, {"min": 500, "max": 800, "currency": "USD"}),
            ("cadence", None, [7, 14]),
        ],
    )
    def test_a_value_that_does_not_fit_its_kind_lies_inside_nothing(
        self, kind: str, value: Any, sourced: Any
    ) -> None:
        assert inside(kind, value, sourced) is False


class SourcedOptionsTests:
    def test_a_plain_sourced_fact_is_one_option(self) -> None:
        options = sourced_options(cadence_fact())
        assert list(options) == [SOURCED_OPTION]
        assert options[SOURCED_OPTION]["value"] == [7, 14]
        assert options[SOURCED_OPTION]["source"] == [S002]

    def test_a_fact_with_no_source_has_none(self) -> None:
        assert sourced_options(cellulite()["cadence"]["tolerance_days"]) == {}

    def test_the_clinics_own_option_and_unsourced_options_are_left_out(self) -> None:
        fact = apply_edit("sessions", sessions_fact(), OWN, {"min": 16, "max": 18}, "")
        unsourced = {"value": {"min": 1, "max": 2}, "source": [NO_SOURCE], "note": "Why."}
        fact["options"]["ours"] = unsourced
        assert list(sourced_options(fact)) == ["general", "cellulite_002"]

    def test_covering_names_every_option_a_value_lies_inside(self) -> None:
        fact = sessions_fact()
        assert list(covering("sessions", fact, {"min": 16, "max": 18})) == ["cellulite_002"]
        assert list(covering("sessions", fact, {"min": 15, "max": 15})) == [
            "general",
            "cellulite_002",
        ]
        assert covering("sessions", fact, {"min": 12, "max": 25}) == {}


class AutoNoteTests:
    def test_one_option_gives(self) -> None:
        options = {"cellulite_002": sessions_fact()["options"]["cellulite_002"]}
        assert (
            auto_note("sessions", options)
            == "Within what Reducing Cellulite with Mesotherapy (15–20 sessions) gives."
        )

    def test_several_options_give_each_with_its_sources_and_value(self) -> None:
        assert auto_note("sessions", sessions_fact()["options"]) == (
            "Within what How Mesotherapy Improves Cellulite, Treat Cellulite with Mesotherapy "
            "(Pasadena), Mesotherapy: questions and answers (10–15 sessions); Reducing Cellulite "
            "with Mesotherapy (15–20 sessions) give."
        )

    def test_the_value_is_in_words_for_its_kind(self) -> None:
        options = sourced_options(cadence_fact())
        assert (
            auto_note("cadence", options)
            == "Within what Reducing Cellulite with Mesotherapy (every 7 or 14 days) gives."
        )


class ApplyEditTests:
    def test_a_value_inside_one_option_is_the_clinics_with_that_options_source(self) -> None:
        before = sessions_fact()
        after = apply_edit("sessions", before, OWN, {"min": 16, "max": 18}, "")
        assert after["choose"] == CLINIC_OPTION
        assert after["options"][CLINIC_OPTION] == {
            "value": {"min": 16, "max": 18},
            "source": [S002],
            "note": "Within what Reducing Cellulite with Mesotherapy (15–20 sessions) gives.",
        }
        # The sources' own values stay as they were, to go back to.
        assert after["options"]["general"] == before["options"]["general"]
        assert after["options"]["cellulite_002"] == before["options"]["cellulite_002"]

    def test_the_fact_passed_in_is_not_changed(self) -> None:
        before = sessions_fact()
        kept = copy.deepcopy(before)
        apply_edit("sessions", before, OWN, {"min": 16, "max": 18}, "Our plan.")
        assert before == kept

    def test_a_value_inside_several_options_takes_all_their_sources_once(self) -> None:
        after = apply_edit("sessions", sessions_fact(), OWN, {"min": 15, "max": 15}, "")
        own = after["options"][CLINIC_OPTION]
        assert own["source"] == [S000, S001, S003, S002]
        assert own["note"] == (
            "Within what How Mesotherapy Improves Cellulite, Treat Cellulite with Mesotherapy "
            "(Pasadena), Mesotherapy: questions and answers (10–15 sessions); Reducing Cellulite "
            "with Mesotherapy (15–20 sessions) give."
        )

    def test_a_source_shared_by_several_options_is_listed_once(self) -> None:
        fact = {
            "options": {
                "wide": {"value": {"min": 10, "max": 20}, "source": [S002, S000], "note": ""},
                "narrow": {"value": {"min": 12, "max": 18}, "source": [S002], "note": ""},
            },
            "choose": "wide",
        }
        after = apply_edit("sessions", fact, OWN, {"min": 13, "max": 15}, "")
        assert after["options"][CLINIC_OPTION]["source"] == [S002, S000]

    def test_the_managers_note_follows_the_automatic_one(self) -> None:
        after = apply_edit("sessions", sessions_fact(), OWN, {"min": 16, "max": 18}, "Our plan.")
        assert after["options"][CLINIC_OPTION]["note"] == (
            "Within what Reducing Cellulite with Mesotherapy (15–20 sessions) gives. Our plan."
        )

    def test_a_plain_sourced_value_becomes_the_sourced_option_beside_the_clinics(self) -> None:
        before = cadence_fact()
        after = apply_edit("cadence", before, OWN, [7], "")
        assert after == {
            "options": {
                SOURCED_OPTION: {
                    "value": [7, 14],
                    "source": [S002],
                    "note": "Once a week or every other week.",
                },
                CLINIC_OPTION: {
                    "value": [7],
                    "source": [S002],
                    "note": (
                        "Within what Reducing Cellulite with Mesotherapy (every 7 or 14 days) "
                        "gives."
                    ),
                },
            },
            "choose": CLINIC_OPTION,
        }

    def test_a_sourced_value_without_a_note_keeps_no_empty_note(self) -> None:
        before = cellulite()["maintenance_months"]
        assert before["note"] == ""
        after = apply_edit("months", before, OWN, {"min": 6, "max": 7}, "")
        assert after["options"][SOURCED_OPTION] == {"value": {"min": 6, "max": 8}, "source": [S002]}

    def test_a_value_outside_every_source_has_no_source_and_the_managers_note(self) -> None:
        value = {"min": 300.0, "max": 450.0, "currency": "EUR"}
        assert covering("money", price_fact(), value) == {}  # so the form asks for a note
        after = apply_edit("money", price_fact(), OWN, value, "Our Paris price list, 2025.")
        assert after["options"][CLINIC_OPTION] == {
            "value": value,
            "source": [NO_SOURCE],
            "note": "Our Paris price list, 2025.",
        }
        # 002's figure is kept with its source, never relabelled as supporting ours.
        assert after["options"][SOURCED_OPTION]["source"] == [S002]
        assert after["choose"] == CLINIC_OPTION

    def test_no_source_is_accepted_only_with_a_note(self) -> None:
        value = {"min": 12, "max": 25}
        document = cellulite()
        document["sessions"] = apply_edit("sessions", sessions_fact(), OWN, value, "Why.")
        assert validate_protocol(document, "edited").sessions.v.max == 25
        document["sessions"] = apply_edit("sessions", sessions_fact(), OWN, value, "")
        with pytest.raises(ProtocolError) as refused:
            validate_protocol(document, "edited")
        assert refused.value.problems == [
            (
                "sessions.options.clinic",
                'a value with "no source" needs a note saying what the clinic should set',
            )
        ]

    def test_the_value_of_an_option_chooses_that_option(self) -> None:
        after = apply_edit("sessions", sessions_fact(), OWN, {"min": 10, "max": 15}, "ignored")
        assert after["choose"] == "general"
        assert CLINIC_OPTION not in after["options"]

    def test_the_same_value_as_a_plain_fact_changes_nothing(self) -> None:
        assert apply_edit("cadence", cadence_fact(), OWN, [7, 14], "") == cadence_fact()

    def test_picking_a_sourced_option_keeps_the_clinics_value_on_record(self) -> None:
        own = apply_edit("sessions", sessions_fact(), OWN, {"min": 12, "max": 25}, "More.")
        back = apply_edit("sessions", own, "general", None, "")
        assert back["choose"] == "general"
        assert back["options"][CLINIC_OPTION] == own["options"][CLINIC_OPTION]

    def test_picking_the_sourced_value_of_a_plain_fact_changes_nothing(self) -> None:
        assert apply_edit("cadence", cadence_fact(), SOURCED_OPTION, None, "") == cadence_fact()

    def test_a_second_own_value_replaces_the_first(self) -> None:
        first = apply_edit("sessions", sessions_fact(), OWN, {"min": 12, "max": 25}, "More.")
        second = apply_edit("sessions", first, OWN, {"min": 16, "max": 17}, "")
        assert list(second["options"]) == ["general", "cellulite_002", CLINIC_OPTION]
        assert second["options"][CLINIC_OPTION]["value"] == {"min": 16, "max": 17}
        assert second["options"][CLINIC_OPTION]["source"] == [S002]

    def test_a_value_with_no_source_is_edited_in_place(self) -> None:
        before = cellulite()["cadence"]["tolerance_days"]
        assert before["source"] == [NO_SOURCE]
        after = apply_edit("days", before, OWN, 3, "Our booking system moves sessions by 3 days.")
        assert after == {
            "value": 3,
            "source": [NO_SOURCE],
            "note": "Our booking system moves sessions by 3 days.",
        }


class OwnNoteTests:
    def test_the_form_shows_the_managers_words_without_the_automatic_note(self) -> None:
        fact = apply_edit("sessions", sessions_fact(), OWN, {"min": 16, "max": 18}, "Our plan.")
        assert own_note("sessions", fact) == ({"min": 16, "max": 18}, "Our plan.")

    def test_saving_what_the_form_shows_gives_the_same_fact(self) -> None:
        fact = apply_edit("sessions", sessions_fact(), OWN, {"min": 16, "max": 18}, "Our plan.")
        value, note = own_note("sessions", fact)
        assert apply_edit("sessions", fact, OWN, value, note) == fact

    def test_a_sourced_fact_has_no_own_value(self) -> None:
        assert own_note("sessions", sessions_fact()) == (None, "")
        assert own_note("cadence", cadence_fact()) == (None, "")

    def test_a_value_with_no_source_is_the_clinics_with_its_note(self) -> None:
        value, note = own_note("days", cellulite()["cadence"]["tolerance_days"])
        assert value == 2 and note.startswith("How many days early or late")


class ChangedPathsTests:
    def test_the_same_document_changed_nothing(self) -> None:
        assert changed_paths(cellulite(), cellulite()) == []

    def test_each_changed_fact_is_named_as_the_loader_names_it_in_order(self) -> None:
        before = cellulite()
        after = copy.deepcopy(before)
        after["sessions"]["choose"] = "general"
        after["cadence"]["days"] = apply_edit("cadence", before["cadence"]["days"], OWN, [7], "")
        after["milestones"][0]["after_sessions"]["choose"] = "about_5"
        after["name"] = "Cellulite, our way"
        assert changed_paths(before, after) == [
            "cadence.days",
            "milestones[0].after_sessions",
            "name",
            "sessions",
        ]

    def test_a_change_inside_a_fact_names_the_fact(self) -> None:
        before = cellulite()
        after = copy.deepcopy(before)
        after["sessions"]["options"]["general"]["note"] = "Edited."
        assert changed_paths(before, after) == ["sessions"]

    def test_a_list_that_grew_is_named_as_a_whole(self) -> None:
        before = cellulite()
        after = copy.deepcopy(before)
        after["notes"].append({"topic": "Parking", "text": "Yard.", "source": [NO_SOURCE]})
        assert changed_paths(before, after) == ["notes"]

    def test_an_added_or_removed_field_is_a_change(self) -> None:
        before = cellulite()
        after = copy.deepcopy(before)
        del after["insurance"]
        after["comparison"] = {"value": {"label": "x"}, "source": [S002]}
        assert changed_paths(before, after) == ["comparison", "insurance"]

    def test_a_document_replaced_by_something_else_is_the_top_level(self) -> None:
        assert changed_paths(cellulite(), []) == ["(top level)"]


class WordsTests:
    @pytest.mark.parametrize(
        ("hours", "expected"),
        [
            (0.25, "15 min"),
            (0.5, "30 min"),
            (1, "1 h"),
            (1.5, "1.5 h"),
            (8, "8 h"),
            (24, "24 h"),  # a day is said in hours below two days
            (36, "36 h"),
            (48, "2 days"),
            (120, "5 days"),
            (60, "60 h"),  # not whole days
        ],
    )
    def test_duration(self, hours: float, expected: str) -> None:
        assert duration(hours) == expected

    @pytest.mark.parametrize(
        ("kind", "value", "expected"),
        [
            ("sessions", {"min": 15, "max": 20}, "15–20 sessions"),
            ("sessions", {"min": 5, "max": 5}, "5 sessions"),
            ("sessions", {"min": 1, "max": 1}, "1 session"),
            ("sessions", {"min": 1, "max": 2}, "1–2 sessions"),
            ("months", {"min": 6, "max": 8}, "6–8 months"),
            ("money", {"min": 500.0, "max": 800.0, "currency": "USD"}, "USD 500–800"),
            ("money", {"min": 1500, "max": 2250.5, "currency": "EUR"}, "EUR 1,500–2,250.5"),
            ("cadence", [7, 14], "every 7 or 14 days"),
            ("cadence", [7], "every 7 days"),
            ("days", 1, "1 day"),
            ("days", 2, "2 days"),
            ("injections", 2, "2 injections"),
            ("hours", 24, "24 h"),
            ("hours", 0.25, "15 min"),
            ("minutes", 30, "30 min"),
            ("grade", 3, "grade 3 and above"),
            ("areas", ["thighs", "chin"], "Thighs, Chin (submental)"),
            ("areas", ["elbows"], "elbows"),  # a code the vocabulary lacks, as written
            ("areas", [], "none"),
            ("text", "Results are not permanent.", "Results are not permanent."),
        ],
    )
    def test_words(self, kind: str, value: Any, expected: str) -> None:
        assert words(kind, value) == expected

    @pytest.mark.parametrize(
        ("kind", "value", "expected"),
        [
            ("sessions", 12, "12"),
            ("money", {"min": 1, "max": 2}, '{"min": 1, "max": 2}'),
            ("text", {"label": "Liposuction"}, '{"label": "Liposuction"}'),
        ],
    )
    def test_a_value_that_does_not_fit_its_kind_is_shown_as_stored(
        self, kind: str, value: Any, expected: str
    ) -> None:
        assert words(kind, value) == expected

    @pytest.mark.parametrize(
        ("path", "kind"),
        [
            (("sessions",), "sessions"),
            (("cadence", "days"), "cadence"),
            (("cadence", "tolerance_days"), "days"),
            (("milestones", 0, "after_sessions"), "sessions"),
            (("side_effects", 3, "expected_hours"), "hours"),
            (("durability",), "text"),
        ],
    )
    def test_kind_of_a_path(self, path: tuple[str | int, ...], kind: str) -> None:
        assert kind_of(path) == kind


def test_the_gates_that_may_be_overridden_are_named_in_words() -> None:
    document = cellulite()
    document["overridable"] = ["interval_too_short", "unresolved_side_effect"]
    (gates,) = [row for s in sections(document) for row in s.rows if row.path == "overridable"]
    assert gates.choices[0].value == (
        "too soon after the last session; an urgent side effect is not resolved"
    )
