"""Protocol files: the four that ship, and the loader's refusal of broken ones.

The loader is pure (no database), so these are plain pytest classes. Broken files are made by
editing the text of cellulite.toml and writing the result into tmp_path.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from mesoclinic.protocols.loader import (
    PROTOCOL_DIR,
    ProtocolError,
    load_protocol_file,
    shipped_protocols,
)
from mesoclinic.protocols.schema import IntRange, Protocol
from mesoclinic.protocols.vocab import NO_SOURCE, SEEDS, Area, Indication, RefusalCode

SHIPPED = ["cellulite", "facial_rejuvenation", "hair_loss", "localized_fat"]
CELLULITE = PROTOCOL_DIR / "cellulite.toml"

S000 = "000_921d467bf3295337.txt"
S001 = "001_d38809c806382382.txt"
S002 = "002_fa4d881737f3a5fe.txt"
S003 = "003_60688675efef3c1d.txt"
S004 = "004_775ed0aecb2fac00.txt"


def load(key: str) -> Protocol:
    return load_protocol_file(PROTOCOL_DIR / f"{key}.toml")


def cellulite_text() -> str:
    return CELLULITE.read_text(encoding="utf-8")


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"{old!r} should occur exactly once in cellulite.toml"
    return text.replace(old, new)


def drop_table(text: str, header: str) -> str:
    """Remove a `[header]` table: its header line and every line up to the next table."""
    pattern = re.compile(rf"^\[{re.escape(header)}\]\n(?:(?!\[).*\n)*", re.MULTILINE)
    result, count = pattern.subn("", text)
    assert count == 1, f"[{header}] should occur exactly once in cellulite.toml"
    return result


def write(tmp_path: Path, text: str, name: str = "cellulite.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def refused(path: Path) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        load_protocol_file(path)
    return caught.value


def assert_problem(error: ProtocolError, path: Path, field: str, reason: str) -> None:
    """The file, the field and the reason are all in the message and in `problems`."""
    message = str(error)
    assert error.origin == path.name
    assert message.startswith(f"{path.name}: ")
    assert f"{field}: " in message, message
    assert reason in message, message
    assert any(f == field and reason in m for f, m in error.problems), error.problems


def walk_sourced(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every dict in a dumped protocol that carries a `source` list, with where it is."""
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        if isinstance(node.get("source"), list):
            found.append((path, node))
        for k, v in node.items():
            found += walk_sourced(v, f"{path}.{k}" if path else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            found += walk_sourced(v, f"{path}[{i}]")
    return found


class ShippedProtocolTests:
    def test_all_four_load_by_key(self):
        protocols = shipped_protocols()
        assert sorted(protocols) == SHIPPED
        for key, protocol in protocols.items():
            assert protocol.key == key

    @pytest.mark.parametrize("key", SHIPPED)
    def test_each_file_loads_and_its_key_is_its_file_name(self, key):
        assert load(key).key == key

    @pytest.mark.parametrize("key", SHIPPED)
    def test_only_the_interval_gate_is_overridable(self, key):
        assert load(key).overridable == [RefusalCode.INTERVAL_TOO_SHORT]

    @pytest.mark.parametrize("key", SHIPPED)
    def test_every_seed_cited_exists(self, key):
        cited = set()
        for _where, node in walk_sourced(load(key).model_dump()):
            cited |= {s for s in node["source"] if re.match(r"^\d{3}_", s)}
        assert cited, "a shipped protocol cites at least one seed"
        assert cited <= set(SEEDS), cited - set(SEEDS)

    @pytest.mark.parametrize("key", SHIPPED)
    def test_every_fact_without_a_source_says_why(self, key):
        for where, node in walk_sourced(load(key).model_dump()):
            assert node["source"], f"{key}: {where} has an empty source"
            if NO_SOURCE in node["source"]:
                assert node.get("note", "").strip(), f"{key}: {where} has no source and no note"

    @pytest.mark.parametrize("key", SHIPPED)
    def test_cadence_is_weekly_or_fortnightly_from_002(self, key):
        days = load(key).cadence.days
        assert days.v == [7, 14]
        assert days.chosen.source == [S002]

    @pytest.mark.parametrize("key", SHIPPED)
    def test_allergy_test_is_two_injections_read_after_24_hours_from_004(self, key):
        test = load(key).allergy_test
        assert test.injections.v == 2
        assert test.wait_hours.v == 24
        assert test.injections.chosen.source == [S004]
        assert test.wait_hours.chosen.source == [S004]

    @pytest.mark.parametrize("key", SHIPPED)
    def test_maintenance_is_every_6_to_8_months_from_002(self, key):
        months = load(key).maintenance_months
        assert months.v == IntRange(min=6, max=8)
        assert months.chosen.source == [S002]

    @pytest.mark.parametrize("key", SHIPPED)
    def test_price_is_500_to_800_usd_per_session_from_002(self, key):
        price = load(key).price_per_session
        assert (price.v.min, price.v.max, price.v.currency) == (500, 800, "USD")
        assert price.chosen.source == [S002]

    @pytest.mark.parametrize("key", ["localized_fat", "facial_rejuvenation", "hair_loss"])
    def test_sessions_are_10_to_15_as_a_plain_value(self, key):
        sessions = load(key).sessions
        assert sessions.options is None
        assert sessions.v == IntRange(min=10, max=15)
        assert set(sessions.chosen.source) <= {S000, S001, S003}

    @pytest.mark.parametrize("key", SHIPPED)
    def test_first_visible_results_keep_both_seeds(self, key):
        first = next(m for m in load(key).milestones if m.key == "first_visible")
        options = first.after_sessions.options
        assert options is not None
        by_source = {tuple(o.source): o.value for o in options.values()}
        assert by_source[(S004,)] == IntRange(min=2, max=3)
        assert by_source[(S002,)] == IntRange(min=5, max=5)

    @pytest.mark.parametrize("key", SHIPPED)
    def test_soreness_keeps_a_day_or_two_and_several_days(self, key):
        soreness = load(key).side_effect("soreness")
        assert soreness is not None and soreness.expected_hours is not None
        options = soreness.expected_hours.options
        assert options is not None
        assert {o.value for o in options.values()} == {48, 120}
        assert any(o.source == [S004] and o.value == 48 for o in options.values())

    @pytest.mark.parametrize("key", SHIPPED)
    def test_durability_keeps_not_permanent_and_permanent(self, key):
        durability = load(key).durability
        assert durability.options is not None
        assert set(durability.options) == {"not_permanent", "permanent_002"}
        assert durability.options["permanent_002"].source == [S002]
        assert S004 in durability.options["not_permanent"].source

    @pytest.mark.parametrize("key", SHIPPED)
    def test_timed_aftercare_has_no_hot_shower_for_8_hours(self, key):
        rule = next(a for a in load(key).aftercare if a.key == "no_hot_shower")
        assert rule.hours is not None and rule.hours.v == 8
        assert "{until}" in rule.text
        assert rule.source == [S004]


class CelluliteProtocolTests:
    def test_the_sessions_conflict_keeps_both_options(self):
        sessions = load("cellulite").sessions
        assert sessions.options is not None
        values = {name: o.value for name, o in sessions.options.items()}
        assert sorted((v.min, v.max) for v in values.values()) == [(10, 15), (15, 20)]

    def test_the_chosen_sessions_are_15_to_20_from_002(self):
        sessions = load("cellulite").sessions
        assert sessions.v == IntRange(min=15, max=20)
        assert sessions.chosen.source == [S002]

    def test_the_50_percent_milestone_is_a_single_source(self):
        half = next(m for m in load("cellulite").milestones if m.key == "about_half")
        assert half.improvement_percent == 50
        assert half.after_sessions.v == IntRange(min=10, max=10)
        assert half.after_sessions.chosen.source == [S002]


class LocalizedFatProtocolTests:
    def test_indications_and_areas(self):
        protocol = load("localized_fat")
        assert set(protocol.indications.v) == {Indication.LOCALIZED_FAT, Indication.WEIGHT_LOSS}
        assert set(protocol.areas.v) == {
            Area.CHIN,
            Area.ARMS,
            Area.ABDOMEN,
            Area.HIPS,
            Area.BUTTOCKS,
            Area.THIGHS,
            Area.OTHER,
        }

    def test_has_no_50_percent_milestone(self):
        protocol = load("localized_fat")
        assert [m.key for m in protocol.milestones] == ["first_visible"]
        assert all(m.improvement_percent is None for m in protocol.milestones)


class FacialProtocolTests:
    def test_indications_and_areas(self):
        protocol = load("facial_rejuvenation")
        assert set(protocol.indications.v) == {Indication.WRINKLES, Indication.SAGGING_SKIN}
        assert protocol.areas.v == [Area.FACE, Area.CHIN]

    def test_no_makeup_for_4_hours_on_the_face_and_chin(self):
        rule = next(a for a in load("facial_rejuvenation").aftercare if a.key == "no_makeup")
        assert rule.hours is not None and rule.hours.v == 4
        assert rule.areas == [Area.FACE, Area.CHIN]
        assert "{until}" in rule.text
        assert rule.source == [S004]

    def test_aftercare_is_otherwise_as_for_cellulite(self):
        facial = [a.key for a in load("facial_rejuvenation").aftercare]
        assert facial == [a.key for a in load("cellulite").aftercare]


class HairLossProtocolTests:
    def test_hair_loss_on_the_scalp_from_003(self):
        protocol = load("hair_loss")
        assert protocol.indications.v == [Indication.HAIR_LOSS]
        assert protocol.indications.chosen.source == [S003]
        assert protocol.areas.v == [Area.SCALP]

    def test_the_scalp_has_no_source_and_says_so(self):
        areas = load("hair_loss").areas
        assert not areas.chosen.has_source
        assert "scalp" in areas.chosen.note


class ProtocolLoaderTests:
    def test_an_unchanged_copy_loads(self, tmp_path):
        assert load_protocol_file(write(tmp_path, cellulite_text())).key == "cellulite"

    def test_it_refuses_malformed_toml(self, tmp_path):
        text = replace_once(cellulite_text(), "version = 1\n", "version = = 1\n")
        path = write(tmp_path, text)
        error = refused(path)
        assert_problem(error, path, "(syntax)", "line 7")
        assert len(error.problems) == 1

    def test_it_refuses_a_file_with_a_missing_field(self, tmp_path):
        path = write(tmp_path, drop_table(cellulite_text(), "insurance"))
        assert_problem(refused(path), path, "insurance", "Field required")

    def test_it_refuses_a_wrong_type(self, tmp_path):
        text = replace_once(cellulite_text(), "version = 1\n", 'version = "first"\n')
        path = write(tmp_path, text)
        assert_problem(refused(path), path, "version", "valid integer")

    def test_it_refuses_a_wrong_type_deep_inside_a_fact(self, tmp_path):
        text = replace_once(
            cellulite_text(),
            "[side_effects.expected_hours]\nvalue = 120\n",
            '[side_effects.expected_hours]\nvalue = "five days"\n',
        )
        path = write(tmp_path, text)
        assert_problem(refused(path), path, "side_effects[2].expected_hours.value", "valid number")

    def test_it_refuses_an_unknown_field(self, tmp_path):
        text = replace_once(cellulite_text(), "version = 1\n", 'version = 1\ncolour = "red"\n')
        path = write(tmp_path, text)
        assert_problem(refused(path), path, "colour", "Extra inputs are not permitted")

    def test_it_refuses_a_seed_that_does_not_exist(self, tmp_path):
        text = replace_once(
            cellulite_text(),
            '[maintenance_months]\nvalue = { min = 6, max = 8 }\nsource = ["002_',
            '[maintenance_months]\nvalue = { min = 6, max = 8 }\nsource = ["009_nope.txt", "002_',
        )
        path = write(tmp_path, text)
        assert_problem(
            refused(path),
            path,
            "maintenance_months.source",
            "'009_nope.txt' is not one of the seed files",
        )

    def test_it_refuses_a_seed_that_does_not_exist_inside_an_option(self, tmp_path):
        text = replace_once(
            cellulite_text(),
            "[sessions.options.cellulite_002]\nvalue = { min = 15, max = 20 }\n"
            'source = ["002_fa4d881737f3a5fe.txt"]',
            "[sessions.options.cellulite_002]\nvalue = { min = 15, max = 20 }\n"
            'source = ["009_nope.txt"]',
        )
        path = write(tmp_path, text)
        assert_problem(
            refused(path),
            path,
            "sessions.options.cellulite_002.source",
            "'009_nope.txt' is not one of the seed files",
        )

    def test_it_refuses_choose_naming_a_missing_option(self, tmp_path):
        text = replace_once(cellulite_text(), 'choose = "cellulite_002"', 'choose = "other_099"')
        path = write(tmp_path, text)
        assert_problem(
            refused(path), path, "sessions", "choose must name one of the options: general"
        )

    def test_it_refuses_min_above_max(self, tmp_path):
        text = replace_once(
            cellulite_text(),
            "[maintenance_months]\nvalue = { min = 6, max = 8 }",
            "[maintenance_months]\nvalue = { min = 9, max = 8 }",
        )
        path = write(tmp_path, text)
        assert_problem(refused(path), path, "maintenance_months.value", "min (9) is above max (8)")

    def test_it_refuses_lot_recalled_as_overridable(self, tmp_path):
        text = replace_once(
            cellulite_text(),
            'overridable = ["interval_too_short"]',
            'overridable = ["interval_too_short", "lot_recalled"]',
        )
        path = write(tmp_path, text)
        assert_problem(refused(path), path, "overridable", "lot_recalled can never be overridden")

    def test_it_refuses_a_timed_aftercare_rule_without_until(self, tmp_path):
        text = replace_once(
            cellulite_text(), 'text = "No hot shower until {until}."', 'text = "No hot shower."'
        )
        path = write(tmp_path, text)
        assert_problem(refused(path), path, "aftercare[1]", "must contain {until}")

    def test_it_refuses_a_key_that_differs_from_the_file_name(self, tmp_path):
        path = write(tmp_path, cellulite_text(), name="cellulite_v2.toml")
        error = refused(path)
        assert_problem(error, path, "key", "is 'cellulite' but the file is named 'cellulite_v2'")

    def test_it_refuses_a_file_that_cannot_be_read(self, tmp_path):
        path = tmp_path / "missing.toml"
        assert_problem(refused(path), path, "(file)", "cannot be read")

    def test_it_reports_every_problem_not_just_the_first(self, tmp_path):
        text = drop_table(cellulite_text(), "insurance")
        text = replace_once(text, "version = 1\n", 'version = 1\ncolour = "red"\n')
        text = replace_once(
            text,
            "[maintenance_months]\nvalue = { min = 6, max = 8 }",
            "[maintenance_months]\nvalue = { min = 9, max = 8 }",
        )
        text = replace_once(
            text, 'text = "No hot shower until {until}."', 'text = "No hot shower."'
        )
        path = write(tmp_path, text)
        error = refused(path)
        assert_problem(error, path, "insurance", "Field required")
        assert_problem(error, path, "colour", "Extra inputs are not permitted")
        assert_problem(error, path, "maintenance_months.value", "min (9) is above max (8)")
        assert_problem(error, path, "aftercare[1]", "must contain {until}")
        assert len(error.problems) == 4

    def test_shipped_protocols_returns_all_four(self):
        protocols = shipped_protocols()
        assert len(protocols) == 4
        assert set(protocols) == set(SHIPPED)
        assert all(isinstance(p, Protocol) for p in protocols.values())

    def test_shipped_protocols_reads_a_given_directory(self, tmp_path):
        write(tmp_path, cellulite_text())
        assert list(shipped_protocols(tmp_path)) == ["cellulite"]


class StoredVersionSpecTests:
    """Today reads every stored version's validated protocol on each load, from the stored
    text; a new version is a new text, so it is validated on its own."""

    def test_each_version_is_read_as_stored_and_an_edit_is_its_own(self, world: Any) -> None:
        import copy

        from mesoclinic.protocols.models import ClinicProtocol, do_edit_protocol

        v1 = ClinicProtocol.current(world.clinic, "cellulite")
        assert v1 is not None
        specs = ClinicProtocol.specs_of(world.clinic)
        assert set(specs) == set(
            ClinicProtocol.objects.filter(clinic=world.clinic).values_list("pk", flat=True)
        )
        assert specs[v1.pk] == v1.spec
        document = copy.deepcopy(v1.document)
        document["cadence"]["tolerance_days"] = {
            "value": 3,
            "source": [NO_SOURCE],
            "note": "Our clinic allows 3 days.",
        }
        v2 = do_edit_protocol(world.clinic, "cellulite", document, world.manager, "Wider window")
        again = ClinicProtocol.specs_of(world.clinic)
        assert again[v1.pk].cadence.tolerance_days.v == 2
        assert again[v2.pk].cadence.tolerance_days.v == 3
