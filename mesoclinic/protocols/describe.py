"""A protocol document in words, and its facts as rows with their sources.

A protocol document is the JSON a `ClinicProtocol` stores, in the shape of a protocol file
(docs/protocols.md). Every fact is a value with its source, or several sourced options and
the one the clinic chose (`options` and `choose`). This module reads such a document for a
person: a value in words for its kind (`words`, `duration`), a field path in words
(`label_of`) and as the loader names it (`dotted`), the sources of a value (`source_words`),
every fact grouped in sections (`sections`), and which facts differ between two documents
(`changed_paths`).

Pure functions over plain dicts and lists: no database, no forms, no requests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mesoclinic.protocols.vocab import (
    NO_SOURCE,
    SEED_LABELS,
    SEEDS,
    Area,
    Indication,
    IngredientClass,
    RefusalCode,
    name_sources,
    reference_words,
)

CLINIC_OPTION = "clinic"  # The option a clinic's own value is saved under.
SOURCED_OPTION = "sourced"  # A single sourced value, once it becomes one option of several.

Path = tuple[str | int, ...]


# Words: how a value, a source and a field path read on a page.


def num(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.2f}".rstrip("0").rstrip(".")


def _span(lo: float, hi: float) -> str:
    return num(lo) if lo == hi else f"{num(lo)}–{num(hi)}"


def _plural(n: float, one: str, many: str) -> str:
    return one if n == 1 else many


def duration(hours: float) -> str:
    """0.25 → "15 min", 8 → "8 h", 48 → "2 days"."""
    if hours < 1:
        return f"{round(hours * 60)} min"
    if hours >= 48 and hours % 24 == 0:
        return f"{num(hours / 24)} days"
    return f"{num(hours)} h"


_CODES: dict[str, dict[str, str]] = {
    "indications": dict(Indication.choices),
    "areas": dict(Area.choices),
    "classes": dict(IngredientClass.choices),
}


def words(kind: str, value: Any) -> str:
    """A value in words, for the `kind` that `kind_of` gives its path."""
    try:
        if kind in ("sessions", "months"):
            unit = "session" if kind == "sessions" else "month"
            return f"{_span(value['min'], value['max'])} {unit}{'' if value['max'] == 1 else 's'}"
        if kind == "money":
            return f"{value['currency']} {_span(value['min'], value['max'])}"
        if kind == "comparison":
            return f"{value['label']}: {value['currency']} {num(value['amount'])}"
        if kind == "cadence":
            return "every " + " or ".join(str(d) for d in value) + " days"
        if kind == "days":
            return f"{value} {_plural(value, 'day', 'days')}"
        if kind == "injections":
            return f"{value} {_plural(value, 'injection', 'injections')}"
        if kind == "hours":
            return duration(float(value))
        if kind == "minutes":
            return f"{value} min"
        if kind == "grade":
            return f"grade {value} and above"
        if kind in _CODES:
            return ", ".join(_CODES[kind].get(str(v), str(v)) for v in value) or "none"
    except (KeyError, TypeError, ValueError):
        pass  # A value that does not fit its kind is shown as it is stored.
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


_KINDS = {
    "indications": "indications",
    "areas": "areas",
    "classes": "classes",
    "sessions": "sessions",
    "after_sessions": "sessions",
    "maintenance_months": "months",
    "price_per_session": "money",
    "comparison": "comparison",
    "tolerance_days": "days",
    "injections": "injections",
    "wait_hours": "hours",
    "expected_hours": "hours",
    "hours": "hours",
    "numbing_cream_minutes": "minutes",
    "urgent_from_grade": "grade",
}


def kind_of(path: Path) -> str:
    if path == ("cadence", "days"):
        return "cadence"
    return _KINDS.get(str(path[-1]), "text")


_LABELS: dict[Path, str] = {
    ("indications",): "Indications",
    ("areas",): "Treatment areas",
    ("classes",): "Classes of ingredient injected",
    ("sessions",): "Sessions in a course",
    ("cadence", "days"): "Days between sessions",
    ("cadence", "tolerance_days"): "Days a session may fall early or late",
    ("allergy_test", "injections"): "Allergy test: test injections",
    ("allergy_test", "wait_hours"): "Allergy test: wait before the reading",
    ("before_session", "numbing_cream_minutes"): "Numbing cream: minutes before injecting",
    ("maintenance_months",): "Maintenance sessions after the course",
    ("price_per_session",): "Price per session",
    ("comparison",): "Price comparison",
    ("insurance",): "Insurance",
    ("downtime",): "Downtime",
    ("durability",): "How long results last",
    ("urgent_from_grade",): "Any side effect is urgent from CTCAE",
}


def label_of(path: Path, document: dict[str, Any]) -> str:
    """A field path in words: "Sessions in a course", "Soreness: how long it lasts"."""
    if path in _LABELS:
        return _LABELS[path]
    if len(path) >= 2 and isinstance(path[1], int):
        item = get(document, path[:2]) or {}
        name = item.get("label") or item.get("topic") or str(item.get("key", path[1]))
        rest = path[2:]
        if path[0] == "milestones" and rest == ("after_sessions",):
            return f"{name}: after how many sessions"
        if path[0] == "side_effects" and rest == ("expected_hours",):
            return f"{name}: how long it is expected to last"
        if path[0] == "aftercare" and rest == ("hours",):
            return f"Aftercare “{name}”: for how long"
        return " · ".join([name, *(str(p) for p in rest)])
    return " · ".join(str(p).replace("_", " ") for p in path).capitalize()


def dotted(path: Path) -> str:
    """The path as the loader names it in a problem: "milestones[0].after_sessions"."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (("." if out else "") + p)
    return out


