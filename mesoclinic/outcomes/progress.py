"""A course's progress chart: from the database to logic.progress, and from its series to an
inline SVG (for the chart and the progress page) or a reportlab Drawing (for the PDF). Both
drawings place every point by the same `_Frame`, so the page and the paper show one picture.

The SVG is accessible: each panel has a <title> and a <desc> that say in words what it shows,
each point has its own <title>, and the page puts a table of the same numbers next to it.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from mesoclinic.courses.models import Course, Session
from mesoclinic.outcomes import logic
from mesoclinic.outcomes.models import Measurement
from mesoclinic.protocols.vocab import Area, describe_source

WIDTH, HEIGHT = 560, 244
LEFT, RIGHT, TOP, BOTTOM = 52, 16, 30, 72
MEASURED = "#1d5fa8"
EXPECTED = "#b4531d"
AXIS = "#5b6573"
GRID = "#d9dde3"


def milestones_of(course: Course) -> list[logic.MilestoneFacts]:
    out = []
    for m in course.spec.milestones:
        chosen = m.after_sessions.chosen
        out.append(
            logic.MilestoneFacts(
                label=m.label,
                after_min=chosen.value.min,
                after_max=chosen.value.max,
                improvement_percent=m.improvement_percent,
                sources=tuple(describe_source(s) for s in chosen.source),
            )
        )
    return out


def course_progress(
    course: Course,
    measurements: Sequence[Measurement] | None = None,
    sessions: Sequence[Session] | None = None,
) -> logic.Progress:
    """The course's progress, read from its measurements and its course sessions; or from
    `measurements` (by time taken) and `sessions` (by time) already read."""
    if measurements is None:
        measurements = list(course.measurements.all().order_by("taken_at", "id"))
    points = [logic.Point(m.kind, m.value, m.taken_at, m.site, m.area) for m in measurements]
    session_times: Iterable[dt.datetime]
    if sessions is None:
        session_times = course.sessions.filter(kind=Session.Kind.COURSE).values_list(
            "performed_at", flat=True
        )
    else:
        session_times = [s.performed_at for s in sessions if s.kind == Session.Kind.COURSE]
    return logic.progress(
        points,
        session_times,
        milestones_of(course),
        sessions_planned=course.planned_sessions,
        tz=course.clinic.tz,
        area_labels=dict(Area.choices),
    )


def trajectory_caption(t: logic.Trajectory) -> str:
    """'Expected: About 50 % improvement, after 10 sessions. Source: 002 “…” (a single
    source).' SPEC: a trajectory from one source is shown as such."""
    word = "Source" if len(t.sources) == 1 else "Sources"
    single = " (a single source)" if len(t.sources) == 1 else ""
    return f"Expected: {t.label}. {word}: {'; '.join(t.sources)}{single}."


def no_trajectory_caption(series: logic.Series, progress: logic.Progress) -> str:
    if series.trajectory is not None:
        return ""
    if progress.no_trajectory:
        return progress.no_trajectory
    return "No expected trajectory: the protocol gives one for the Hexsel score only."


def _num(v: Decimal | float) -> str:
    d = Decimal(str(v))
    return f"{d.normalize():f}" if d == d.to_integral_value() else f"{d:f}"


@dataclass(frozen=True)
class _Frame:
    """Sessions done (x) and the series' value (y) to drawing units, y growing downwards."""

    x_max: int
    low: Decimal
    high: Decimal

    def x(self, sessions: int) -> float:
        return LEFT + (WIDTH - LEFT - RIGHT) * sessions / max(self.x_max, 1)

    def y(self, value: Decimal) -> float:
        span = (self.high - self.low) or Decimal(1)
        share = float((value - self.low) / span)
        return TOP + (HEIGHT - TOP - BOTTOM) * (1 - share)

    def x_ticks(self) -> list[int]:
        step = 1 if self.x_max <= 12 else (2 if self.x_max <= 24 else 5)
        return list(range(0, self.x_max + 1, step))

    def y_ticks(self) -> list[Decimal]:
        span = self.high - self.low
        step = next(s for s in (1, 2, 5, 10, 20, 50, 100) if span / s <= 6)
        out, v = [], self.low
        while v <= self.high:
            out.append(v)
            v += step
        return out


