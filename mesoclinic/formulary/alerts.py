"""The day's stock alerts by email, to each clinic's managers, once a day.

What Today shows under "Vials and stock" (opened vials near or past their beyond-use time,
products at their reorder level) and the lots near or past their expiry date that still have
stock go out in one email a day, in whole sentences:

1. `do_plan` creates, for each clinic whose own clock has reached STOCK_ALERTS_HOUR, the row of
   the clinic's day. The unique constraint on (clinic, day) and `ignore_conflicts` make
   planning twice, or by two workers at once, create nothing more.
2. `send_due` claims due rows through lib/outbox.py (the reminders' claim, lease and retry), so
   one worker at a time holds a row, and `deliver` reads the stock right before sending. A day
   with nothing to alert, or whose managers have no email address, is skipped: nothing is
   sent. A row still unsent when the clinic's day is over is skipped too: the next day's
   email says what is still true.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import EmailMessage
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from mesoclinic.accounts.models import Clinic, Membership
from mesoclinic.formulary import stock
from mesoclinic.formulary.models import StockAlertEmail
from mesoclinic.lib import formats
from mesoclinic.lib.outbox import Outbox

BATCH = 10
LEASE = dt.timedelta(minutes=10)
MAX_ATTEMPTS = 5
OUTBOX = Outbox(StockAlertEmail, lease=LEASE, max_attempts=MAX_ATTEMPTS)


def local_today(clinic: Clinic, now: dt.datetime) -> dt.date:
    return now.astimezone(clinic.tz).date()


def do_plan(now: dt.datetime | None = None) -> int:
    """Create the day's row of each clinic whose clock has reached STOCK_ALERTS_HOUR and that
    has none yet; answer how many rows this call added."""
    now = now or timezone.now()
    rows = []
    for clinic in Clinic.objects.all():
        local = now.astimezone(clinic.tz)
        if local.hour >= settings.STOCK_ALERTS_HOUR:
            rows.append(StockAlertEmail(clinic=clinic, day=local.date(), next_attempt_at=now))
    have = set(
        StockAlertEmail.objects.filter(day__in={r.day for r in rows}).values_list(
            "clinic_id", "day"
        )
    )
    new = [r for r in rows if (r.clinic.pk, r.day) not in have]
    StockAlertEmail.objects.bulk_create(new, ignore_conflicts=True)
    return len(new)


def recipients(clinic: Clinic) -> list[str]:
    """The emails of the clinic's active managers, each once."""
    found = Membership.objects.filter(
        clinic=clinic, role=Membership.Role.MANAGER, user__is_active=True
    ).values_list("user__email", flat=True)
    return sorted({e.strip().lower(): e.strip() for e in found if e and e.strip()}.values())


# What the email says, in whole sentences.


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _left(found: stock.LotStock) -> str:
    """ "3 unopened vials and 4.50 mL in open vials" """
    open_ml = sum((o.left_ml for o in found.open_vials), stock.ZERO)
    parts = []
    if found.unopened:
        parts.append(_plural(found.unopened, "unopened vial"))
    if open_ml:
        parts.append(f"{open_ml} mL in open vials")
    return " and ".join(parts)


@dataclass(frozen=True)
class Alerts:
    """The day's alerts of one clinic, each a sentence, by kind."""

    past: list[str]  # opened vials past their beyond-use time
    soon: list[str]  # opened vials near it
    reorder: list[str]  # products at or below their reorder level
    expired: list[str]  # lots past their expiry date with stock left
    expiring: list[str]  # lots near it

    @property
    def total(self) -> int:
        return sum(
            len(x) for x in (self.past, self.soon, self.reorder, self.expired, self.expiring)
        )


