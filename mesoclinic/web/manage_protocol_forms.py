"""The forms a manager edits a clinic's protocol with: value by value, each beside its
sources (`ProtocolValuesForm`), or the whole document as text (`ProtocolDocumentForm`).

What a document says in words is `mesoclinic.protocols.describe`; how an edited value keeps
or loses its source is `mesoclinic.protocols.editing`. This module turns those into fields,
radio buttons and form errors.
"""

from __future__ import annotations

import copy
import json
import tomllib
from dataclasses import dataclass, field
from typing import Any

from django import forms

from mesoclinic.lib import limits
from mesoclinic.protocols.describe import (
    CLINIC_OPTION,
    SOURCED_OPTION,
    Choice,
    FactRow,
    Path,
    dotted,
    fact_choices,
    get,
    has_source,
    kind_of,
    label_of,
    num,
    option_paths,
    source_words,
    text_row,
    words,
)
from mesoclinic.protocols.editing import (
    EDITABLE,
    OWN,
    Editable,
    apply_edit,
    covering,
    own_note,
    sourced_options,
)
from mesoclinic.protocols.models import ClinicProtocol
from mesoclinic.protocols.vocab import NO_SOURCE


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


class _SaveForm(forms.Form):
    """What every save of a protocol asks for: why, and which version the editor started
    from (do_edit_protocol refuses the save if another has been saved since)."""

    change_note = forms.CharField(
        max_length=300,
        label="What changed and why",
        help_text="Kept with the version, for the record.",
    )
    base_version = forms.IntegerField(widget=forms.HiddenInput)


class ProtocolValuesForm(_SaveForm):
    """The values a clinic adjusts, each beside its source. Build it with the version being
    edited; `new_document()` gives the edited document once the form is valid."""

    field_order = ["name", "summary", "new_note_topic", "new_note_text", "change_note"]

    name = forms.CharField(max_length=200, label="Name")
    summary = forms.CharField(
        max_length=limits.NOTES,
        required=False,
        label="Summary",
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    new_note_topic = forms.CharField(max_length=200, required=False, label="Topic")
    new_note_text = forms.CharField(
        max_length=limits.NOTES,
        required=False,
        label="Text",
        widget=forms.Textarea(attrs={"rows": 2}),
    )

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
            fact = get(self.document, e.path)
            if isinstance(fact, dict):
                self.editables.append(e)
                self._add_value_fields(e, fact)
        self.choose_paths = [
            p for p in option_paths(self.document) if p not in {e.path for e in self.editables}
        ]
        for p in self.choose_paths:
            fact = get(self.document, p)
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
                max_length=limits.NOTES,
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
        own, note = own_note(e.kind, fact)
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
            narrow = forms.NumberInput(attrs={"class": "narrow-input"})
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
                    widget=forms.TextInput(attrs={"class": "currency-input"}),
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
                widget=forms.NumberInput(attrs={"class": "narrow-input"}),
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
                self.add_error(f"{p}-max", f"{num(hi)} is below {num(lo)}.")
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
            fact = get(self.document, e.path)
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
            parent = get(doc, path[:-1]) if len(path) > 1 else doc
            parent[path[-1]] = fact
        for p in self.choose_paths:
            fact = get(doc, p)
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
            fact = get(self.document, e.path)
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
            fact = get(self.document, path)
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
            text_row(("notes", i), n.get("topic", ""), n.get("text", ""), n.get("source"))
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


class ProtocolDocumentForm(_SaveForm):
    """The whole document as text, for the fields the value form does not offer."""

    field_order = ["document", "change_note"]

    document = forms.CharField(
        max_length=limits.DOCUMENT,
        label="The whole protocol",
        widget=forms.Textarea(
            attrs={
                "rows": 30,
                "spellcheck": "false",
                "class": "code",
            }
        ),
    )

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
