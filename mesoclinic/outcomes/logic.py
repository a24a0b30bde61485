"""Measurements: what a valid one is, and a course's progress from them. Pure: no Django.

`check` turns raw input (from a form or the API) into a clean reading, or names every field
that is wrong and why. `progress` turns a course's measurements, its sessions and its
protocol's milestones into the series a chart draws, with the expected trajectory and the
change from baseline.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from mesoclinic.outcomes import scales

# The product's own sanity bounds, not clinical facts: SPEC gives none. They catch a slip of
# the keyboard (a waist of 820 cm, a weight in grams) and nothing finer.
MAX_CIRCUMFERENCE_CM = Decimal(300)
MAX_WEIGHT_KG = Decimal(400)

# The scales whose lower value is better, and the range each is drawn on.
SCORE_RANGE: dict[str, tuple[int, int]] = {
    scales.HEXSEL: (0, 15),
    scales.NURNBERGER_MULLER: (0, 3),
    scales.GAIS: (1, 5),
    scales.SATISFACTION: (scales.SATISFACTION_MIN, scales.SATISFACTION_MAX),
}
UNITS = {scales.CIRCUMFERENCE: "cm", scales.WEIGHT: "kg"}
KINDS = (
    scales.HEXSEL,
    scales.NURNBERGER_MULLER,
    scales.CIRCUMFERENCE,
    scales.WEIGHT,
    scales.GAIS,
    scales.SATISFACTION,
)


class Invalid(Exception):
    """Every field that is wrong, each with its reason in words."""

    def __init__(self, problems: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in problems.items()))
        self.problems = problems


@dataclass(frozen=True)
class Raw:
    """One measurement as entered. `value` is ignored for Hexsel (the total of `items`)."""

    kind: str
    value: object = None
    site: str = ""
    area: str = ""
    items: Mapping[str, object] | None = None


@dataclass(frozen=True)
class Clean:
    kind: str
    value: Decimal
    unit: str = ""
    site: str = ""
    area: str = ""
    loinc: str = ""
    items: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class CourseFacts:
    """What a measurement is judged against: the course's areas, the local date it was
    created, the clinic's time zone, the sessions charted and the time now."""

    areas: tuple[str, ...]
    created_on: dt.date
    tz: dt.tzinfo
    sessions_at: tuple[dt.datetime, ...]
    now: dt.datetime


def _number(raw: object) -> Decimal | None:
    if raw is None or isinstance(raw, bool):
        return None
    try:
        value = Decimal(str(raw).strip())
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _score(raw: object, low: int, high: int) -> tuple[int | None, str]:
    """An integer score in [low, high], or the reason it is not."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None, "is required."
    number = _number(raw)
    if number is None:
        return None, "must be a number."
    if number != number.to_integral_value():
        return None, f"must be a whole number from {low} to {high}, not {number}."
    if not low <= number <= high:
        return None, f"must be from {low} to {high}, not {number}."
    return int(number), ""


def _measure(raw: object, unit: str, limit: Decimal) -> tuple[Decimal | None, str]:
    """A positive tape or scale reading with at most one decimal, up to the product's bound."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None, "is required."
    number = _number(raw)
    if number is None:
        return None, "must be a number."
    if number <= 0:
        return None, f"must be more than 0 {unit}, not {number}."
    if number > limit:
        return None, (
            f"{number} {unit} is not plausible: this product accepts at most {limit} {unit} "
            "(a sanity bound of the product's own, not a clinical limit)."
        )
    if number != number.quantize(Decimal("0.1")):
        return None, f"give at most one decimal place ({number} {unit})."
    return number, ""


def _area(raw: Raw, facts: CourseFacts, problems: dict[str, str], prefix: str) -> str:
    if raw.area:
        if raw.area not in facts.areas:
            problems[f"{prefix}area"] = (
                f"{raw.area!r} is not one of this course's areas ({', '.join(facts.areas)})."
            )
        return raw.area
    if len(facts.areas) == 1:
        return facts.areas[0]
    problems[f"{prefix}area"] = f"say which area ({', '.join(facts.areas)})."
    return ""


def check_taken_at(taken_at: dt.datetime, facts: CourseFacts) -> dict[str, str]:
    """A measurement belongs to the course: not before the local day it was created (a
    baseline may be taken that same day), and not in the future."""
    problems: dict[str, str] = {}
    if taken_at > facts.now + dt.timedelta(minutes=1):
        problems["taken_at"] = "cannot be in the future."
    elif taken_at.astimezone(facts.tz).date() < facts.created_on:
        problems["taken_at"] = (
            f"is before the course: it starts on {facts.created_on.day} "
            f"{facts.created_on:%b %Y} (its planned first session, or the day it was entered "
            "if earlier), and a measurement from before then belongs to no course."
        )
    return problems


