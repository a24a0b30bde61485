"""Reports for managers: the daily close by payment method, the balances outstanding, and
revenue by protocol, practitioner and month. Each is a few aggregate queries, whatever the
number of rows."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db.models import (
    Case,
    Count,
    DateField,
    DecimalField,
    OuterRef,
    Q,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce

from mesoclinic.accounts.models import Clinic
from mesoclinic.billing import money
from mesoclinic.billing.actions import ZERO, day_bounds
from mesoclinic.billing.models import Invoice, LedgerEntry, Package, PackageRedemption, Payment


@dataclass(frozen=True)
class MethodLine:
    method: str
    label: str
    payments: int
    taken: Decimal
    refunded: Decimal

    @property
    def net(self) -> Decimal:
        return self.taken - self.refunded


@dataclass(frozen=True)
class DailyClose:
    day: dt.date
    currency: str
    methods: list[MethodLine]
    invoiced: Decimal
    invoices: int
    credited: Decimal
    credit_notes: int
    ledger_change: Decimal  # the sum of the day's ledger entries

    @property
    def taken(self) -> Decimal:
        return sum((m.net for m in self.methods), ZERO)

    @property
    def adds_up(self) -> bool:
        """The ledger moved by exactly what was invoiced, less credits and money taken."""
        return self.ledger_change == self.invoiced - self.credited - self.taken


def daily_close(clinic: Clinic, day: dt.date) -> DailyClose:
    start, end = day_bounds(clinic, day)
    payments = (
        Payment.objects.filter(clinic=clinic, at__gte=start, at__lt=end)
        .values("method")
        .annotate(
            n=Count("id", filter=Q(kind=Payment.Kind.PAYMENT)),
            taken=Sum("amount", filter=Q(kind=Payment.Kind.PAYMENT), default=ZERO),
            refunded=Sum("amount", filter=Q(kind=Payment.Kind.REFUND), default=ZERO),
        )
    )
    by_method = {row["method"]: row for row in payments}
    currency = clinic.currency
    methods = [
        MethodLine(
            value,
            str(label),
            by_method.get(value, {}).get("n", 0),
            money.rounded(by_method.get(value, {}).get("taken", ZERO), currency),
            money.rounded(by_method.get(value, {}).get("refunded", ZERO), currency),
        )
        for value, label in Payment.Method.choices
    ]
    docs = Invoice.objects.filter(clinic=clinic, issued_at__gte=start, issued_at__lt=end).aggregate(
        invoiced=Sum("total", filter=Q(kind=Invoice.Kind.INVOICE), default=ZERO),
        invoices=Count("id", filter=Q(kind=Invoice.Kind.INVOICE)),
        credited=Sum("total", filter=Q(kind=Invoice.Kind.CREDIT_NOTE), default=ZERO),
        credit_notes=Count("id", filter=Q(kind=Invoice.Kind.CREDIT_NOTE)),
    )
    change = LedgerEntry.objects.filter(clinic=clinic, at__gte=start, at__lt=end).aggregate(
        s=Sum("amount", default=ZERO)
    )["s"]
    return DailyClose(
        day,
        currency,
        methods,
        money.rounded(docs["invoiced"], currency),
        docs["invoices"],
        money.rounded(docs["credited"], currency),
        docs["credit_notes"],
        money.rounded(change, currency),
    )


@dataclass(frozen=True)
class Outstanding:
    patient_id: int
    name: str
    balance: Decimal


def outstanding(clinic: Clinic) -> list[Outstanding]:
    """Every patient whose balance is not zero, the largest first."""
    rows = (
        LedgerEntry.objects.filter(clinic=clinic)
        .values("patient_id", "patient__first_name", "patient__last_name")
        .annotate(balance=Sum("amount"))
        .exclude(balance=0)
        .order_by("-balance", "patient__last_name")
    )
    return [
        Outstanding(
            r["patient_id"],
            f"{r['patient__first_name']} {r['patient__last_name']}",
            money.rounded(r["balance"], clinic.currency),
        )
        for r in rows
    ]


# Revenue by protocol, practitioner and month.

NOT_FOR_A_COURSE = "Not for a course"
NOT_FOR_A_VISIT = "Not for a visit"
# A settled package keeps part of its price that no session earned: it has no practitioner.
SETTLED = "Kept when a package was settled"
MAX_REVENUE_YEARS = 10
_SETTLED_KEY = -1  # the practitioner key of what a settled package kept


def package_session_value(subtotal: Decimal, sessions: int, k: int, currency: str) -> Decimal:
    """What the k-th session given from a package earns (1 ≤ k ≤ sessions): the package's
    price before tax over its sessions, rounded so that it is exactly what the value of the
    sessions left drops by. Each session is within one minor unit of subtotal / sessions, and
    the sessions of a package add up to exactly its subtotal."""
    return sessions_left_value(subtotal, sessions, k - 1, currency) - sessions_left_value(
        subtotal, sessions, k, currency
    )


def sessions_left_value(subtotal: Decimal, sessions: int, used: int, currency: str) -> Decimal:
    """The value, before tax, of a package's sessions not yet given, at its price per session
    (the package liability, as the daily close states it, before tax)."""
    return money.rounded(subtotal * (sessions - used) / sessions, currency)


def revenue_range_problems(start: dt.date, end: dt.date) -> dict[str, str]:
    """What is wrong with a revenue report's range, by field ("start", "end")."""
    for name, day in (("start", start), ("end", end)):
        if not 1900 <= day.year <= 2999:
            return {name: "must be between the years 1900 and 2999."}
    if start > end:
        return {"end": "must be on or after the start."}
    if end.year - start.year > MAX_REVENUE_YEARS or (
        end.year - start.year == MAX_REVENUE_YEARS
        and (end.month, end.day) >= (start.month, start.day)
    ):
        return {"end": f"must be less than {MAX_REVENUE_YEARS} years after the start."}
    return {}


