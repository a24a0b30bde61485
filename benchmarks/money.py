"""Money: issuing an invoice with its payment, and the manager's reports over a busy year.

1. Build a clinic with PATIENTS patients and a year of money: YEAR_SESSIONS sessions invoiced
   one per visit (each for the patient's course and the visit's practitioner), 90 % paid by a
   mix of methods and some of the rest credited; and packages of 10 sessions (one for every
   50 invoiced sessions), paid, their sessions given over the year, one in ten settled early
   with a credit note. The rows are written in bulk, as the actions would write them, so the
   build takes seconds.
2. Baseline: fetch one invoice by primary key.
3. Measure issuing an invoice of one line and taking its payment, through billing.actions
   (two transactions, with the counter's and the invoice's row locks).
4. Measure the daily close of a busy day, the balances outstanding over the whole year, and
   revenue by protocol, practitioner and month over the year.
5. Print p50/p95 in ms and each p95's ratio to the baseline.
"""

from __future__ import annotations

import datetime as dt
import platform
import random
import statistics
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.utils import timezone

from benchmarks.timing import percentile, time_ms

PATIENTS = 300
YEAR_SESSIONS = 25_000
RUNS = 200
PRACTITIONERS = 4
SESSIONS_PER_PACKAGE_SOLD = 50  # one package of 10 sessions for every 50 invoiced sessions


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
    from mesoclinic.courses.models import Course
    from mesoclinic.patients.models import Patient
    from mesoclinic.protocols.models import do_install_protocols
    from mesoclinic.scheduling.models import Appointment

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
    practitioners = []
    for n in range(PRACTITIONERS):
        who = User.objects.create_user(f"bench-practitioner-{n}", first_name=f"Pract {n}")
        Membership.objects.create(user=who, clinic=clinic, role=Membership.Role.PRACTITIONER)
        practitioners.append(who)
    protocols = do_install_protocols(clinic)
    course_of = dict(
        zip(
            [p.pk for p in patients],
            _courses(Course, clinic, patients, protocols, rng, start.date(), desk),
            strict=True,
        )
    )
    methods = ["cash", "card_terminal", "bank_transfer"]
    visits = []
    for n in range(sessions):
        at = start + dt.timedelta(minutes=n * 365 * 24 * 60 // sessions)
        visits.append(
            Appointment(
                clinic=clinic,
                patient=rng.choice(patients),
                kind=Appointment.Kind.SESSION,
                practitioner=rng.choice(practitioners),
                starts_at=at,
                # From the instant, not the wall clock: 02:44 on the spring-forward day is
                # 07:44 UTC, and 30 minutes of wall clock after it is 07:14 UTC.
                ends_at=at.astimezone(dt.UTC) + dt.timedelta(minutes=30),
                status=Appointment.Status.DONE,
            )
        )
    Appointment.objects.bulk_create(visits, batch_size=2000)
    invoices, lines, payments, entries = [], [], [], []
    for n, seen in enumerate(visits):
        invoices.append(
            Invoice(
                clinic=clinic,
                patient=seen.patient,
                number=n + 1,
                course=course_of[seen.patient.pk],
                appointment=seen,
                currency="USD",
                subtotal=Decimal("500"),
                tax=Decimal("0"),
                total=Decimal("500"),
                issued_at=seen.starts_at,
                issued_by=desk,
            )
        )
    Invoice.objects.bulk_create(invoices, batch_size=2000)
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
    # Half the invoices left unpaid are credited in part, a week later.
    paid = {p.invoice.pk for p in payments}
    number = len(invoices)
    notes = []
    for inv in invoices:
        if inv.pk not in paid and rng.random() < 0.5:
            number += 1
            notes.append(
                Invoice(
                    clinic=clinic,
                    patient=inv.patient,
                    kind=Invoice.Kind.CREDIT_NOTE,
                    number=number,
                    credits=inv,
                    currency="USD",
                    subtotal=Decimal("100"),
                    tax=Decimal("0"),
                    total=Decimal("100"),
                    note="Goodwill",
                    issued_at=inv.issued_at + dt.timedelta(days=7),
                    issued_by=desk,
                )
            )
    Invoice.objects.bulk_create(notes, batch_size=2000)
    entries += [
        LedgerEntry(
            clinic=clinic,
            patient=note.patient,
            at=note.issued_at,
            amount=-note.total,
            currency="USD",
            invoice=note,
            description=f"Credit note {note.number}",
        )
        for note in notes
    ]
    number, sold = _packages(
        clinic, patients, protocols, practitioners, desk, rng, start, number, sessions
    )
    busiest = payments[len(payments) // 2].at.astimezone(tz).date()
    payments += sold.payments
    entries += sold.entries
    Payment.objects.bulk_create(payments, batch_size=2000)
    InvoiceCounter.objects.create(clinic=clinic, last=number)
    # A settled package's payment is refunded for the sessions not given, then credited.
    refunds = Payment.objects.bulk_create(
        Payment(
            clinic=clinic,
            patient=paid_by.patient,
            invoice=paid_by.invoice,
            kind=Payment.Kind.REFUND,
            method=paid_by.method,
            amount=rest,
            currency="USD",
            refund_of=paid_by,
            reason="The course stopped early.",
            at=at,
            by=desk,
        )
        for paid_by, at, rest in sold.refunds
    )
    entries += [
        LedgerEntry(
            clinic=clinic,
            patient=r.patient,
            at=r.at,
            amount=r.amount,
            currency="USD",
            payment=r,
            description="Refund",
        )
        for r in refunds
    ]
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
    return clinic, patients, desk, busiest


# The indication and area of a course of each shipped protocol.
PLANS = {
    "cellulite": ("cellulite", "thighs"),
    "facial_rejuvenation": ("wrinkles", "face"),
    "hair_loss": ("hair_loss", "scalp"),
    "localized_fat": ("localized_fat", "abdomen"),
}


def _courses(
    model: Any, clinic: Any, patients: list[Any], protocols: list[Any], rng: Any, on: Any, by: Any
) -> list[Any]:
    """One course for each of `patients`, of a random protocol, written in bulk."""
    made = []
    for patient in patients:
        protocol = rng.choice(protocols)
        indication, area = PLANS[protocol.key]
        made.append(
            model(
                clinic=clinic,
                patient=patient,
                protocol=protocol,
                indication=indication,
                areas=[area],
                cadence_days=7,
                planned_sessions=10,
                first_session_on=on,
                status="active",
                created_by=by,
            )
        )
    return list(model.objects.bulk_create(made, batch_size=2000))


@dataclass
class Sold:
    """The payments and ledger entries of the packages sold, to be written with the rest."""

    payments: list[Any] = field(default_factory=list)
    entries: list[Any] = field(default_factory=list)
    refunds: list[tuple[Any, dt.datetime, Decimal]] = field(
        default_factory=list
    )  # (payment, at, amount)


def _packages(
    clinic: Any,
    patients: list[Any],
    protocols: list[Any],
    practitioners: list[Any],
    desk: Any,
    rng: Any,
    start: dt.datetime,
    number: int,
    sessions: int,
) -> tuple[int, Sold]:
    """Packages of 10 sessions for 4,500, one for every SESSIONS_PER_PACKAGE_SOLD invoiced
    sessions, each on a course of its own: sold and paid by card in the year's first half,
    its sessions given weekly after (0 to 10 of them), one in ten of those not used up settled
    when its course stopped: the sessions not given refunded, then credited. Returns the last
    invoice number, and the payments, refunds and ledger entries to write with the rest."""
    from mesoclinic.billing.models import (
        Invoice,
        InvoiceLine,
        LedgerEntry,
        Package,
        PackageRedemption,
        Payment,
    )
    from mesoclinic.courses.models import Course, Session

    count = max(1, sessions // SESSIONS_PER_PACKAGE_SOLD)
    price = Decimal("4500")
    owners = [rng.choice(patients) for _ in range(count)]
    courses = _courses(Course, clinic, owners, protocols, rng, start.date(), desk)
    invoices = []
    for course in courses:
        number += 1
        invoices.append(
            Invoice(
                clinic=clinic,
                patient=course.patient,
                number=number,
                course=course,
                currency="USD",
                subtotal=price,
                tax=Decimal("0"),
                total=price,
                issued_at=start + dt.timedelta(days=rng.randint(0, 180), hours=rng.randint(0, 9)),
                issued_by=desk,
            )
        )
    Invoice.objects.bulk_create(invoices, batch_size=2000)
    InvoiceLine.objects.bulk_create(
        InvoiceLine(
            invoice=inv,
            description=f"Package of 10 sessions: {course.protocol.name}",
            quantity=1,
            unit_amount=price,
            tax_rate=Decimal("0"),
            net=price,
            tax=Decimal("0"),
        )
        for inv, course in zip(invoices, courses, strict=True)
    )
    packages = Package.objects.bulk_create(
        Package(
            clinic=clinic,
            patient=inv.patient,
            course=inv.course,
            sessions=10,
            price=price,
            currency="USD",
            invoice=inv,
            sold_at=inv.issued_at,
            sold_by=desk,
        )
        for inv in invoices
    )
    sold = Sold()
    given, notes, settled = [], [], []
    for package in packages:
        inv = package.invoice
        sold.entries.append(
            LedgerEntry(
                clinic=clinic,
                patient=inv.patient,
                at=inv.issued_at,
                amount=price,
                currency="USD",
                invoice=inv,
                description=f"Invoice {inv.number}",
            )
        )
        sold.payments.append(
            Payment(
                clinic=clinic,
                patient=inv.patient,
                invoice=inv,
                method="card_terminal",
                amount=price,
                currency="USD",
                reference="R",
                at=inv.issued_at + dt.timedelta(minutes=5),
                by=desk,
            )
        )
        used = rng.randint(0, 10)
        for n in range(1, used + 1):
            given.append(
                Session(
                    course=package.course,
                    number=n,
                    performed_at=inv.issued_at + dt.timedelta(days=7 * n),
                    practitioner=rng.choice(practitioners),
                    stimulants_avoided=True,
                )
            )
        if used < 10 and rng.random() < 0.1:
            at = inv.issued_at + dt.timedelta(days=7 * used + 10)
            number += 1
            rest = price * (10 - used) / 10
            notes.append(
                Invoice(
                    clinic=clinic,
                    patient=inv.patient,
                    kind=Invoice.Kind.CREDIT_NOTE,
                    number=number,
                    credits=inv,
                    currency="USD",
                    subtotal=rest,
                    tax=Decimal("0"),
                    total=rest,
                    note="The course stopped early.",
                    issued_at=at + dt.timedelta(minutes=1),
                    issued_by=desk,
                )
            )
            sold.refunds.append((sold.payments[-1], at, rest))
            settled.append((package.pk, at, rest))
    Session.objects.bulk_create(given, batch_size=2000)
    of_course = {p.course_id: p for p in packages}
    PackageRedemption.objects.bulk_create(
        (
            PackageRedemption(package=of_course[s.course_id], session=s, at=s.performed_at)
            for s in given
        ),
        batch_size=2000,
    )
    Invoice.objects.bulk_create(notes)
    sold.entries += [
        LedgerEntry(
            clinic=clinic,
            patient=note.patient,
            at=note.issued_at,
            amount=-note.total,
            currency="USD",
            invoice=note,
            description=f"Credit note {note.number}",
        )
        for note in notes
    ]
    for pk, at, rest in settled:
        Package.objects.filter(pk=pk).update(settled_at=at, settled_by=desk, rest_credited=rest)
    Course.objects.filter(packages__settled_at__isnull=False).update(status="stopped")
    return number, sold


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
    today = timezone.localdate(timezone.now(), clinic.tz)  # type: ignore[attr-defined]
    year = (today - dt.timedelta(days=365), today)
    earned = time_ms(lambda: reports.revenue(clinic, *year), 10)  # type: ignore[arg-type]
    found = reports.revenue(clinic, *year)  # type: ignore[arg-type]
    base = percentile(baseline, 0.95)
    print(
        f"money benchmark · {platform.machine()} · {platform.python_version()} · "
        f"{dt.date.today().isoformat()}"
    )
    print(
        f"  a year of {sessions:,} invoiced sessions and their payments, built in {build_s:.1f} s"
    )
    print(
        f"  revenue over the year: {len(found.rows)} rows of month, protocol and practitioner, "
        f"{found.total:,} {found.currency} before tax"
    )
    figures = {}
    for name, samples in (
        ("baseline: one invoice by key", baseline),
        ("an invoice and its payment", issuing),
        ("the daily close of a busy day", close),
        ("balances outstanding, whole year", owed),
        ("revenue, whole year", earned),
    ):
        p95 = percentile(samples, 0.95)
        figures[name] = p95
        print(
            f"  {name:<34} p50 {statistics.median(samples):7.1f} ms  p95 {p95:7.1f} ms"
            f"  ({p95 / base:5.1f}x baseline)"
        )
    return figures