def check(raw: Raw, taken_at: dt.datetime, facts: CourseFacts, prefix: str = "") -> Clean:
    """The clean reading, or Invalid naming every wrong field (each name after `prefix`)."""
    problems: dict[str, str] = {}
    kind = raw.kind
    if kind not in KINDS:
        raise Invalid({f"{prefix}kind": f"{kind!r} is not one of {', '.join(KINDS)}."})
    out: Clean | None = None
    if kind == scales.HEXSEL:
        items = raw.items if isinstance(raw.items, Mapping) else {}
        scores: dict[str, int] = {}
        for key, label in scales.HEXSEL_ITEMS:
            score, why = _score(items.get(key), 0, 3)
            if score is None:
                problems[f"{prefix}items.{key}"] = f"{label} {why}"
            else:
                scores[key] = score
        unknown = sorted(set(items) - {k for k, _ in scales.HEXSEL_ITEMS})
        if unknown:
            problems[f"{prefix}items"] = f"unknown Hexsel items: {', '.join(map(str, unknown))}."
        area = _area(raw, facts, problems, prefix)
        if not problems:
            out = Clean(kind, Decimal(sum(scores.values())), area=area, items=scores)
    elif kind in (scales.NURNBERGER_MULLER, scales.GAIS, scales.SATISFACTION):
        low, high = SCORE_RANGE[kind]
        score, why = _score(raw.value, low, high)
        if score is None:
            problems[f"{prefix}value"] = why
        area = _area(raw, facts, problems, prefix) if kind == scales.NURNBERGER_MULLER else ""
        if kind == scales.GAIS and not any(s <= taken_at for s in facts.sessions_at):
            problems[f"{prefix}kind"] = (
                "GAIS rates the change since the course began, so it is taken at a review "
                "after session 1; this course has no session by then."
            )
        if score is not None and not problems:
            out = Clean(kind, Decimal(score), area=area)
    elif kind == scales.CIRCUMFERENCE:
        site = scales.SITE_BY_KEY.get(raw.site)
        if site is None:
            known = ", ".join(s.key for s in scales.SITES)
            problems[f"{prefix}site"] = f"{raw.site!r} is not a known site ({known})."
        value, why = _measure(raw.value, "cm", MAX_CIRCUMFERENCE_CM)
        if value is None:
            problems[f"{prefix}value"] = why
        if site is not None and value is not None:
            out = Clean(kind, value, unit="cm", site=site.key, loinc=site.loinc)
    else:
        value, why = _measure(raw.value, "kg", MAX_WEIGHT_KG)
        if value is None:
            problems[f"{prefix}value"] = why
        else:
            out = Clean(kind, value, unit="kg")
    if problems or out is None:
        raise Invalid(problems)
    return out


def check_value(kind: str, raw: object) -> Decimal:
    """A corrected value for a measurement of `kind` (not Hexsel, whose total is the sum of
    its items), or Invalid naming the reason under "value"."""
    if kind == scales.HEXSEL:
        raise Invalid(
            {"value": "a Hexsel total is the sum of its five items: record the score again."}
        )
    if kind in SCORE_RANGE:
        score, why = _score(raw, *SCORE_RANGE[kind])
        if score is None:
            raise Invalid({"value": why})
        return Decimal(score)
    unit, limit = (
        ("cm", MAX_CIRCUMFERENCE_CM) if kind == scales.CIRCUMFERENCE else ("kg", MAX_WEIGHT_KG)
    )
    value, why = _measure(raw, unit, limit)
    if value is None:
        raise Invalid({"value": why})
    return value


def check_all(
    raws: Iterable[tuple[str, Raw]], taken_at: dt.datetime, facts: CourseFacts
) -> list[Clean]:
    """Check several readings taken together (one visit): all of them, or Invalid naming
    every wrong field of every reading. Each reading comes with its field prefix."""
    problems = check_taken_at(taken_at, facts)
    out: list[Clean] = []
    for prefix, raw in raws:
        try:
            out.append(check(raw, taken_at, facts, prefix))
        except Invalid as e:
            problems.update(e.problems)
    if not out and not problems:
        problems["measurements"] = "enter at least one measurement."
    if problems:
        raise Invalid(problems)
    return out