def last_twelve_months(today: dt.date) -> tuple[dt.date, dt.date]:
    """The default range: this month and the eleven before it, up to today."""
    first = today.replace(day=1)
    months = first.year * 12 + first.month - 1 - 11
    return dt.date(months // 12, months % 12 + 1, 1), today


@dataclass(frozen=True)
class RevenueRow:
    month: dt.date  # the month's first day
    protocol_key: str | None  # None: not for a course
    protocol: str
    practitioner_id: int | None  # None: not for a visit, or kept when a package was settled
    practitioner: str
    amount: Decimal


@dataclass(frozen=True)
class RevenueTotal:
    label: str
    amount: Decimal


@dataclass(frozen=True)
class Revenue:
    """Revenue before tax, earned when the service is given: see `revenue`."""

    start: dt.date
    end: dt.date
    currency: str
    rows: list[RevenueRow]  # by month, then protocol, then practitioner
    by_month: list[tuple[dt.date, Decimal]]  # every month of the range, with nothing as 0
    by_protocol: list[RevenueTotal]  # the largest first
    by_practitioner: list[RevenueTotal]  # the largest first
    total: Decimal


def _months(start: dt.date, end: dt.date) -> list[dt.date]:
    """The first day of every month from `start`'s to `end`'s."""
    out, day = [], start.replace(day=1)
    while day <= end:
        out.append(day)
        day = (day + dt.timedelta(days=32)).replace(day=1)
    return out


def _month_of(field: str, clinic: Clinic, start: dt.date, end: dt.date) -> Case:
    """The month (its first day) of the moment in `field`, in the clinic's time zone, for a
    moment from `start` to `end`: compared with the instants each month ends at, which the
    database does natively, rather than converting every row's time zone."""
    whens = []
    for month in _months(start, end):
        following = (month + dt.timedelta(days=32)).replace(day=1)
        ends_at, _ = day_bounds(clinic, following)
        whens.append(When(**{f"{field}__lt": ends_at}, then=Value(month)))
    return Case(*whens, output_field=DateField())


def revenue(clinic: Clinic, start: dt.date, end: dt.date) -> Revenue:
    """Revenue before tax from `start` to `end` (local days, both included), by month, protocol
    and practitioner. It is earned when the service is given, so it reconciles with the package
    liability:

    1. An invoice that is not a package's counts its subtotal in the month it was issued, for
       its course's protocol and its visit's practitioner; a credit note on it takes its own
       subtotal off, in the credit note's month, for the same protocol and practitioner.
    2. A package's invoice counts nothing when issued: it is a prepayment. Each session given
       from the package counts its share of the invoice's subtotal (package_session_value) in
       the session's month, for the course's protocol and the session's practitioner.
    3. A settled package counts, when settled, what it kept and had not yet counted: the value
       of its sessions left less the credit notes on its invoice. Those credit notes count
       nothing on their own.

    Four aggregate queries whatever the number of invoices and sessions, and one for the names.
    """
    problems = revenue_range_problems(start, end)
    if problems:
        raise ValidationError(problems)
    currency = clinic.currency
    since, _ = day_bounds(clinic, start)
    _, until = day_bounds(clinic, end)
    amounts: dict[tuple[dt.date, str | None, int | None], Decimal] = {}

    def add(
        month: dt.date, protocol: str | None, practitioner: int | None, amount: Decimal
    ) -> None:
        key = (month, protocol, practitioner)
        amounts[key] = amounts.get(key, ZERO) + amount

    # 1. Invoices that are not a package's, and the credit notes on them.
    invoices = (
        Invoice.objects.filter(
            clinic=clinic,
            kind=Invoice.Kind.INVOICE,
            package__isnull=True,
            issued_at__gte=since,
            issued_at__lt=until,
        )
        .annotate(month=_month_of("issued_at", clinic, start, end))
        .values_list("month", "course__protocol__key", "appointment__practitioner_id")
        .annotate(amount=Sum("subtotal"))
        .order_by()
    )
    for month, protocol, practitioner, amount in invoices:
        add(month, protocol, practitioner, money.rounded(amount, currency))
    credits = (
        Invoice.objects.filter(
            clinic=clinic,
            kind=Invoice.Kind.CREDIT_NOTE,
            credits__package__isnull=True,
            issued_at__gte=since,
            issued_at__lt=until,
        )
        .annotate(month=_month_of("issued_at", clinic, start, end))
        .values_list(
            "month", "credits__course__protocol__key", "credits__appointment__practitioner_id"
        )
        .annotate(amount=Sum("subtotal"))
        .order_by()
    )
    for month, protocol, practitioner, amount in credits:
        add(month, protocol, practitioner, -money.rounded(amount, currency))

    # 2. Sessions given from packages, each by its place among its package's sessions: rows
    # with the same package price, place and group are counted together.
    place = Subquery(
        PackageRedemption.objects.filter(package_id=OuterRef("package_id"), pk__lte=OuterRef("pk"))
        .order_by()
        .values("package_id")
        .annotate(n=Count("pk"))
        .values("n")[:1]
    )
    given = (
        PackageRedemption.objects.filter(
            package__clinic=clinic,
            session__performed_at__gte=since,
            session__performed_at__lt=until,
        )
        .annotate(month=_month_of("session__performed_at", clinic, start, end), place=place)
        .values_list(
            "month",
            "package__course__protocol__key",
            "session__practitioner_id",
            "package__invoice__subtotal",
            "package__sessions",
            "place",
        )
        .annotate(n=Count("pk"))
        .order_by()
    )
    for month, protocol, practitioner, subtotal, sessions, k, n in given:
        value = package_session_value(money.rounded(subtotal, currency), sessions, k, currency)
        add(month, protocol, practitioner, value * n)

    # 3. Settled packages: the value of their sessions left, less the credit notes on them.
    used = Subquery(
        PackageRedemption.objects.filter(package_id=OuterRef("pk"))
        .order_by()
        .values("package_id")
        .annotate(n=Count("pk"))
        .values("n")[:1]
    )
    credited = Subquery(
        Invoice.objects.filter(credits_id=OuterRef("invoice_id"), kind=Invoice.Kind.CREDIT_NOTE)
        .order_by()
        .values("credits_id")
        .annotate(s=Sum("subtotal"))
        .values("s")[:1]
    )
    settled = (
        Package.objects.filter(clinic=clinic, settled_at__gte=since, settled_at__lt=until)
        .annotate(
            month=_month_of("settled_at", clinic, start, end),
            used=Coalesce(used, 0),
            credited=Coalesce(credited, ZERO, output_field=DecimalField()),
        )
        .values_list(
            "month", "course__protocol__key", "invoice__subtotal", "sessions", "used", "credited"
        )
        .annotate(n=Count("pk"))
        .order_by()
    )
    for month, protocol, subtotal, sessions, n_used, credited_subtotal, n in settled:
        left = sessions_left_value(money.rounded(subtotal, currency), sessions, n_used, currency)
        kept = (left - money.rounded(credited_subtotal, currency)) * n
        add(month, protocol, _SETTLED_KEY, kept)

    return _revenue_of(clinic, start, end, amounts)


def _revenue_of(
    clinic: Clinic,
    start: dt.date,
    end: dt.date,
    amounts: dict[tuple[dt.date, str | None, int | None], Decimal],
) -> Revenue:
    """The report from its amounts by (month, protocol key, practitioner id): the names, in
    words, and the totals."""
    from mesoclinic.accounts.models import User
    from mesoclinic.protocols.models import ClinicProtocol

    keys = {protocol for _, protocol, _ in amounts if protocol is not None}
    # A protocol is named as its latest version is.
    protocol_names: dict[str | None, str] = {None: NOT_FOR_A_COURSE}
    for key, name in (
        ClinicProtocol.objects.filter(clinic=clinic, key__in=keys)
        .order_by("key", "version")
        .values_list("key", "name")
    ):
        protocol_names[key] = name
    ids = {who for _, _, who in amounts if who is not None and who != _SETTLED_KEY}
    practitioner_names: dict[int | None, str] = {None: NOT_FOR_A_VISIT, _SETTLED_KEY: SETTLED}
    for user in User.objects.filter(pk__in=ids).only("username", "first_name", "last_name"):
        practitioner_names[user.pk] = user.display_name

    rows = sorted(
        (
            RevenueRow(
                month,
                protocol,
                protocol_names.get(protocol, protocol or NOT_FOR_A_COURSE),
                who,
                practitioner_names.get(who, NOT_FOR_A_VISIT),
                amount,
            )
            for (month, protocol, who), amount in amounts.items()
        ),
        key=lambda r: (
            r.month,
            r.protocol_key is None,
            r.protocol,
            r.practitioner_id is None,
            r.practitioner,
        ),
    )
    months = dict.fromkeys(_months(start, end), ZERO)
    by_protocol: dict[str, Decimal] = {}
    by_practitioner: dict[str, Decimal] = {}
    for r in rows:
        months[r.month] = months.get(r.month, ZERO) + r.amount
        by_protocol[r.protocol] = by_protocol.get(r.protocol, ZERO) + r.amount
        by_practitioner[r.practitioner] = by_practitioner.get(r.practitioner, ZERO) + r.amount

    def largest_first(totals: dict[str, Decimal]) -> list[RevenueTotal]:
        return [
            RevenueTotal(label, amount)
            for label, amount in sorted(totals.items(), key=lambda t: (-t[1], t[0]))
        ]

    return Revenue(
        start,
        end,
        clinic.currency,
        rows,
        sorted(months.items()),
        largest_first(by_protocol),
        largest_first(by_practitioner),
        sum((r.amount for r in rows), ZERO),
    )
