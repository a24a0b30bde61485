"""Dates and times in the clinic's own formats and time zone (mesoclinic/lib/formats.py):
`{% load formats %}` then `{{ appointment.starts_at|clinic_datetime:clinic }}`."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django import template
from django.utils import timezone

from mesoclinic.billing.money import percent as money_percent
from mesoclinic.billing.money import words as money_words
from mesoclinic.lib import formats

register = template.Library()


@register.filter
def clinic_date(value: dt.date | dt.datetime | None, clinic: Any = None) -> str:
    return formats.date_text(value, clinic)


@register.filter
def clinic_time(value: dt.time | dt.datetime | None, clinic: Any = None) -> str:
    return formats.time_text(value, clinic)


@register.filter
def clinic_datetime(value: dt.datetime | None, clinic: Any = None) -> str:
    return formats.datetime_text(value, clinic)


@register.filter
def clinic_when(value: dt.datetime | None, clinic: Any = None) -> str:
    """Thu 31/12/2026, 14:30: the weekday, the date and the time in the clinic's formats."""
    return formats.when_text(value, clinic)


@register.filter
def clinic_short_day(value: dt.date | dt.datetime | None, clinic: Any = None) -> str:
    return formats.short_day_text(value, clinic)


@register.filter
def clinic_short_when(value: dt.datetime | None, clinic: Any = None) -> str:
    """Thu 31 Dec, 14:30: the weekday, day, month and the clinic's time."""
    return formats.short_when_text(value, clinic)


@register.filter
def on_clinic_today(value: dt.datetime | None, clinic: Any) -> bool:
    """Whether a moment falls on the clinic's today, on the clinic's clock (not the server's):
    a visit at 10:00 in New York is still today there at 21:00, when it is tomorrow in UTC."""
    if value is None or clinic is None:
        return False
    return formats.local_date(value, clinic) == formats.local_date(timezone.now(), clinic)


@register.filter
def percent(value: Decimal | None) -> str:
    """A rate in per cent as people write it: `{{ line.tax_rate|percent }} %` gives "20 %"."""
    return "" if value is None else money_percent(Decimal(value))


@register.filter
def money(value: Decimal | None, currency: str) -> str:
    """An amount in its currency, rounded to its minor unit: `{{ total|money:"USD" }}`."""
    return "" if value is None else money_words(Decimal(value), currency)
