"""Reading a clinic's protocol in words, and the forms a manager edits it with.

A protocol document is the JSON a `ClinicProtocol` stores, in the shape of a protocol file
(docs/protocols.md). Every fact is a value with its source, or several sourced options and
the one the clinic chose. Editing keeps that honest:

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
"""

from __future__ import annotations

import copy
import json
import tomllib
from dataclasses import dataclass, field
from typing import Any

from django import forms

from mesoclinic.protocols.models import ClinicProtocol
from mesoclinic.protocols.vocab import NO_SOURCE, SEEDS, Area, Indication, IngredientClass

CLINIC_OPTION = "clinic"  # The option a clinic's own value is saved under.
SOURCED_OPTION = "sourced"  # A single sourced value, once it becomes one option of several.
OWN = "own"  # The radio button for "the clinic's own value".

Path = tuple[str | int, ...]


# Words: how a value, a source and a field path read on a page.


def _num(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.2f}".rstrip("0").rstrip(".")


def _span(lo: float, hi: float) -> str:
    return _num(lo) if lo == hi else f"{_num(lo)}–{_num(hi)}"


def _plural(n: float, one: str, many: str) -> str:
    return one if n == 1 else many


def duration(hours: float) -> str:
    """0.25 → "15 min", 8 → "8 h", 48 → "2 days"."""
    if hours < 1:
        return f"{round(hours * 60)} min"
    if hours >= 48 and hours % 24 == 0:
        return f"{_num(hours / 24)} days"
    return f"{_num(hours)} h"


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
            return f"{value['label']}: {value['currency']} {_num(value['amount'])}"
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
        item = _get(document, path[:2]) or {}
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
        return self.number or self.text


def source_words(sources: list[str] | str | None) -> list[SourceWords]:
    if isinstance(sources, str):
        sources = [sources]
    out = []
    for s in sources or []:
        if s in SEEDS:
            out.append(SourceWords("seed", SEEDS[s], file=s, number=s[:3]))
        elif s == NO_SOURCE:
            out.append(SourceWords("none", "No source"))
        else:
            out.append(SourceWords("reference", s))
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
        return self.key.replace("_", " ")

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


def _get(document: Any, path: Path) -> Any:
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
                note=fact.get("note", ""),
            )
        ]
    out = [
        Choice(
            key=key,
            value=words(kind, option.get("value")),
            sources=source_words(option.get("source")),
            note=option.get("note", ""),
            chosen=key == fact.get("choose"),
            own=key == CLINIC_OPTION,
        )
        for key, option in fact["options"].items()
    ]
    return sorted(out, key=lambda c: c.own)


def _fact_row(document: dict[str, Any], path: Path) -> FactRow | None:
    fact = _get(document, path)
    if not isinstance(fact, dict):
        return None
    return FactRow(dotted(path), label_of(path, document), fact_choices(fact, kind_of(path)))


def _text_row(path: Path, label: str, text: str, sources: Any) -> FactRow:
    return FactRow(dotted(path), label, [Choice("", text, source_words(sources))])


