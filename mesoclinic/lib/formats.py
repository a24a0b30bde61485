"""Dates and times the way the clinic writes them (Clinic.date_format and time_format), in its
own time zone, and the date formats its forms accept.

Pages use the template filters in web/templatetags/formats.py (`{{ day|clinic_date:clinic }}`);
forms use `ClinicDateField`, which reads the clinic's format and ISO dates (what a browser's
date picker sends) alike."""

from __future__ import annotations

import datetime as dt
from typing import Any

import phonenumbers
from django import forms
from django.utils import timezone

# Clinic.DateFormat's values, each as strftime patterns. "j M Y" has no leading zero on the
# day, which strftime cannot say portably, so it is built by hand in `date_text`.
STRFTIME = {"d/m/Y": "%d/%m/%Y", "m/d/Y": "%m/%d/%Y", "Y-m-d": "%Y-%m-%d", "j M Y": "%d %b %Y"}
DEFAULT_DATE = "j M Y"
DEFAULT_TIME = "24h"
ISO = "%Y-%m-%d"


# The orders a date written with numbers only may take: day first (31/12/1990) or month first
# (12/31/1990).
DAY_FIRST = "dmy"
MONTH_FIRST = "mdy"
# When the clinic's own phone does not say its country (it has no leading +).
DEFAULT_REGION = "US"
# The countries whose people write the month before the day.
MONTH_FIRST_REGIONS = frozenset({"US"})


def region_of(clinic_phone: str) -> str:
    """The country (ISO 3166 code) a clinic's phone number belongs to, or the default."""
    if clinic_phone.strip().startswith("+"):
        try:
            number = phonenumbers.parse(clinic_phone, None)
        except phonenumbers.NumberParseException:
            return DEFAULT_REGION
        region = phonenumbers.region_code_for_number(number)
        if region and region != "ZZ":
            return str(region)
    return DEFAULT_REGION


def date_order(clinic: Any) -> str:
    """Whether a date typed with numbers only (03/04/2026) is read day first or month first.

    The one answer for every place that reads such a date (patient search, file import, forms):
    1. a clinic that writes dates with numbers (31/12/2026 or 12/31/2026) types them the same
       way;
    2. otherwise (the month's name, or ISO) its staff type as their country does, which the
       clinic's phone number tells, or without one its locale (en-GB, en-US …): month first
       in the United States, day first elsewhere."""
    key = getattr(clinic, "date_format", None)
    if key == "m/d/Y":
        return MONTH_FIRST
    if key == "d/m/Y":
        return DAY_FIRST
    phone = (getattr(clinic, "phone", "") or "").strip()
    locale = getattr(clinic, "locale", "") or ""
    if phone.startswith("+") or "-" not in locale:
        region = region_of(phone)
    else:
        region = locale.rsplit("-", 1)[1].upper()
    return MONTH_FIRST if region in MONTH_FIRST_REGIONS else DAY_FIRST


def _date_key(clinic: Any) -> str:
    key = getattr(clinic, "date_format", DEFAULT_DATE)
    return key if key in STRFTIME else DEFAULT_DATE


def date_text(day: dt.date | dt.datetime | None, clinic: Any = None) -> str:
    """A date in the clinic's format: 31/12/2026, 12/31/2026, 2026-12-31 or 31 Dec 2026. A
    date-time is first taken to the clinic's time zone."""
    if day is None:
        return ""
    if isinstance(day, dt.datetime):
        day = _local(day, clinic).date()
    key = _date_key(clinic)
    if key == "j M Y":
        return f"{day.day} {day:%b %Y}"
    return day.strftime(STRFTIME[key])


def time_text(moment: dt.time | dt.datetime | None, clinic: Any = None) -> str:
    """A time on the clinic's clock: 14:30, or 2:30 pm."""
    if moment is None:
        return ""
    if isinstance(moment, dt.datetime):
        moment = _local(moment, clinic).time()
    if getattr(clinic, "time_format", DEFAULT_TIME) == "12h":
        hour = moment.hour % 12 or 12
        return f"{hour}:{moment.minute:02d} {'am' if moment.hour < 12 else 'pm'}"
    return f"{moment:%H:%M}"


def datetime_text(moment: dt.datetime | None, clinic: Any = None) -> str:
    """A date and time in the clinic's formats and time zone: 31/12/2026, 14:30."""
    if moment is None:
        return ""
    return f"{date_text(moment, clinic)}, {time_text(moment, clinic)}"


def when_text(moment: dt.datetime | None, clinic: Any = None) -> str:
    """A moment with its weekday, in the clinic's formats and time zone: Thu 31/12/2026, 14:30."""
    if moment is None:
        return ""
    local = _local(moment, clinic)
    return f"{local:%a} {date_text(local.date(), clinic)}, {time_text(local.time(), clinic)}"