# Progress -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    """A measurement as progress reads it."""

    kind: str
    value: Decimal
    taken_at: dt.datetime
    site: str = ""
    area: str = ""


@dataclass(frozen=True)
class MilestoneFacts:
    label: str
    after_min: int
    after_max: int
    improvement_percent: float | None
    sources: tuple[str, ...]  # already in words (protocols.vocab.describe_source)


@dataclass(frozen=True)
class SeriesPoint:
    sessions: int  # sessions done when it was taken: 0 is the baseline
    value: Decimal
    day: dt.date

    def as_dict(self) -> dict[str, object]:
        return {"sessions": self.sessions, "value": float(self.value), "date": self.day}


@dataclass(frozen=True)
class Trajectory:
    """The protocol's expected course of one series, from its baseline."""

    label: str
    sources: tuple[str, ...]
    points: tuple[tuple[int, Decimal], ...]  # (sessions done, expected value)

    def as_dict(self) -> dict[str, object]:
        return {
            "label": self.label,
            "sources": list(self.sources),
            "points": [{"sessions": n, "value": float(v)} for n, v in self.points],
        }


@dataclass(frozen=True)
class Series:
    key: str  # "hexsel_css:thighs", "circumference:waist", "weight"
    kind: str
    label: str
    unit: str
    points: tuple[SeriesPoint, ...]
    trajectory: Trajectory | None
    range: tuple[Decimal, Decimal]  # the y axis, low to high

    @property
    def baseline(self) -> SeriesPoint:
        return self.points[0]

    @property
    def latest(self) -> SeriesPoint:
        return self.points[-1]

    @property
    def change(self) -> Decimal:
        return self.latest.value - self.baseline.value

    @property
    def change_percent(self) -> Decimal | None:
        if not self.baseline.value:
            return None
        return (self.change * 100 / self.baseline.value).quantize(Decimal("0.1"))

    def as_dict(self) -> dict[str, object]:
        percent = self.change_percent
        return {
            "key": self.key,
            "kind": self.kind,
            "label": self.label,
            "unit": self.unit,
            "points": [p.as_dict() for p in self.points],
            "baseline": float(self.baseline.value),
            "latest": float(self.latest.value),
            "change": float(self.change),
            "change_percent": float(percent) if percent is not None else None,
            "trajectory": self.trajectory.as_dict() if self.trajectory else None,
        }


@dataclass(frozen=True)
class Progress:
    series: tuple[Series, ...]
    sessions_done: int
    sessions_planned: int
    # Why no trajectory is drawn, in words, when the protocol gives none.
    no_trajectory: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "sessions_done": self.sessions_done,
            "sessions_planned": self.sessions_planned,
            "series": [s.as_dict() for s in self.series],
            "no_trajectory": self.no_trajectory,
        }


NO_TRAJECTORY = "This protocol gives no expected trajectory, so none is drawn."
TRAJECTORY_KINDS = (scales.HEXSEL,)


def _sessions_done(at: dt.datetime, sessions_at: list[dt.datetime]) -> int:
    return sum(1 for s in sessions_at if s <= at)


def _trajectory(baseline: Decimal, milestones: Iterable[MilestoneFacts]) -> Trajectory | None:
    """The expected value after each milestone that gives an improvement: baseline lowered by
    that percentage, reached after the milestone's fewest sessions. Several such milestones
    make a line through each; none, no trajectory."""
    steps = sorted(
        (m for m in milestones if m.improvement_percent is not None), key=lambda m: m.after_min
    )
    if not steps:
        return None
    points: list[tuple[int, Decimal]] = [(0, baseline)]
    for m in steps:
        factor = Decimal(1) - Decimal(str(m.improvement_percent)) / 100
        points.append((m.after_min, (baseline * factor).quantize(Decimal("0.1"))))
    sources = tuple(dict.fromkeys(s for m in steps for s in m.sources))
    label = "; ".join(
        f"{m.label}, after {m.after_min}"
        + (f"–{m.after_max}" if m.after_max != m.after_min else "")
        + " sessions"
        for m in steps
    )
    return Trajectory(label=label, sources=sources, points=tuple(points))