def gather(clinic: Clinic, now: dt.datetime) -> Alerts:
    """What needs attention in the clinic's stock at `now`, as Today says it."""
    found = stock.alerts(clinic.pk, now)
    today = local_today(clinic, now)
    past, soon = [], []
    for vial in found.vials:
        assert vial.beyond_use_at is not None
        until = formats.when_text(vial.beyond_use_at, clinic)
        if vial.beyond_use_at <= now:
            opened = formats.when_text(vial.opened_at, clinic)
            past.append(
                f"{vial.label} was opened on {opened} and could be used until {until}. "
                "Throw it away, and close it on the lot's page."
            )
        else:
            soon.append(f"{vial.label} must be used by {until}; after that it is thrown away.")
    reorder = [
        # `unopened` is annotated on each product by stock.alerts.
        f"{p.name} has {_plural(p.unopened, 'unopened vial')} left in date, at or below its "  # type: ignore[attr-defined]
        f"reorder level of {p.reorder_vials}."
        for p in found.low
    ]
    expired, expiring = [], []
    for lot_stock in stock.expiring(clinic.pk, today):
        lot = lot_stock.lot
        on = formats.date_text(lot.expires_on, clinic)
        days = (lot.expires_on - today).days
        if days < 0:
            expired.append(
                f"{lot} expired on {on}, with {_left(lot_stock)} left. Throw what is left "
                "away, and record it as waste on the lot's page."
            )
        else:
            when = {0: "today", 1: "tomorrow"}.get(days, f"in {days} days")
            expiring.append(f"{lot} expires {when}, on {on}, with {_left(lot_stock)} left.")
    return Alerts(past, soon, reorder, expired, expiring)


def message(clinic: Clinic, alerts: Alerts, to: list[str], today: dt.date) -> EmailMessage:
    day = f"{today:%A} {formats.date_text(today, clinic)}"
    context = {
        "clinic": clinic,
        "day": day,
        "alerts": alerts,
        "stock_url": settings.SITE_URL + reverse("web:manage_stock"),
        "today_url": settings.SITE_URL + reverse("web:today"),
    }
    subject = (
        f"{_plural(alerts.total, 'stock alert')} at {clinic.name} on {day}"
        if alerts.total != 1
        else f"A stock alert at {clinic.name} on {day}"
    )
    return EmailMessage(
        subject,
        render_to_string("formulary/stock_alerts_email.txt", context),
        settings.DEFAULT_FROM_EMAIL,
        to,
        # RFC 3834: tells mail servers and autoresponders that no person sent this.
        headers={"Auto-Submitted": "auto-generated"},
    )


@dataclass(frozen=True)
class Outcome:
    """What happened to one claimed day's email; the worker logs one line of it."""

    row: int
    clinic: str
    day: dt.date
    status: str
    detail: str = ""

    def __str__(self) -> str:
        detail = f": {self.detail}" if self.detail else ""
        return f"stock alerts of {self.clinic} for {self.day} {self.status}{detail}"


def deliver(row: StockAlertEmail) -> Outcome:
    fresh = StockAlertEmail.objects.select_related("clinic").filter(pk=row.pk).first()
    if fresh is None:  # The clinic was deleted, and its rows with it.
        return Outcome(row.pk, "a deleted clinic", row.day, "gone")
    clinic = fresh.clinic
    now = timezone.now()
    to = recipients(clinic)
    alerts = gather(clinic, now)
    skip = None
    if local_today(clinic, now) != fresh.day:
        skip = "the clinic's day is over"
    elif not alerts.total:
        skip = "nothing in the stock needs attention"
    elif not to:
        skip = "no manager has an email address"
    status, detail = OUTBOX.send(
        row,
        skip_reason=skip,
        to=", ".join(to),
        message=lambda: message(clinic, alerts, to, fresh.day),
    )
    return Outcome(row.pk, clinic.name, fresh.day, status, detail)


def send_due(
    worker: str,
    *,
    limit: int = BATCH,
    report: Callable[[Outcome], None] | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> list[Outcome]:
    """Claim and deliver due days' emails until none is left (or `stop()`)."""
    return OUTBOX.drain(worker, deliver, limit=limit, report=report, stop=stop)
