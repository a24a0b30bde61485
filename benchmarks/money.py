"""Money: issuing an invoice with its payment, and the manager's reports over a busy year.

1. Build a clinic with PATIENTS patients and a year of money: YEAR_SESSIONS sessions invoiced
   one per visit, each paid (by a mix of methods), with a refund now and then. The rows are
   written in bulk, as the actions would write them, so the build takes seconds.
2. Baseline: fetch one invoice by primary key.
3. Measure issuing an invoice of one line and taking its payment, through billing.actions
   (two transactions, with the counter's and the invoice's row locks).
4. Measure the daily close of a busy day, and the balances outstanding over the whole year.
5. Print p50/p95 in ms and each p95's ratio to the baseline.
"""

from __future__ import annotations

import datetime as dt
import platform
import random
import statistics
import time
from decimal import Decimal

from django.utils import timezone

from benchmarks.timing import percentile, time_ms

PATIENTS = 300
YEAR_SESSIONS = 25_000
RUNS = 200


def _build(sessions: int) -> tuple[object, list[object], object, dt.date]:
    from mesoclinic.accounts.models import Clinic, Membership, User
    from mesoclinic.billing.models import (
        Invoice,
        InvoiceCounter,
        InvoiceLine,
        LedgerEntry,
        Payment,
        PriceItem,
    )
    from mesoclinic.patients.models import Patient

    clinic = Clinic.objects.create(name="Money bench", timezone="America/New_York", currency="USD")
    desk = User.objects.create_user("bench-desk")
    Membership.objects.create(user=desk, clinic=clinic, role=Membership.Role.FRONT_DESK)
    price = PriceItem.objects.create(
        clinic=clinic, kind="session", name="Session, one area", amount=Decimal("500")
    )
    patients = Patient.objects.bulk_create(
        Patient(clinic=clinic, first_name="P", last_name=f"{n}", date_of_birth=dt.date(1980, 1, 1))
        for n in range(PATIENTS)
    )
    rng = random.Random(15)
    tz = clinic.tz
    start = dt.datetime.combine(timezone.localdate() - dt.timedelta(days=365), dt.time(9), tz)
    methods = ["cash", "card_terminal", "bank_transfer"]
    invoices, lines, payments, entries = [], [], [], []
    for n in range(sessions):
        at = start + dt.timedelta(minutes=n * 365 * 24 * 60 // sessions)
        patient = rng.choice(patients)
        invoices.append(
            Invoice(
                clinic=clinic,
                patient=patient,
                number=n + 1,
                currency="USD",
                subtotal=Decimal("500"),
                tax=Decimal("0"),
                total=Decimal("500"),
                issued_at=at,
                issued_by=desk,
            )
        )
    Invoice.objects.bulk_create(invoices, batch_size=2000)
    InvoiceCounter.objects.create(clinic=clinic, last=sessions)
    for inv in invoices:
        lines.append(
            InvoiceLine(
                invoice=inv,
                description=price.name,
                quantity=1,
                unit_amount=Decimal("500"),
                tax_rate=Decimal("0"),
                net=Decimal("500"),
                tax=Decimal("0"),
            )
        )
        entries.append(
            LedgerEntry(
                clinic=clinic,
                patient=inv.patient,
                at=inv.issued_at,
                amount=Decimal("500"),
                currency="USD",
                invoice=inv,
                description=f"Invoice {inv.number}",
            )
        )
        if rng.random() < 0.9:
            payments.append(
                Payment(
                    clinic=clinic,
                    patient=inv.patient,
                    invoice=inv,
                    method=rng.choice(methods),
                    amount=Decimal("500"),
                    currency="USD",
                    reference="R",
                    at=inv.issued_at + dt.timedelta(minutes=5),
                    by=desk,
                )
            )
    InvoiceLine.objects.bulk_create(lines, batch_size=2000)
    Payment.objects.bulk_create(payments, batch_size=2000)
    entries += [
        LedgerEntry(
            clinic=clinic,
            patient=p.patient,
            at=p.at,
            amount=-p.amount,
            currency="USD",
            payment=p,
            description="Payment",
        )
        for p in payments
    ]
    LedgerEntry.objects.bulk_create(entries, batch_size=2000)
    busiest = payments[len(payments) // 2].at.astimezone(tz).date()
    return clinic, patients, desk, busiest


def run(sessions: int = YEAR_SESSIONS, runs: int = RUNS) -> dict[str, float]:
    from mesoclinic.billing import actions, reports
    from mesoclinic.billing.models import Invoice

    started = time.perf_counter()
    clinic, patients, desk, day = _build(sessions)
    build_s = time.perf_counter() - started
    rng = random.Random(7)
    ids = list(Invoice.objects.filter(clinic=clinic).values_list("pk", flat=True)[:1000])
    baseline = time_ms(lambda: Invoice.objects.get(pk=rng.choice(ids)), runs)
    line = actions.LineInput("Session, one area", Decimal("500"), Decimal("8.875"))

    def invoice_and_pay() -> None:
        invoice = actions.issue_invoice(rng.choice(patients), [line], user=desk)  # type: ignore[arg-type]
        actions.record_payment(invoice, invoice.total, "card_terminal", user=desk, reference="T")

    issuing = time_ms(invoice_and_pay, runs)
    close = time_ms(lambda: reports.daily_close(clinic, day), 20)  # type: ignore[arg-type]
    owed = time_ms(lambda: reports.outstanding(clinic), 10)  # type: ignore[arg-type]
    base = percentile(baseline, 0.95)
    print(
        f"money benchmark · {platform.machine()} · {platform.python_version()} · "
        f"{dt.date.today().isoformat()}"
    )
    print(
        f"  a year of {sessions:,} invoiced sessions and their payments, built in {build_s:.1f} s"
    )
    figures = {}
    for name, samples in (
        ("baseline: one invoice by key", baseline),
        ("an invoice and its payment", issuing),
        ("the daily close of a busy day", close),
        ("balances outstanding, whole year", owed),
    ):
        p95 = percentile(samples, 0.95)
        figures[name] = p95
        print(
            f"  {name:<34} p50 {statistics.median(samples):7.1f} ms  p95 {p95:7.1f} ms"
            f"  ({p95 / base:5.1f}x baseline)"
        )
    return figures
