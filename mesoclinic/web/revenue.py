"""The manager's revenue page (/manage/revenue/): revenue before tax by month, protocol and
practitioner over a range of months (the last twelve by default), as a bar chart by month and
tables, with CSV. It is billing.reports.revenue, which the API answers too. Only a manager sees
it; it names no patient."""

from __future__ import annotations

import calendar
import csv
import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from mesoclinic.access import MANAGE
from mesoclinic.accounts.auditlog import safe_cell
from mesoclinic.billing import money, reports
from mesoclinic.web.context import caller

MONTH = "%Y-%m"


class MonthsForm(forms.Form):
    """The first and the last month of the report, both included."""

    start = forms.DateField(
        label="From (month)",
        input_formats=[MONTH, "%Y-%m-%d"],
        widget=forms.DateInput(attrs={"type": "month"}, format=MONTH),
        help_text="For example 2026-01.",
    )
    end = forms.DateField(
        label="To (month)",
        input_formats=[MONTH, "%Y-%m-%d"],
        widget=forms.DateInput(attrs={"type": "month"}, format=MONTH),
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        start, end = cleaned.get("start"), cleaned.get("end")
        if start is None or end is None:
            return cleaned
        cleaned["start"] = start.replace(day=1)
        cleaned["end"] = end.replace(day=calendar.monthrange(end.year, end.month)[1])
        problems = reports.revenue_range_problems(cleaned["start"], cleaned["end"])
        for name, message in problems.items():
            self.add_error(name, f"The {'first' if name == 'start' else 'last'} month {message}")
        return cleaned


# The chart: one horizontal bar per month, from a zero line (a month can be below 0 when its
# credit notes are more than what it earned).


@dataclass(frozen=True)
class MonthBar:
    label: str
    note: str  # the amount, written beside the bar
    y: int
    x: float
    width: float
    text_x: float

    @property
    def text_y(self) -> int:
        return self.y + 15


@dataclass(frozen=True)
class MonthChart:
    id: str
    title: str
    desc: str
    bars: list[MonthBar]
    zero_x: float
    height: int
    width: int = 700

    @property
    def label_x(self) -> int:
        return LABEL_WIDTH - 8

    @property
    def axis_bottom(self) -> int:
        return self.height - 16

    @property
    def tick_label_y(self) -> int:
        return self.height - 2


LABEL_WIDTH, BAR_SPACE, ROW = 130, 420, 26


def month_chart(found: reports.Revenue) -> MonthChart:
    """Lay out the bar chart of revenue by month. The description lists every month in words,
    for a screen reader."""
    amounts = [amount for _, amount in found.by_month]
    high = max([Decimal(0), *amounts])
    low = min([Decimal(0), *amounts])
    span = (high - low) or Decimal(1)

    def x_of(amount: Decimal) -> float:
        return round(LABEL_WIDTH + float(BAR_SPACE * (amount - low) / span), 1)

    zero = x_of(Decimal(0))
    bars, words = [], []
    for i, (month, amount) in enumerate(found.by_month):
        end = x_of(amount)
        note = money.words(amount, found.currency)
        label = month_label(month)
        bars.append(
            MonthBar(
                label,
                note,
                20 + i * ROW,
                min(zero, end),
                round(abs(end - zero), 1),
                round(max(zero, end) + 6, 1),
            )
        )
        words.append(f"{label}: {note}")
    return MonthChart(
        id="chart-revenue-months",
        title="Revenue by month, before tax",
        desc="Revenue by month, before tax. " + "; ".join(words) + ".",
        bars=bars,
        zero_x=zero,
        height=20 + len(bars) * ROW + 24,
    )


def month_label(month: dt.date) -> str:
    return f"{calendar.month_name[month.month]} {month.year}"


def _csv(found: reports.Revenue) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="revenue-{found.start:%Y-%m}-to-{found.end:%Y-%m}.csv"'
    )
    writer = csv.writer(response)
    writer.writerow(["month", "protocol", "practitioner", "amount_before_tax", "currency"])
    for r in found.rows:
        writer.writerow(
            [
                f"{r.month:%Y-%m}",
                safe_cell(r.protocol),
                safe_cell(r.practitioner),
                r.amount,
                found.currency,
            ]
        )
    return response


@login_required
def revenue(request: HttpRequest) -> HttpResponse:
    who = caller(request)
    clinic = who.require(MANAGE).clinic
    today = timezone.localdate(timezone.now(), clinic.tz)
    chosen = {k: v for k, v in request.GET.items() if k in ("start", "end")}
    if not chosen:
        # Bound to the last twelve months, so that the month inputs show them.
        start, end = reports.last_twelve_months(today)
        chosen = {"start": f"{start:%Y-%m}", "end": f"{end:%Y-%m}"}
    form = MonthsForm(chosen)
    if not form.is_valid():
        return render(
            request, "web/billing/revenue.html", {"page": "money", "form": form}, status=400
        )
    found = reports.revenue(clinic, form.cleaned_data["start"], form.cleaned_data["end"])
    if request.GET.get("format") == "csv":
        return _csv(found)
    return render(
        request,
        "web/billing/revenue.html",
        {
            "page": "money",
            "form": form,
            "found": found,
            "chart": month_chart(found),
            "months": [(month_label(m), amount) for m, amount in found.by_month],
            "rows": [(month_label(r.month), r) for r in found.rows],
            "query": f"start={found.start:%Y-%m}&end={found.end:%Y-%m}",
        },
    )