@dataclass(frozen=True)
class SourceWords:
    kind: str  # "seed", "reference" or "none"
    text: str  # the seed's title, the reference as written, or "No source"
    file: str = ""  # the seed's file name
    number: str = ""  # "002"

    @property
    def short(self) -> str:
        # People see an article by its title, never by its number alone.
        return self.text


def source_words(sources: list[str] | str | None) -> list[SourceWords]:
    if isinstance(sources, str):
        sources = [sources]
    out = []
    for s in sources or []:
        if s in SEEDS:
            out.append(SourceWords("seed", SEED_LABELS[s], file=s, number=s[:3]))
        elif s == NO_SOURCE:
            out.append(SourceWords("none", "No source"))
        else:
            out.append(SourceWords("reference", reference_words(s)))
    return out


def has_source(sources: list[str] | None) -> bool:
    return bool(sources) and NO_SOURCE not in (sources or [])


# Reading a whole document as rows of facts.


@dataclass
class Choice:
    """One sourced value: the only one of a plain fact, or one option of a disputed one."""

    key: str
    value: str
    sources: list[SourceWords]
    note: str = ""
    chosen: bool = True
    own: bool = False  # the clinic's own value

    @property
    def unsourced(self) -> bool:
        return any(s.kind == "none" for s in self.sources)

    @property
    def option_label(self) -> str:
        if self.own:
            return "The clinic's own value"
        if self.key == SOURCED_OPTION:
            return "as its source gives it"
        # An option's key ("sessions_2_3") is the data's name for it, not a person's: the
        # option is told apart by its value and its sources, shown beside it.
        return "as its sources give it" if len(self.sources) > 1 else "as its source gives it"

    @property
    def source_line(self) -> str:
        return ", ".join(s.short for s in self.sources)


@dataclass
class FactRow:
    path: str
    label: str
    choices: list[Choice]
    listed_by: list[SourceWords] = field(default_factory=list)

    @property
    def disputed(self) -> bool:
        return len(self.choices) > 1

    @property
    def has_own(self) -> bool:
        return any(c.own for c in self.choices)


@dataclass
class Section:
    title: str
    rows: list[FactRow]


def get(document: Any, path: Path) -> Any:
    node = document
    for p in path:
        try:
            node = node[p]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def fact_choices(fact: dict[str, Any], kind: str) -> list[Choice]:
    """The choices of a fact, the chosen one marked; the clinic's own value last."""
    if "options" not in fact:
        return [
            Choice(
                key="",
                value=words(kind, fact.get("value")),
                sources=source_words(fact.get("source")),
                note=name_sources(fact.get("note", "")),
            )
        ]
    out = [
        Choice(
            key=key,
            value=words(kind, option.get("value")),
            sources=source_words(option.get("source")),
            note=name_sources(option.get("note", "")),
            chosen=key == fact.get("choose"),
            own=key == CLINIC_OPTION,
        )
        for key, option in fact["options"].items()
    ]
    return sorted(out, key=lambda c: c.own)


def _fact_row(document: dict[str, Any], path: Path) -> FactRow | None:
    fact = get(document, path)
    if not isinstance(fact, dict):
        return None
    return FactRow(dotted(path), label_of(path, document), fact_choices(fact, kind_of(path)))


def text_row(path: Path, label: str, text: str, sources: Any) -> FactRow:
    return FactRow(dotted(path), label, [Choice("", name_sources(text), source_words(sources))])


