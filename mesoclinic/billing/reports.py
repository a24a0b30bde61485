"""Reports for managers: the daily close by payment method, and the balances outstanding.
Each is a few aggregate queries, whatever the number of rows."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, Q, Sum

from mesoclinic.accounts.models import Clinic
from mesoclinic.billing import money
from mesoclinic.billing.actions import ZERO, day_bounds
from mesoclinic.billing.models import Invoice, LedgerEntry, Payment


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
