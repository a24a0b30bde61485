"""The shape of a protocol file, validated with pydantic.

Every clinical fact is a `Fact`: a value with its source, or, where the seeds disagree,
several sourced options and the one the clinic has chosen.
"""

from __future__ import annotations

import re
from typing import Annotated, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from mesoclinic.protocols.vocab import (
    NEVER_OVERRIDABLE,
    NO_SOURCE,
    SEEDS,
    Area,
    Indication,
    IngredientClass,
    RefusalCode,
)

T = TypeVar("T")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_sources(sources: list[str]) -> list[str]:
    if not sources:
        raise ValueError(f'give at least one source, or "{NO_SOURCE}"')
    for source in sources:
        if not source.strip():
            raise ValueError("a source may not be blank")
        looks_like_file = re.match(r"^\d{2,3}_", source) or source.endswith(".txt")
        if looks_like_file and source not in SEEDS:
            raise ValueError(f"{source!r} is not one of the seed files: {', '.join(SEEDS)}")
    return sources


def _listify(v: object) -> object:
    return [v] if isinstance(v, str) else v


# A list of sources: seed file names, references written out, or "no source".
Sources = Annotated[list[str], BeforeValidator(_listify), AfterValidator(_check_sources)]


def _needs_note(source: list[str], note: str) -> None:
    if NO_SOURCE in source and not note.strip():
        raise ValueError(
            f'a value with "{NO_SOURCE}" needs a note saying what the clinic should set'
        )


class Sourced(Strict, Generic[T]):
    value: T
    source: Sources
    note: str = ""

    @model_validator(mode="after")
    def _noted(self) -> Sourced[T]:
        _needs_note(self.source, self.note)
        return self

    @property
    def has_source(self) -> bool:
        return self.source != [NO_SOURCE]


class Fact(Strict, Generic[T]):
    """Either `value` + `source`, or `options` (each sourced) + `choose` naming one of them."""

    value: T | None = None
    source: Sources | None = None
    note: str = ""
    options: dict[str, Sourced[T]] | None = None
    choose: str | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Fact[T]:
        if self.options is None:
            if self.value is None or self.source is None:
                raise ValueError("give value and source, or options and choose")
            _needs_note(self.source, self.note)
        else:
            if self.value is not None or self.source is not None:
                raise ValueError("a fact with options gives each option its own value and source")
            if self.choose not in self.options:
                raise ValueError(f"choose must name one of the options: {', '.join(self.options)}")
        return self

    @property
    def chosen(self) -> Sourced[T]:
        if self.options is not None:
            assert self.choose is not None
            return self.options[self.choose]
        assert self.value is not None and self.source is not None
        return Sourced[T](value=self.value, source=self.source, note=self.note)

    @property
    def v(self) -> T:
        # The value itself, without building (and validating) the Sourced that `chosen`
        # makes: pages read facts of every course on every load.
        if self.options is not None:
            assert self.choose is not None
            return self.options[self.choose].value
        assert self.value is not None
        return self.value


class Range(Strict):
    min: float = Field(ge=0, le=1_000_000)
    max: float = Field(ge=0, le=1_000_000)

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.min > self.max:
            raise ValueError(f"min ({self.min:g}) is above max ({self.max:g})")
        return self


class IntRange(Strict):
    # Session counts, months and milestones: a course has at most 60 sessions.
    min: int = Field(ge=0, le=60)
    max: int = Field(ge=0, le=60)

    @model_validator(mode="after")
    def _ordered(self) -> IntRange:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self


class Money(Strict):
    min: float = Field(ge=0, le=10_000_000)
    max: float = Field(ge=0, le=10_000_000)
    currency: str = Field(pattern=r"^[A-Z]{3}$")

    @model_validator(mode="after")
    def _ordered(self) -> Money:
        if self.min > self.max:
            raise ValueError(f"min ({self.min:g}) is above max ({self.max:g})")
        return self


class Comparison(Strict):
    label: str = Field(max_length=200)
    amount: float = Field(ge=0, le=10_000_000)
    currency: str = Field(pattern=r"^[A-Z]{3}$")


class Cadence(Strict):
    days: Fact[Annotated[list[Literal[7, 14]], Field(min_length=1)]]
    tolerance_days: Fact[int]

    @field_validator("tolerance_days")
    @classmethod
    def _tolerance(cls, v: Fact[int]) -> Fact[int]:
        if not 0 <= v.v <= 6:
            raise ValueError("tolerance_days must be between 0 and 6, inside the weekly cadence")
        return v


class AllergyTest(Strict):
    injections: Fact[Annotated[int, Field(ge=1, le=10)]]
    wait_hours: Fact[Annotated[int, Field(ge=1, le=24 * 14)]]


class Instruction(Strict):
    key: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    text: str
    source: Sources