def sections(document: dict[str, Any]) -> list[Section]:
    """Every fact of a protocol document, grouped as a reader looks for them."""

    def facts(*paths: Path) -> list[FactRow]:
        return [row for p in paths if (row := _fact_row(document, p)) is not None]

    milestones = []
    for i, m in enumerate(document.get("milestones", [])):
        row = _fact_row(document, ("milestones", i, "after_sessions"))
        if row is not None:
            if m.get("improvement_percent") is not None and "%" not in row.label:
                row.label += f" (about {num(m['improvement_percent'])} % improvement)"
            milestones.append(row)

    before = [
        text_row(
            ("before_session", "instructions", i), "Before a session", ins["text"], ins["source"]
        )
        for i, ins in enumerate(get(document, ("before_session", "instructions")) or [])
    ]

    effects = []
    for i, s in enumerate(document.get("side_effects", [])):
        if s.get("expected_hours") is not None:
            row = _fact_row(document, ("side_effects", i, "expected_hours"))
            assert row is not None
            listed = source_words(s.get("source"))
            if any(c.sources != listed for c in row.choices):
                row.listed_by = listed
        else:
            text = "Always urgent: an urgent follow-up is opened" if s.get("urgent") else ""
            row = text_row(("side_effects", i), s.get("label", ""), text, s.get("source"))
        effects.append(row)

    aftercare = []
    for i, rule in enumerate(document.get("aftercare", [])):
        text = str(rule.get("text", ""))
        if rule.get("areas"):
            text += f" (only after sessions on: {words('areas', rule['areas']).lower()})"
        hours = rule.get("hours")
        if isinstance(hours, dict):
            choices = fact_choices(hours, "hours")
            for c in choices:
                c.value = text.replace("{until}", f"{c.value} after the session")
            listed = source_words(rule.get("source"))
            same = all(c.sources == listed for c in choices)
            aftercare.append(
                FactRow(dotted(("aftercare", i)), "Aftercare", choices, [] if same else listed)
            )
        else:
            aftercare.append(text_row(("aftercare", i), "Aftercare", text, rule.get("source")))

    overridable = document.get("overridable") or []
    gates = FactRow(
        "overridable",
        "Gates a practitioner may override, with a reason",
        [
            Choice(
                "",
                # Each gate by what it refuses ("too soon after the last session"), not its key.
                "; ".join(_gate_words(g) for g in overridable) or "none",
                [],
                note="The clinic's setting; a recalled lot can never be overridden.",
            )
        ],
    )
    notes = [
        text_row(("notes", i), n.get("topic", ""), n.get("text", ""), n.get("source"))
        for i, n in enumerate(document.get("notes", []))
    ]
    return [
        Section("What it treats", facts(("indications",), ("areas",), ("classes",))),
        Section(
            "The course",
            facts(("sessions",), ("cadence", "days"), ("cadence", "tolerance_days"))
            + milestones
            + facts(("maintenance_months",), ("durability",)),
        ),
        Section(
            "Before treatment",
            facts(("allergy_test", "injections"), ("allergy_test", "wait_hours"))
            + before
            + facts(("before_session", "numbing_cream_minutes")),
        ),
        Section("Cost", facts(("price_per_session",), ("comparison",), ("insurance",))),
        Section(
            "Side effects and aftercare",
            facts(("downtime",)) + effects + facts(("urgent_from_grade",)) + aftercare,
        ),
        Section("Safety gates", [gates]),
        Section("Notes for the record", notes),
    ]


def option_paths(document: Any, path: Path = ()) -> list[Path]:
    """The path of every fact whose sources disagree (it has `options` and `choose`)."""
    found: list[Path] = []
    if isinstance(document, dict):
        if isinstance(document.get("options"), dict) and "choose" in document:
            return [path]
        for key, value in document.items():
            found += option_paths(value, (*path, key))
    elif isinstance(document, list):
        for i, value in enumerate(document):
            found += option_paths(value, (*path, i))
    return found


def changed_paths(before: Any, after: Any, path: Path = ()) -> list[str]:
    """The facts that differ between two documents, as the loader would name them."""
    if isinstance(before, dict) and isinstance(after, dict):
        if "value" in before or "options" in before or "value" in after or "options" in after:
            return [] if before == after else [dotted(path)]
        out: list[str] = []
        for key in sorted(set(before) | set(after), key=str):
            out += changed_paths(before.get(key), after.get(key), (*path, key))
        return out
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        out = []
        for i, (b, a) in enumerate(zip(before, after, strict=True)):
            out += changed_paths(b, a, (*path, i))
        return out
    return [] if before == after else [dotted(path) or "(top level)"]


def _gate_words(code: str) -> str:
    """A gate as people read it: its refusal's label ("too soon after the last session")."""
    label = dict(RefusalCode.choices).get(code)
    return label[:1].lower() + label[1:] if label else code.replace("_", " ")