def sections(document: dict[str, Any]) -> list[Section]:
    """Every fact of a protocol document, grouped as a reader looks for them."""

    def facts(*paths: Path) -> list[FactRow]:
        return [row for p in paths if (row := _fact_row(document, p)) is not None]

    milestones = []
    for i, m in enumerate(document.get("milestones", [])):
        row = _fact_row(document, ("milestones", i, "after_sessions"))
        if row is not None:
            if m.get("improvement_percent") is not None and "%" not in row.label:
                row.label += f" (about {_num(m['improvement_percent'])} % improvement)"
            milestones.append(row)

    before = [
        _text_row(
            ("before_session", "instructions", i), "Before a session", ins["text"], ins["source"]
        )
        for i, ins in enumerate(_get(document, ("before_session", "instructions")) or [])
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
            row = _text_row(("side_effects", i), s.get("label", ""), text, s.get("source"))
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
            aftercare.append(_text_row(("aftercare", i), "Aftercare", text, rule.get("source")))

    overridable = document.get("overridable") or []
    gates = FactRow(
        "overridable",
        "Gates a practitioner may override, with a reason",
        [
            Choice(
                "",
                ", ".join(g.replace("_", " ") for g in overridable) or "none",
                [],
                note="The clinic's setting; a recalled lot can never be overridden.",
            )
        ],
    )
    notes = [
        _text_row(("notes", i), n.get("topic", ""), n.get("text", ""), n.get("source"))
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


def _own_note(kind: str, fact: dict[str, Any]) -> tuple[Any, str]:
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


def _plain(x: Any) -> Any:
    """500.0 → 500, so an input shows the number as a person would write it."""
    return int(x) if isinstance(x, float) and x.is_integer() else x


def _radio_label(choice: Choice) -> str:
    return f"{choice.value} · {choice.source_line or 'no source'}"


@dataclass
class EditGroup:
    """One fact on the edit form: what it is now, the options to pick, the clinic's own."""

    editable: Editable | None
    path: str
    label: str
    choices: list[Choice]
    picks: list[tuple[Any, Choice | None]]  # (radio widget, the choice it stands for)
    inputs: list[forms.BoundField]
    note: forms.BoundField | None
    in_place: bool
    errors: list[str] = field(default_factory=list)

    @property
    def own(self) -> Choice | None:
        """The clinic's own value as saved now, if it has one."""
        return next((c for c in self.choices if c.own), None)


class ProtocolValuesForm(forms.Form):
    """The values a clinic adjusts, each beside its source. Build it with the version being
    edited; `new_document()` gives the edited document once the form is valid."""

    name = forms.CharField(max_length=200, label="Name")
    summary = forms.CharField(
        required=False, label="Summary", widget=forms.Textarea(attrs={"rows": 2})
    )
    new_note_topic = forms.CharField(max_length=200, required=False, label="Topic")
    new_note_text = forms.CharField(
        required=False, label="Text", widget=forms.Textarea(attrs={"rows": 2})
    )
    change_note = forms.CharField(
        max_length=300,
        label="What changed and why",
        help_text="Kept with the version, for the record.",
    )
    base_version = forms.IntegerField(widget=forms.HiddenInput)

    def __init__(self, data: Any = None, *, current: ClinicProtocol) -> None:
        self.current = current
        self.document: dict[str, Any] = copy.deepcopy(current.document)
        initial: dict[str, Any] = {
            "name": self.document.get("name", ""),
            "summary": self.document.get("summary", ""),
            "base_version": current.version,
        }
        super().__init__(data, initial=initial)
        self.editables: list[Editable] = []
        for e in EDITABLE:
            fact = _get(self.document, e.path)
            if isinstance(fact, dict):
                self.editables.append(e)
                self._add_value_fields(e, fact)
        self.choose_paths = [
            p for p in option_paths(self.document) if p not in {e.path for e in self.editables}
        ]
        for p in self.choose_paths:
            fact = _get(self.document, p)
            choices = fact_choices(fact, kind_of(p))
            self.fields[self._choose_name(p)] = forms.ChoiceField(
                label=label_of(p, self.document),
                choices=[(c.key, _radio_label(c)) for c in choices],
                initial=fact["choose"],
                widget=forms.RadioSelect,
            )
        self.own_notes = [
            i
            for i, n in enumerate(self.document.get("notes", []))
            if n.get("source") == [NO_SOURCE]
        ]
        for i in self.own_notes:
            note = self.document["notes"][i]
            self.fields[f"note-{i}-text"] = forms.CharField(
                label=note.get("topic", ""),
                initial=note.get("text", ""),
                widget=forms.Textarea(attrs={"rows": 2}),
                required=False,
                help_text="Leave empty to remove this note.",
            )

    @staticmethod
    def _choose_name(path: Path) -> str:
        return "choose-" + "-".join(str(p) for p in path)

    def _add_value_fields(self, e: Editable, fact: dict[str, Any]) -> None:
        p = e.prefix
        own, note = _own_note(e.kind, fact)
        in_place = "options" not in fact and not has_source(fact.get("source"))
        current = fact.get("value") if "options" not in fact else None
        shown = own if own is not None else current
        if shown is None:
            shown = fact["options"][fact["choose"]]["value"]
        if not in_place:
            choices = [c for c in fact_choices(fact, e.kind) if not c.own]
            if "options" not in fact:
                choices[0].key = SOURCED_OPTION
            picked = fact.get("choose", SOURCED_OPTION)
            self.fields[f"{p}-pick"] = forms.ChoiceField(
                label=label_of(e.path, self.document),
                choices=[(c.key, _radio_label(c)) for c in choices]
                + [(OWN, "The clinic's own value")],
                initial=OWN if picked == CLINIC_OPTION else picked,
                widget=forms.RadioSelect,
            )
        if e.kind in ("sessions", "months", "money"):
            number: type[forms.Field] = (
                forms.DecimalField if e.kind == "money" else forms.IntegerField
            )
            narrow = forms.NumberInput(attrs={"style": "width: 8rem"})
            bounds: dict[str, Any] = (
                {"min_value": 0, "max_value": 10_000_000, "decimal_places": 2}
                if e.kind == "money"
                else {"min_value": e.low, "max_value": e.high}
            )
            self.fields[f"{p}-min"] = number(
                label="From",
                required=False,
                initial=_plain(shown.get("min")),
                widget=narrow,
                **bounds,
            )
            self.fields[f"{p}-max"] = number(
                label="To",
                required=False,
                initial=_plain(shown.get("max")),
                widget=narrow,
                **bounds,
            )
            if e.kind == "money":
                self.fields[f"{p}-currency"] = forms.RegexField(
                    regex=r"^[A-Za-z]{3}$",
                    label="Currency",
                    required=False,
                    initial=shown.get("currency"),
                    widget=forms.TextInput(attrs={"style": "width: 5.5rem"}),
                    error_messages={"invalid": "Three letters, e.g. USD or EUR."},
                )
        elif e.kind == "cadence":
            self.fields[f"{p}-days"] = forms.TypedMultipleChoiceField(
                label="Every",
                choices=[(7, "7 days (weekly)"), (14, "14 days (every other week)")],
                coerce=int,
                required=False,
                initial=shown,
                widget=forms.CheckboxSelectMultiple,
            )
        else:
            self.fields[f"{p}-value"] = forms.IntegerField(
                label="Days",
                required=False,
                initial=shown,
                min_value=e.low,
                max_value=e.high,
                widget=forms.NumberInput(attrs={"style": "width: 8rem"}),
            )
        self.fields[f"{p}-note"] = forms.CharField(
            label="Note" if not in_place else "Note (required: no source gives this value)",
            required=False,
            initial=note,
            max_length=1000,
            widget=forms.Textarea(attrs={"rows": 2}),
            help_text=(
                "Required when the value is outside what its sources give: say why the clinic "
                "chose it."
                if not in_place
                else "Why the clinic set this value."
            ),
        )

    def _inputs(self, e: Editable) -> list[str]:
        p = e.prefix
        if e.kind in ("sessions", "months"):
            return [f"{p}-min", f"{p}-max"]
        if e.kind == "money":
            return [f"{p}-min", f"{p}-max", f"{p}-currency"]
        if e.kind == "cadence":
            return [f"{p}-days"]
        return [f"{p}-value"]

    def _own_value(self, e: Editable) -> Any:
        """The value typed in for `e`, or None (with a form error) when it is incomplete."""
        data = self.cleaned_data
        p = e.prefix
        if e.kind in ("sessions", "months", "money"):
            lo, hi = data.get(f"{p}-min"), data.get(f"{p}-max")
            missing = [n for n, v in ((f"{p}-min", lo), (f"{p}-max", hi)) if v is None]
            if e.kind == "money" and not data.get(f"{p}-currency"):
                missing.append(f"{p}-currency")
            for name in missing:
                if name not in self.errors:
                    self.add_error(name, "Give the clinic's own value here.")
            if missing or lo is None or hi is None:
                return None
            if lo > hi:
                self.add_error(f"{p}-max", f"{_num(hi)} is below {_num(lo)}.")
                return None
            if e.kind == "money":
                return {
                    "min": float(lo),
                    "max": float(hi),
                    "currency": str(data[f"{p}-currency"]).upper(),
                }
            return {"min": lo, "max": hi}
        if e.kind == "cadence":
            days = sorted(data.get(f"{p}-days") or [])
            if not days:
                self.add_error(f"{p}-days", "Choose at least one cadence.")
                return None
            return days
        value = data.get(f"{p}-value")
        if value is None:
            if f"{p}-value" not in self.errors:
                self.add_error(f"{p}-value", "Give the clinic's own value here.")
            return None
        return value

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        self.edits: dict[tuple[str, ...], dict[str, Any]] = {}
        for e in self.editables:
            fact = _get(self.document, e.path)
            p = e.prefix
            in_place = f"{p}-pick" not in self.fields
            pick = OWN if in_place else data.get(f"{p}-pick")
            if pick is None:
                continue
            typed = [n for n in self._inputs(e) if n in self.changed_data]
            if pick != OWN and typed:
                # Typing a value but leaving a sourced option picked would drop it silently.
                self.add_error(
                    typed[0],
                    f"{label_of(e.path, self.document)}: to use this value, pick “The clinic's "
                    "own value” above it.",
                )
                continue
            note = str(data.get(f"{p}-note") or "").strip()
            value = None
            if pick == OWN:
                value = self._own_value(e)
                if value is None:
                    continue
                label = label_of(e.path, self.document)
                if in_place and not note:
                    self.add_error(
                        f"{p}-note",
                        f"{label}: no source gives this value, so say why the clinic set it.",
                    )
                    continue
                unchanged = "options" not in fact and value == fact.get("value")
                # Picking an option's exact value chooses that option: it brings its source.
                unchanged = unchanged or any(
                    k != CLINIC_OPTION and o.get("value") == value
                    for k, o in (fact.get("options") or {}).items()
                )
                outside = not in_place and not unchanged and not covering(e.kind, fact, value)
                if outside and not note:
                    given = "; ".join(
                        f"{words(e.kind, o['value'])} from "
                        + ", ".join(s.short for s in source_words(o["source"]))
                        for o in sourced_options(fact).values()
                    )
                    self.add_error(
                        f"{p}-note",
                        f"{label}: {words(e.kind, value)} is outside what the sources give "
                        f"({given or 'none'}). Keep it inside, or say here why the clinic "
                        "chose it: it is then saved as the clinic's own, with no source.",
                    )
                    continue
            self.edits[e.path] = apply_edit(e.kind, fact, pick, value, note)
        return data

    def new_document(self) -> dict[str, Any]:
        """The edited document. Call only when the form is valid."""
        data = self.cleaned_data
        doc = copy.deepcopy(self.document)
        doc["name"] = data["name"].strip()
        doc["summary"] = data["summary"].strip()
        for path, fact in self.edits.items():
            parent = _get(doc, path[:-1]) if len(path) > 1 else doc
            parent[path[-1]] = fact
        for p in self.choose_paths:
            fact = _get(doc, p)
            fact["choose"] = data[self._choose_name(p)]
        notes = doc.get("notes", [])
        for i in self.own_notes:
            notes[i]["text"] = str(data.get(f"note-{i}-text") or "").strip()
        notes = [n for n in notes if n.get("text")]
        topic, text = data["new_note_topic"].strip(), data["new_note_text"].strip()
        if topic or text:
            # A note the clinic writes itself cites nothing, as the schema marks it.
            notes.append({"topic": topic or "Clinic note", "text": text, "source": [NO_SOURCE]})
        doc["notes"] = notes
        return doc

    def clean_new_note_text(self) -> str:
        text = str(self.cleaned_data.get("new_note_text") or "").strip()
        if self.data.get("new_note_topic", "").strip() and not text:
            raise forms.ValidationError("A note needs its text.")
        return text

    def groups(self) -> list[EditGroup]:
        """The facts as the template lays them out, each with its sources beside its inputs."""
        out = []
        for e in self.editables:
            fact = _get(self.document, e.path)
            p = e.prefix
            choices = fact_choices(fact, e.kind)
            picks: list[tuple[Any, Choice | None]] = []
            if f"{p}-pick" in self.fields:
                listed = [c for c in choices if not c.own]
                widgets = list(self[f"{p}-pick"].subwidgets)
                picks = [(w, listed[i] if i < len(listed) else None) for i, w in enumerate(widgets)]
            out.append(
                EditGroup(
                    editable=e,
                    path=dotted(e.path),
                    label=label_of(e.path, self.document),
                    choices=choices,
                    picks=picks,
                    inputs=[self[name] for name in self._inputs(e)],
                    note=self[f"{p}-note"],
                    in_place=f"{p}-pick" not in self.fields,
                )
            )
        return out

    def choose_groups(self) -> list[EditGroup]:
        out = []
        for path in self.choose_paths:
            fact = _get(self.document, path)
            choices = fact_choices(fact, kind_of(path))
            bound = self[self._choose_name(path)]
            out.append(
                EditGroup(
                    editable=None,
                    path=dotted(path),
                    label=label_of(path, self.document),
                    choices=choices,
                    picks=list(zip(bound.subwidgets, choices, strict=False)),
                    inputs=[],
                    note=None,
                    in_place=False,
                    errors=[str(e) for e in bound.errors],
                )
            )
        return out

    def sourced_notes(self) -> list[FactRow]:
        return [
            _text_row(("notes", i), n.get("topic", ""), n.get("text", ""), n.get("source"))
            for i, n in enumerate(self.document.get("notes", []))
            if i not in self.own_notes
        ]

    def own_note_fields(self) -> list[forms.BoundField]:
        return [self[f"note-{i}-text"] for i in self.own_notes]

    def add_problems(self, problems: list[tuple[str, str]]) -> None:
        """Put the loader's problems on the inputs they concern, the rest on the form."""
        for where, message in problems:
            target = None
            for e in self.editables:
                if where == dotted(e.path) or where.startswith(dotted(e.path) + "."):
                    target = self._inputs(e)[0]
            for p in self.choose_paths:
                if where == dotted(p) or where.startswith(dotted(p) + "."):
                    target = self._choose_name(p)
            if where in ("name", "summary"):
                target = where
            self.add_error(target, f"{where}: {message}")


class ProtocolDocumentForm(forms.Form):
    """The whole document as text, for the fields the value form does not offer."""

    document = forms.CharField(
        label="The whole protocol",
        widget=forms.Textarea(
            attrs={
                "rows": 30,
                "spellcheck": "false",
                "style": "font-family: ui-monospace, monospace; font-size: .9rem",
            }
        ),
    )
    change_note = forms.CharField(
        max_length=300,
        label="What changed and why",
        help_text="Kept with the version, for the record.",
    )
    base_version = forms.IntegerField(widget=forms.HiddenInput)

    def __init__(self, data: Any = None, *, current: ClinicProtocol) -> None:
        initial = {
            "document": json.dumps(current.document, indent=2, ensure_ascii=False),
            "base_version": current.version,
        }
        super().__init__(data, initial=initial, prefix="doc")

    def clean_document(self) -> dict[str, Any]:
        text = str(self.cleaned_data["document"]).strip()
        parsed: Any
        if text.startswith("{"):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError as exc:
                raise forms.ValidationError(
                    f"(syntax): not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}."
                ) from None
        else:
            try:
                parsed = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise forms.ValidationError(
                    f"(syntax): neither JSON (it does not start with {{) nor valid TOML: {exc}."
                ) from None
        if not isinstance(parsed, dict):
            raise forms.ValidationError("(top level): the document must be one object.")
        return parsed

    def new_document(self) -> dict[str, Any]:
        document: dict[str, Any] = self.cleaned_data["document"]
        return document

    def add_problems(self, problems: list[tuple[str, str]]) -> None:
        self.add_error("document", [f"{where}: {message}" for where, message in problems])
