"""The manager's clinic analytics page (/analytics/): outcome by protocol, product and
practitioner, improvement at sessions 5 and 10, completion and drop-out, and maintenance
adherence, each as a server-rendered SVG bar chart with its data table underneath.

Only a clinic manager sees it. Practitioners do not, not even their own row: a practitioner's
figures mean something only beside their colleagues', and comparing staff is the manager's
job. The page reads no chart, so its audit row names no patient.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent, audit
from mesoclinic.outcomes import analytics as figures
from mesoclinic.web.context import MANAGER, require


class RangeForm(forms.Form):
    # Named start/end in Python; the query string says from/to, as the API does.
    start = forms.DateField(
        label="From", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    end = forms.DateField(
        label="To", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, data: dict[str, str] | None, today: dt.date):
        super().__init__(data, prefix=None)
        self.today = today

    def add_prefix(self, field_name: str) -> str:
        return {"start": "from", "end": "to"}.get(field_name, field_name)

    def clean(self) -> dict[str, object]:
        cleaned = super().clean() or {}
        start, end = figures.default_range(self.today)
        cleaned["start"] = cleaned.get("start") or start
        cleaned["end"] = cleaned.get("end") or end
        for name, message in figures.check_range(cleaned["start"], cleaned["end"]).items():
            self.add_error("start" if name == "from" else "end", message)
        return cleaned


# The charts: horizontal bars of a share (0-100 %), one row per group, with n beside each.


@dataclass(frozen=True)
class Bar:
    label: str
    share: float | None  # None: too few to compare, or nothing to judge
    n: int
    note: str  # what is written beside the bar
    y: int
    width: float
    x: int = 210  # where the bar starts

    @property
    def text_y(self) -> int:
        return self.y + 15

    @property
    def text_x(self) -> float:
        return self.x + self.width + 6


@dataclass(frozen=True)
class BarChart:
    id: str
    title: str
    desc: str
    bars: list[Bar]
    height: int
    label_width: int = 210
    bar_space: int = 300
    row: int = 30
    width: int = 700

    @property
    def ticks(self) -> list[tuple[float, str]]:
        return [(self.label_width + self.bar_space * p / 100, f"{p} %") for p in (0, 50, 100)]

    @property
    def label_x(self) -> int:
        return self.label_width - 8

    @property
    def axis_bottom(self) -> int:
        return self.height - 16

    @property
    def tick_label_y(self) -> int:
        return self.height - 2


def bar_chart(
    id: str, title: str, what: str, rows: list[tuple[str, float | None, int, bool]]
) -> BarChart:
    """Lay out one chart. Each row is (label, share 0-1 or None, n, enough to compare). A row
    with too few courses gets no bar and says so; the description lists every row in words,
    for a screen reader."""
    label_width, bar_space, row = 210, 300, 30
    bars, words = [], []
    for i, (label, share, n, enough) in enumerate(rows):
        if share is None or not enough:
            note = f"too few to compare (n = {n})" if n else "nothing to judge (n = 0)"
            bars.append(Bar(label, None, n, note, 24 + i * row, 0, label_width))
            words.append(f"{label}: {note}")
        else:
            note = f"{share * 100:.0f} % (n = {n})"
            width = round(bar_space * share, 1)
            bars.append(Bar(label, share, n, note, 24 + i * row, width, label_width))
            words.append(f"{label}: {note}")
    desc = f"{what}. " + "; ".join(words) + "." if words else f"{what}. No data yet."
    return BarChart(
        id=id,
        title=title,
        desc=desc,
        bars=bars,
        height=24 + len(rows) * row + 24,
        label_width=label_width,
        bar_space=bar_space,
        row=row,
    )


def charts(result: figures.Analytics) -> dict[str, BarChart]:
    def groups(id: str, title: str, found: list[figures.Group]) -> BarChart:
        return bar_chart(
            id,
            title,
            "Share of assessed courses improved, per group",
            [(g.label, g.improved_share, g.assessed, g.enough) for g in found],
        )

    done = result.completion
    care = result.maintenance
    return {
        "protocol": groups("chart-protocol", "Courses improved, by protocol", result.by_protocol),
        "product": groups("chart-product", "Courses improved, by product", result.by_product),
        "practitioner": groups(
            "chart-practitioner", "Courses improved, by practitioner", result.by_practitioner
        ),
        "milestones": bar_chart(
            "chart-milestones",
            "Courses improved at sessions 5 and 10",
            "Share of courses that reached the session and were assessed, improved",
            [
                (f"At session {m.session}", m.improved_share, m.assessed, m.enough)
                for m in result.milestones
            ],
        ),
        "completion": bar_chart(
            "chart-completion",
            "What became of the courses started",
            "Share of started courses in each state",
            [
                (label, done.share(count), count, done.started >= figures.MIN_GROUP)
                for label, count in (
                    ("Completed", done.completed),
                    ("In progress", done.in_progress),
                    ("Lapsed", done.lapsed),
                    ("Stopped", done.stopped),
                )
            ],
        ),
        "maintenance": bar_chart(
            "chart-maintenance",
            "Maintenance after completed courses",
            "Share of completed courses whose maintenance window has opened",
            [
                (
                    label,
                    count / care.opened if care.opened else None,
                    count,
                    care.opened >= figures.MIN_GROUP,
                )
                for label, count in (
                    ("In the window", care.in_window),
                    ("Window open, none yet", care.waiting),
                    ("Window passed, none in it", care.missed),
                )
            ],
        ),
    }


@login_required
def analytics(request: HttpRequest) -> HttpResponse:
    found = require(request, MANAGER)
    clinic = found.clinic
    now = timezone.now()
    today = timezone.localtime(now, clinic.tz).date()
    form = RangeForm(request.GET or None, today)
    if request.GET and not form.is_valid():
        return render(
            request, "web/analytics/analytics.html", {"page": "analytics", "form": form}, status=422
        )
    if not request.GET:
        # Bound to the default range, so that the date inputs show it.
        start, end = figures.default_range(today)
        form = RangeForm({"from": start.isoformat(), "to": end.isoformat()}, today)
        form.is_valid()
    start, end = form.cleaned_data["start"], form.cleaned_data["end"]
    result = figures.clinic_analytics(clinic, start, end, now)
    audit(
        clinic=clinic,
        user=request.user,
        action=AuditEvent.Action.VIEW,
        object_type="analytics",
        via="web",
        start=start.isoformat(),
        end=end.isoformat(),
    )
    return render(
        request,
        "web/analytics/analytics.html",
        {
            "page": "analytics",
            "form": form,
            "result": result,
            "charts": charts(result),
            "min_group": figures.MIN_GROUP,
            "lapse_cadences": figures.LAPSE_CADENCES,
            "milestones": figures.MILESTONES,
        },
    )