def short_when_text(moment: dt.datetime | None, clinic: Any = None) -> str:
    """A moment of this season, short: its weekday, day and month, and the clinic's time, in
    the clinic's time zone: Thu 31 Dec, 14:30."""
    if moment is None:
        return ""
    local = _local(moment, clinic)
    return f"{local:%a} {local.day} {local:%b}, {time_text(local.time(), clinic)}"


def short_day_text(day: dt.date | dt.datetime | None, clinic: Any = None) -> str:
    """A day of this season, short: its weekday, day and month (Thu 31 Dec). A date-time is
    first taken to the clinic's time zone."""
    if day is None:
        return ""
    if isinstance(day, dt.datetime):
        day = _local(day, clinic)
    return f"{day:%a} {day.day} {day:%b}"


def example(clinic: Any = None) -> str:
    """How the clinic writes 31 December 2026, to show beside a date field."""
    return date_text(dt.date(2026, 12, 31), clinic)


def input_formats(clinic: Any = None) -> list[str]:
    """The formats a typed date may take: the clinic's, then ISO."""
    own = STRFTIME[_date_key(clinic)]
    return [own, ISO] if own != ISO else [ISO]


def parse_date(text: str, clinic: Any = None) -> dt.date | None:
    """A typed date in the clinic's format or ISO, or None when it is neither."""
    for pattern in input_formats(clinic):
        try:
            return dt.datetime.strptime(text.strip(), pattern).date()
        except ValueError:
            continue
    return None


def local_date(moment: dt.datetime, clinic: Any) -> dt.date:
    """The day a moment falls on, on the clinic's clock."""
    return _local(moment, clinic).date()


def _local(moment: dt.datetime, clinic: Any) -> dt.datetime:
    """The moment on the clinic's clock; without a clinic, on the request's (the zone the
    page's clinic activated, as Django's own date filter does)."""
    if moment.tzinfo is None:
        return moment
    tz = getattr(clinic, "tz", None)
    return moment.astimezone(tz) if tz is not None else timezone.localtime(moment)


class ClinicDateInput(forms.TextInput):
    """A text box that shows a date in the clinic's format and hints at it."""

    def __init__(self, clinic: Any = None, attrs: dict[str, Any] | None = None) -> None:
        self.clinic = clinic
        super().__init__(
            {"inputmode": "numeric", "placeholder": example(clinic), "autocomplete": "off"}
            | (attrs or {})
        )

    def format_value(self, value: Any) -> str | None:
        if isinstance(value, dt.date):
            return date_text(value, self.clinic)
        return super().format_value(value)


class ClinicDateField(forms.DateField):
    """A date typed in the clinic's format (or ISO), with an error that shows the format."""

    def __init__(self, clinic: Any = None, **kwargs: Any) -> None:
        self.clinic = clinic
        kwargs.setdefault("widget", ClinicDateInput(clinic))
        kwargs.setdefault("help_text", f"For example {example(clinic)}.")
        super().__init__(input_formats=input_formats(clinic), **kwargs)
        self.error_messages["invalid"] = f"Enter a date like {example(clinic)}."


# Hours typed as text: "9:00–12:30, 14:00–18:00", or on a 12-hour clock "9 am–12:30 pm".
Span = tuple[dt.time, dt.time]
_TIME_PATTERNS = ("%H:%M", "%H.%M", "%H", "%I:%M %p", "%I:%M%p", "%I %p", "%I%p")


def parse_time(text: str) -> dt.time:
    """A time as people type it: 9:00, 09:00, 14.30, 9 am, 2:30 pm. Raises ValueError."""
    cleaned = " ".join(text.strip().lower().replace(".m.", "m").split())
    for pattern in _TIME_PATTERNS:
        try:
            return dt.datetime.strptime(cleaned, pattern).time()
        except ValueError:
            continue
    raise ValueError(f"“{text.strip()}” is not a time such as 9:00 or 14:30.")


def parse_spans(text: str) -> list[Span]:
    """Intervals of one day, separated by commas, each start–end (a hyphen or a dash between
    the times). Raises ValueError naming the first problem: a time that does not read, an end
    not after its start, or two intervals that overlap. Empty text is no interval."""
    spans: list[Span] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        pieces = part.replace("–", "-").replace("—", "-").replace(" to ", "-").split("-")
        if len(pieces) != 2:
            raise ValueError(f"Write “{part}” as a start and an end, such as 9:00–12:30.")
        start, end = parse_time(pieces[0]), parse_time(pieces[1])
        if end <= start:
            raise ValueError(f"In “{part}” the end is not after the start.")
        spans.append((start, end))
    spans.sort()
    for (s1, e1), (s2, e2) in zip(spans, spans[1:], strict=False):
        if s2 < e1:
            raise ValueError(
                f"{time_text(s1)}–{time_text(e1)} and {time_text(s2)}–{time_text(e2)} overlap."
            )
    return spans


def spans_text(spans: list[Span], clinic: Any = None) -> str:
    """Intervals written back the way `parse_spans` reads them, on the clinic's clock."""
    return ", ".join(f"{time_text(s, clinic)}–{time_text(e, clinic)}" for s, e in spans)