def _frame(series: logic.Series, progress: logic.Progress) -> _Frame:
    xs = [p.sessions for p in series.points]
    if series.trajectory:
        xs += [n for n, _ in series.trajectory.points]
    return _Frame(max([progress.sessions_planned, *xs, 1]), *series.range)


def describe(series: logic.Series, progress: logic.Progress) -> str:
    """The panel in words, for <desc> and for a reader without the picture."""
    measured = "; ".join(
        f"after {p.sessions} session{'' if p.sessions == 1 else 's'}, {_num(p.value)} "
        f"{series.unit} ({p.day:%d %b %Y})"
        for p in series.points
    )
    text = f"Measured: {measured}. {logic.describe_change(series)}."
    if series.trajectory:
        expected = ", ".join(
            f"{_num(v)} {series.unit} after {n} sessions" for n, v in series.trajectory.points
        )
        text += f" {trajectory_caption(series.trajectory)} Expected values: {expected}."
    else:
        text += " " + no_trajectory_caption(series, progress)
    return text


def svg(series: logic.Series, progress: logic.Progress, ident: str) -> str:
    """One panel as an inline <svg> element. Text is escaped by ElementTree."""
    f = _frame(series, progress)
    root = ET.Element(
        "svg",
        {
            "xmlns": "http://www.w3.org/2000/svg",
            "viewBox": f"0 0 {WIDTH} {HEIGHT}",
            "role": "img",
            "aria-labelledby": f"{ident}-title {ident}-desc",
            # Sized by app.css (svg.progress-chart): the Content-Security-Policy refuses inline
            # style attributes.
            "class": "progress-chart",
            "data-series": series.key,
        },
    )
    ET.SubElement(
        root, "title", {"id": f"{ident}-title"}
    ).text = f"{series.label} ({series.unit}) by sessions done"
    ET.SubElement(root, "desc", {"id": f"{ident}-desc"}).text = describe(series, progress)

    axes = ET.SubElement(root, "g", {"class": "axes", "font-size": "11", "fill": AXIS})
    bottom, right = HEIGHT - BOTTOM, WIDTH - RIGHT
    for v in f.y_ticks():
        y = f"{f.y(v):.1f}"
        ET.SubElement(
            axes, "line", {"x1": str(LEFT), "x2": str(right), "y1": y, "y2": y, "stroke": GRID}
        )
        ET.SubElement(
            axes, "text", {"x": str(LEFT - 6), "y": y, "text-anchor": "end", "dy": "4"}
        ).text = _num(v)
    for n in f.x_ticks():
        ET.SubElement(
            axes,
            "text",
            {"x": f"{f.x(n):.1f}", "y": str(bottom + 15), "text-anchor": "middle"},
        ).text = str(n)
    ET.SubElement(
        axes,
        "line",
        {"x1": str(LEFT), "x2": str(right), "y1": str(bottom), "y2": str(bottom), "stroke": AXIS},
    )
    ET.SubElement(
        axes,
        "text",
        {"x": str((LEFT + right) // 2), "y": str(bottom + 30), "text-anchor": "middle"},
    ).text = "sessions done (0 = baseline)"
    ET.SubElement(
        axes, "text", {"x": str(LEFT), "y": "14", "font-weight": "bold"}
    ).text = f"{series.label} ({series.unit})"

    if series.trajectory:
        ET.SubElement(
            root,
            "polyline",
            {
                "class": "expected",
                "points": " ".join(
                    f"{f.x(n):.1f},{f.y(v):.1f}" for n, v in series.trajectory.points
                ),
                "fill": "none",
                "stroke": EXPECTED,
                "stroke-width": "2",
                "stroke-dasharray": "6 4",
            },
        )
        caption = trajectory_caption(series.trajectory)
    else:
        caption = no_trajectory_caption(series, progress)
    label = ET.SubElement(
        root,
        "text",
        {
            "class": "expected-label" if series.trajectory else "no-trajectory",
            "x": str(LEFT),
            "y": str(HEIGHT - 22),
            "font-size": "10",
            "fill": EXPECTED if series.trajectory else AXIS,
        },
    )
    # Two lines at most, split before the source, so that a long title is not cut off.
    first, sep, rest = caption.partition(" Source")
    if not sep:
        first, sep, rest = caption.partition(" Sources")
    label.text = first
    if sep:
        ET.SubElement(label, "tspan", {"x": str(LEFT), "dy": "13"}).text = sep.strip() + rest

    if len(series.points) > 1:
        ET.SubElement(
            root,
            "polyline",
            {
                "class": "measured",
                "points": " ".join(
                    f"{f.x(p.sessions):.1f},{f.y(p.value):.1f}" for p in series.points
                ),
                "fill": "none",
                "stroke": MEASURED,
                "stroke-width": "2.5",
            },
        )
    for p in series.points:
        dot = ET.SubElement(
            root,
            "circle",
            {
                "class": "point",
                "cx": f"{f.x(p.sessions):.1f}",
                "cy": f"{f.y(p.value):.1f}",
                "r": "4.5",
                "fill": MEASURED,
                "data-sessions": str(p.sessions),
                "data-value": _num(p.value),
            },
        )
        ET.SubElement(
            dot, "title"
        ).text = f"{_num(p.value)} {series.unit} on {p.day:%d %b %Y}, after {p.sessions} sessions"
    return ET.tostring(root, encoding="unicode")


def drawing(  # type: ignore[no-untyped-def]
    series: logic.Series, progress: logic.Progress, font: str = "Helvetica", scale: float = 0.85
):
    """The same panel as a reportlab Drawing (a flowable), for the PDF progress report,
    scaled to fit the page's text width (560 × 0.85 = 476 pt inside A4's 482)."""
    from reportlab.graphics.shapes import Circle, Drawing, Group, Line, PolyLine, String
    from reportlab.lib import colors

    f = _frame(series, progress)
    d = Group()

    def flip(y: float) -> float:  # reportlab's y grows upwards
        return HEIGHT - y

    bottom, right = HEIGHT - BOTTOM, WIDTH - RIGHT
    muted, grid = colors.HexColor(AXIS), colors.HexColor(GRID)
    for v in f.y_ticks():
        y = flip(f.y(v))
        d.add(Line(LEFT, y, right, y, strokeColor=grid, strokeWidth=0.5))
        d.add(
            String(
                LEFT - 6,
                y - 3,
                _num(v),
                fontName=font,
                fontSize=8,
                fillColor=muted,
                textAnchor="end",
            )
        )
    for n in f.x_ticks():
        d.add(
            String(
                f.x(n),
                flip(bottom + 13),
                str(n),
                fontName=font,
                fontSize=8,
                fillColor=muted,
                textAnchor="middle",
            )
        )
    d.add(Line(LEFT, flip(bottom), right, flip(bottom), strokeColor=muted))
    d.add(
        String(
            (LEFT + right) / 2,
            flip(bottom + 28),
            "sessions done (0 = baseline)",
            fontName=font,
            fontSize=8,
            fillColor=muted,
            textAnchor="middle",
        )
    )
    d.add(String(LEFT, flip(16), f"{series.label} ({series.unit})", fontName=font, fontSize=10))
    if series.trajectory:
        pts = [c for n, v in series.trajectory.points for c in (f.x(n), flip(f.y(v)))]
        d.add(
            PolyLine(
                pts, strokeColor=colors.HexColor(EXPECTED), strokeWidth=1.5, strokeDashArray=[6, 4]
            )
        )
    if len(series.points) > 1:
        pts = [c for p in series.points for c in (f.x(p.sessions), flip(f.y(p.value)))]
        d.add(PolyLine(pts, strokeColor=colors.HexColor(MEASURED), strokeWidth=2))
    for p in series.points:
        d.add(
            Circle(
                f.x(p.sessions),
                flip(f.y(p.value)),
                3.5,
                fillColor=colors.HexColor(MEASURED),
                strokeColor=None,
            )
        )
    d.scale(scale, scale)
    out = Drawing(WIDTH * scale, HEIGHT * scale)
    out.add(d)
    return out
