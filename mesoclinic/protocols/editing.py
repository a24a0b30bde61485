"""The rules for editing a fact of a clinic's protocol document, and how its sources follow.

Every fact is a value with its source, or several sourced options and the one the clinic
chose (docs/protocols.md). Editing keeps that honest:

1. A sourced value is never overwritten. A clinic that wants its own value gets an extra
   option, `clinic`, next to the sourced ones, and `choose` names it; choosing a sourced
   option again is one click.
2. The clinic's own value keeps a source only when it lies inside what a source gives (a
   narrower session range, only the weekly cadence of "weekly or fortnightly"): it takes the
   sources of every option it lies inside, and a note saying so.
3. Anywhere else it is marked `"no source"`, as the schema marks a value the articles do not
   give, and the schema's rule applies: it needs a note saying why. The form asks for it.
4. A value that already has no source (the clinic set it from the start) is edited in place,
   and its note stays required.

Pure functions over plain dicts: the form in `mesoclinic.web.manage_protocol_forms` checks
what the manager typed and calls `apply_edit`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from mesoclinic.protocols.describe import (
    CLINIC_OPTION,
    SOURCED_OPTION,
    has_source,
    source_words,
    words,
)
from mesoclinic.protocols.vocab import NO_SOURCE

OWN = "own"  # The pick that stands for "the clinic's own value" rather than a sourced option.


# The edit form's values: what a clinic legitimately adjusts, and how its sources follow.


@dataclass(frozen=True)
class Editable:
    path: tuple[str, ...]
    kind: str  # "sessions", "months", "money", "cadence" or "days"
    low: int = 0
    high: int = 60

    @property
    def prefix(self) -> str:
        return "_".join(self.path)


EDITABLE = (
    Editable(("sessions",), "sessions", low=1, high=60),
    Editable(("cadence", "days"), "cadence"),
    Editable(("cadence", "tolerance_days"), "days", low=0, high=6),
    Editable(("price_per_session",), "money"),
    Editable(("maintenance_months",), "months", low=0, high=60),
)


def inside(kind: str, value: Any, sourced: Any) -> bool:
    """Whether `value` lies within what a source gives (`sourced`)."""
    try:
        if kind in ("sessions", "months"):
            return bool(sourced["min"] <= value["min"] and value["max"] <= sourced["max"])
        if kind == "money":
            return bool(
                value["currency"] == sourced["currency"]
                and sourced["min"] <= value["min"]
                and value["max"] <= sourced["max"]
            )
        if kind == "cadence":
            return set(value) <= set(sourced)
    except (KeyError, TypeError):
        return False
    return bool(value == sourced)


def sourced_options(fact: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The values of a fact that a source gives: every option but the clinic's own and those
    marked "no source"."""
    if "options" not in fact:
        plain = {"value": fact.get("value"), "source": fact.get("source"), "note": ""}
        return {SOURCED_OPTION: plain} if has_source(fact.get("source")) else {}
    return {
        k: o
        for k, o in fact["options"].items()
        if k != CLINIC_OPTION and has_source(o.get("source"))
    }


def covering(kind: str, fact: dict[str, Any], value: Any) -> dict[str, dict[str, Any]]:
    return {k: o for k, o in sourced_options(fact).items() if inside(kind, value, o["value"])}


def auto_note(kind: str, options: dict[str, dict[str, Any]]) -> str:
    """What a clinic's value inside the sources says about them, e.g.
    "Within what 002 (15–20 sessions) gives."."""
    parts = []
    for o in options.values():
        numbers = ", ".join(s.short for s in source_words(o["source"]))
        parts.append(f"{numbers} ({words(kind, o['value'])})")
    return f"Within what {'; '.join(parts)} give{'s' if len(parts) == 1 else ''}."


def own_note(kind: str, fact: dict[str, Any]) -> tuple[Any, str]:
    """The clinic's current own value of a fact and its note as the manager wrote it."""
    if "options" not in fact:
        if has_source(fact.get("source")):
            return None, ""
        return fact.get("value"), fact.get("note", "")
    own = fact["options"].get(CLINIC_OPTION)
    if own is None:
        return None, ""
    note = str(own.get("note", ""))
    auto = auto_note(kind, covering(kind, fact, own["value"]))
    return own["value"], note.removeprefix(auto).strip()


def apply_edit(kind: str, fact: dict[str, Any], pick: str, value: Any, note: str) -> dict[str, Any]:
    """The fact after the manager picked an option, or their own value with a note. The caller
    has checked that a value outside every source comes with a note."""
    fact = copy.deepcopy(fact)
    in_place = "options" not in fact and not has_source(fact.get("source"))
    if in_place:
        return {"value": value, "source": fact["source"], "note": note}
    if pick != OWN:
        if "options" in fact:
            fact["choose"] = pick
        return fact
    if "options" not in fact:
        if value == fact["value"]:
            return fact
        option = {"value": fact["value"], "source": fact["source"]}
        if fact.get("note"):
            option["note"] = fact["note"]
        fact = {"options": {SOURCED_OPTION: option}, "choose": SOURCED_OPTION}
    # The same value as an option: choose that option rather than copy it.
    for key, option in fact["options"].items():
        if key != CLINIC_OPTION and option.get("value") == value:
            fact["choose"] = key
            return fact
    within = covering(kind, fact, value)
    if within:
        sources: list[str] = []
        for o in within.values():
            sources += [s for s in o["source"] if s not in sources]
        own = {"value": value, "source": sources, "note": f"{auto_note(kind, within)} {note}"}
    else:
        own = {"value": value, "source": [NO_SOURCE], "note": note}
    own["note"] = own["note"].strip()
    fact["options"][CLINIC_OPTION] = own
    fact["choose"] = CLINIC_OPTION
    return fact
