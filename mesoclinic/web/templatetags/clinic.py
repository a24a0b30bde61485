"""Template filters for the staff pages."""

from __future__ import annotations

import datetime as dt

from django import template

register = template.Library()


@register.filter
def iso_day(value: str | None) -> str:
    """An ISO date or date-time from a plan or a window ("2026-11-27" or
    "2026-11-27T09:00:00-05:00"), as the day it falls on there: "Fri 27 Nov 2026"."""
    if not value:
        return ""
    try:
        day = dt.date.fromisoformat(value[:10])
    except ValueError:
        return value
    return f"{day:%a} {day.day} {day:%b %Y}"