def _axis(kind: str, values: list[Decimal]) -> tuple[Decimal, Decimal]:
    if kind in SCORE_RANGE:
        bottom, top = SCORE_RANGE[kind]
        return Decimal(bottom), Decimal(top)
    # A tape or a scale: from a round number below the lowest to one above the highest, so
    # that a change of a few centimetres is visible and not flattened against zero.
    lowest, highest = min(values), max(values)
    low = max(Decimal(0), (lowest // 5) * 5 - 5)
    high = (highest // 5) * 5 + 10
    return low, high


def progress(
    points: Iterable[Point],
    sessions_at: Iterable[dt.datetime],
    milestones: Iterable[MilestoneFacts],
    *,
    sessions_planned: int,
    tz: dt.tzinfo,
    area_labels: Mapping[str, str] | None = None,
) -> Progress:
    """The series a course's chart draws, one per scale and area or site, each point placed
    at the number of sessions done when it was taken (0 is the baseline, before session 1).

    1. Group the Hexsel totals by area, the circumferences by site, and the weights; GAIS and
       satisfaction are answers about the course, shown elsewhere, not series.
    2. For each Hexsel series, draw the protocol's expected trajectory from its first value
       (the baseline): lower by each milestone's improvement, after that many sessions. The
       seeds give a trajectory for the cellulite score only, so a circumference or a weight
       gets none: a 50 % smaller waist is no one's expectation.
    """
    sessions = sorted(sessions_at)
    steps = list(milestones)
    area_labels = area_labels or {}
    groups: dict[str, list[Point]] = {}
    for p in sorted(points, key=lambda p: p.taken_at):
        if p.kind == scales.HEXSEL:
            key = f"{p.kind}:{p.area}"
        elif p.kind == scales.CIRCUMFERENCE:
            key = f"{p.kind}:{p.site}"
        elif p.kind in (scales.WEIGHT, scales.NURNBERGER_MULLER):
            key = p.kind if p.kind == scales.WEIGHT else f"{p.kind}:{p.area}"
        else:
            continue
        groups.setdefault(key, []).append(p)

    order = {scales.HEXSEL: 0, scales.NURNBERGER_MULLER: 1, scales.CIRCUMFERENCE: 2}
    out: list[Series] = []
    for key, found in sorted(groups.items(), key=lambda kv: (order.get(kv[1][0].kind, 3), kv[0])):
        first = found[0]
        kind = first.kind
        where = ""
        if kind == scales.CIRCUMFERENCE:
            where = (
                scales.SITE_BY_KEY[first.site].label
                if first.site in scales.SITE_BY_KEY
                else first.site
            )
        elif first.area:
            where = area_labels.get(first.area, first.area)
        names = {
            scales.HEXSEL: "Hexsel CSS",
            scales.NURNBERGER_MULLER: "Nürnberger–Müller",
            scales.CIRCUMFERENCE: "Circumference",
            scales.WEIGHT: "Weight",
        }
        label = f"{names[kind]}, {where}" if where else names[kind]
        series_points = tuple(
            SeriesPoint(
                _sessions_done(p.taken_at, sessions), p.value, p.taken_at.astimezone(tz).date()
            )
            for p in found
        )
        trajectory = (
            _trajectory(series_points[0].value, steps) if kind in TRAJECTORY_KINDS else None
        )
        values = [p.value for p in series_points]
        if trajectory:
            values += [v for _, v in trajectory.points]
        out.append(
            Series(
                key=key,
                kind=kind,
                label=label,
                unit=UNITS.get(kind, "points"),
                points=series_points,
                trajectory=trajectory,
                range=_axis(kind, values),
            )
        )
    has_any = any(m.improvement_percent is not None for m in steps)
    return Progress(
        series=tuple(out),
        sessions_done=len(sessions),
        sessions_planned=sessions_planned,
        no_trajectory="" if has_any else NO_TRAJECTORY,
    )


def describe_change(series: Series) -> str:
    """'From 10 to 6 points: −4 points (−40.0 %)', the change from baseline in words."""
    unit = series.unit

    def fmt(v: Decimal) -> str:
        return f"{v.normalize():f}" if v == v.to_integral_value() else f"{v:f}"

    change = series.change
    sign = "+" if change > 0 else ("−" if change < 0 else "±")
    text = (
        f"From {fmt(series.baseline.value)} to {fmt(series.latest.value)} {unit}: "
        f"{sign}{fmt(abs(change))} {unit}"
    )
    percent = series.change_percent
    if percent is not None:
        psign = "+" if percent > 0 else ("−" if percent < 0 else "±")
        text += f" ({psign}{abs(percent)} %)"
    return text