class BeforeSession(Strict):
    instructions: list[Instruction]
    numbing_cream_minutes: Fact[Annotated[int, Field(ge=0, le=240)]]


Minutes = Annotated[int, Field(ge=5, le=8 * 60)]


class Visits(Strict):
    """How long each kind of visit is booked for, in minutes. A session (and a maintenance
    session) takes `session_minutes` for one area plus `extra_area_minutes` for each other area;
    scheduling.logic.duration() does the sum."""

    allergy_test_minutes: Fact[Minutes]
    test_reading_minutes: Fact[Minutes]
    session_minutes: Fact[Minutes]
    extra_area_minutes: Fact[Annotated[int, Field(ge=0, le=4 * 60)]]
    review_minutes: Fact[Minutes]


class Milestone(Strict):
    """An expected point on the way, e.g. first visible results after 2–3 sessions."""

    key: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: str
    after_sessions: Fact[IntRange]
    improvement_percent: float | None = Field(default=None, ge=0, le=100)


class SideEffectKind(Strict):
    key: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: str
    urgent: bool = False
    # Up to a year: beyond that a side effect is not an expected one.
    expected_hours: Fact[Annotated[float, Field(gt=0, le=24 * 365)]] | None = None
    source: Sources

    @model_validator(mode="after")
    def _duration(self) -> SideEffectKind:
        if not self.urgent and self.expected_hours is None:
            raise ValueError("a side effect that is not urgent needs expected_hours")
        if self.expected_hours is not None and self.expected_hours.v <= 0:
            raise ValueError("expected_hours must be above zero")
        return self


class AftercareRule(Strict):
    """One aftercare instruction. `hours` makes it timed ("until 18:30"); `areas` limits it
    to sessions that treated one of those areas (the facial makeup rule)."""

    key: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    text: str
    hours: Fact[Annotated[float, Field(gt=0, le=24 * 90)]] | None = None
    areas: list[Area] | None = None
    source: Sources

    @model_validator(mode="after")
    def _placeholder(self) -> AftercareRule:
        if self.hours is not None and "{until}" not in self.text:
            raise ValueError("a timed rule's text must contain {until}")
        if self.hours is None and "{until}" in self.text:
            raise ValueError("text uses {until} but the rule has no hours")
        return self


class Note(Strict):
    topic: str
    text: str
    source: Sources


class Protocol(Strict):
    key: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=60)
    name: str = Field(min_length=1, max_length=200)
    version: int = Field(ge=1, le=1_000_000)
    summary: str = ""
    indications: Fact[Annotated[list[Indication], Field(min_length=1)]]
    areas: Fact[Annotated[list[Area], Field(min_length=1)]]
    classes: Fact[list[IngredientClass]]
    sessions: Fact[IntRange]
    cadence: Cadence
    allergy_test: AllergyTest
    before_session: BeforeSession
    # Optional so that a clinic's copy saved before visit lengths existed still loads;
    # scheduling then takes the lengths from the shipped file with the same key.
    visits: Visits | None = None
    milestones: list[Milestone]
    maintenance_months: Fact[IntRange]
    price_per_session: Fact[Money]
    comparison: Fact[Comparison] | None = None
    insurance: Fact[str]
    downtime: Fact[str]
    durability: Fact[str]
    side_effects: list[SideEffectKind]
    urgent_from_grade: Fact[int]
    aftercare: list[AftercareRule]
    overridable: list[RefusalCode] = []
    notes: list[Note] = []

    @field_validator("sessions")
    @classmethod
    def _sessions(cls, v: Fact[IntRange]) -> Fact[IntRange]:
        if v.v.min < 1:
            raise ValueError("a course has at least one session")
        return v

    @field_validator("overridable")
    @classmethod
    def _overridable(cls, v: list[RefusalCode]) -> list[RefusalCode]:
        forbidden = sorted(NEVER_OVERRIDABLE & {c.value for c in v})
        if forbidden:
            raise ValueError(f"{', '.join(forbidden)} can never be overridden")
        return v

    @field_validator("urgent_from_grade")
    @classmethod
    def _grade(cls, v: Fact[int]) -> Fact[int]:
        if not 1 <= v.v <= 5:
            raise ValueError("a CTCAE grade is between 1 and 5")
        return v

    @model_validator(mode="after")
    def _unique_keys(self) -> Protocol:
        for name, items in (("side_effects", self.side_effects), ("aftercare", self.aftercare)):
            keys = [i.key for i in items]
            dupes = sorted({k for k in keys if keys.count(k) > 1})
            if dupes:
                raise ValueError(f"{name} repeats the key {', '.join(dupes)}")
        if "other" in {s.key for s in self.side_effects}:
            raise ValueError('side_effects may not define "other": it is built in')
        return self

    def side_effect(self, key: str) -> SideEffectKind | None:
        return next((s for s in self.side_effects if s.key == key), None)
