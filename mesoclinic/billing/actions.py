"""Issuing invoices and credit notes, taking payments and making refunds: each in one
transaction that writes the document, its ledger entry and its audit row together, or nothing.

What two requests could both pass is decided under a row lock: the clinic's invoice counter
(numbers with no gaps), the invoice (no payment above what is due, no credit above what is
left) and the payment (no refund above what was paid)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent, Clinic, audit
from mesoclinic.billing import money
from mesoclinic.billing.models import (
    Invoice,
    InvoiceCounter,
    InvoiceLine,
    LedgerEntry,
    Payment,
    PriceItem,
)
from mesoclinic.patients.models import Patient

ZERO = Decimal("0")


@dataclass(frozen=True)
class LineInput:
    description: str
    unit_amount: Decimal
    tax_rate: Decimal
    quantity: int = 1
    discount_percent: Decimal = ZERO

    @classmethod
    def of(cls, item: PriceItem, quantity: int = 1) -> LineInput:
        return cls(item.name, item.amount, item.tax_rate, quantity)


def _enter(
    source: Invoice | Payment, amount: Decimal, description: str, at: dt.datetime
) -> LedgerEntry:
    """The ledger entry of a document or a payment: `amount` is what the patient owes more
    (an invoice, a refund) or less (a credit note, a payment)."""
    return LedgerEntry.objects.create(
        clinic_id=source.clinic_id,
        patient_id=source.patient_id,
        at=at,
        amount=amount,
        currency=source.currency,
        invoice=source if isinstance(source, Invoice) else None,
        payment=source if isinstance(source, Payment) else None,
        description=description,
    )


def _number(clinic: Clinic) -> int:
    """The clinic's next invoice number, under the counter's row lock: the caller's
    transaction holds it until the invoice is written, so a rollback gives the number back."""
    InvoiceCounter.objects.get_or_create(clinic=clinic)
    counter = InvoiceCounter.objects.select_for_update().get(clinic=clinic)
    counter.last += 1
    counter.save(update_fields=["last"])
    return counter.last


@dataclass(frozen=True)
class PricedLine:
    line: LineInput
    gross: Decimal  # quantity × unit amount
    discount: Decimal
    net: Decimal  # gross less discount, before tax
    tax: Decimal


def price_lines(lines: list[LineInput], currency: str) -> list[PricedLine]:
    """Each line's amounts in the currency's minor unit: the discount is taken off before tax,
    and each line's tax is rounded on its own."""
    if not lines:
        raise ValidationError({"lines": "an invoice has at least one line."})
    priced = []
    for n, line in enumerate(lines):
        if line.quantity < 1:
            raise ValidationError({f"lines.{n}.quantity": "must be at least 1."})
        if line.unit_amount < 0:
            raise ValidationError({f"lines.{n}.unit_amount": "cannot be below 0."})
        if not ZERO <= line.discount_percent <= 100:
            raise ValidationError({f"lines.{n}.discount_percent": "must be 0 to 100."})
        if not line.description.strip():
            raise ValidationError({f"lines.{n}.description": "say what the line is for."})
        gross = money.rounded(line.unit_amount * line.quantity, currency)
        discount = money.rounded(gross * line.discount_percent / 100, currency)
        net = gross - discount
        priced.append(
            PricedLine(line, gross, discount, net, money.tax_of(net, line.tax_rate, currency))
        )
    return priced


def issue_invoice(
    patient: Patient,
    lines: list[LineInput],
    *,
    user: Any,
    note: str = "",
    via: str = "web",
    course: Any = None,
    appointment: Any = None,
) -> Invoice:
    """Issue an invoice of `lines` to the patient, in the clinic's currency, for a course or a
    visit when it is for one."""
    clinic = patient.clinic
    currency = clinic.currency
    priced = price_lines(lines, currency)
    for name, thing in (("course", course), ("appointment", appointment)):
        if thing is not None and thing.patient_id != patient.pk:
            raise ValidationError({name: "belongs to another patient."})
    subtotal = sum((p.net for p in priced), ZERO)
    tax = sum((p.tax for p in priced), ZERO)
    if subtotal + tax <= 0:
        raise ValidationError({"lines": "an invoice's total must be more than 0."})
    with transaction.atomic():
        invoice = Invoice.objects.create(
            clinic=clinic,
            patient=patient,
            number=_number(clinic),
            course=course,
            appointment=appointment,
            currency=currency,
            subtotal=subtotal,
            tax=tax,
            total=subtotal + tax,
            note=note.strip(),
            issued_at=timezone.now(),
            issued_by=user,
        )
        InvoiceLine.objects.bulk_create(
            InvoiceLine(
                invoice=invoice,
                description=p.line.description.strip(),
                quantity=p.line.quantity,
                unit_amount=money.rounded(p.line.unit_amount, currency),
                tax_rate=p.line.tax_rate,
                discount=p.discount,
                net=p.net,
                tax=p.tax,
            )
            for p in priced
        )
        _enter(invoice, invoice.total, f"Invoice {invoice.number}", invoice.issued_at)
        audit(
            clinic=clinic,
            user=user,
            action=AuditEvent.Action.CREATE,
            obj=invoice,
            patient_id=patient.pk,
            via=via,
            number=invoice.number,
            total=str(invoice.total),
        )
    return invoice


def _locked(invoice: Invoice) -> Invoice:
    return (
        Invoice.objects.select_for_update().select_related("clinic", "patient").get(pk=invoice.pk)
    )


def amounts(invoice: Invoice) -> dict[str, Decimal]:
    """What has been paid (less refunds) and credited against an invoice, and what is due."""
    payments = invoice.payments.aggregate(
        paid=Sum("amount", filter=Q(kind=Payment.Kind.PAYMENT), default=ZERO),
        refunded=Sum("amount", filter=Q(kind=Payment.Kind.REFUND), default=ZERO),
    )
    credited = invoice.credit_notes.aggregate(c=Sum("total", default=ZERO))["c"]
    paid = money.rounded(payments["paid"] - payments["refunded"], invoice.currency)
    credited = money.rounded(credited, invoice.currency)
    return {"paid": paid, "credited": credited, "due": invoice.total - credited - paid}


def record_payment(
    invoice: Invoice,
    amount: Decimal,
    method: str,
    *,
    user: Any,
    reference: str = "",
    via: str = "web",
    online: bool = False,
) -> Payment:
    """A payment against an invoice, up to what is due on it. An online card payment is
    recorded only from the provider's verified notice (`online`, billing/online.py)."""
    if invoice.kind != Invoice.Kind.INVOICE:
        raise ValidationError({"invoice": "a payment is against an invoice, not a credit note."})
    if method not in Payment.Method.values or (method == Payment.Method.ONLINE_CARD) != online:
        raise ValidationError(
            {"method": "choose how the patient paid: cash, card at the terminal or bank transfer."}
        )
    if method != Payment.Method.CASH and not reference.strip():
        raise ValidationError(
            {"reference": "give the terminal's or the bank's reference for this payment."}
        )
    amount = money.rounded(amount, invoice.currency)
    if amount <= 0:
        raise ValidationError({"amount": "must be more than 0."})
    with transaction.atomic():
        invoice = _locked(invoice)
        due = amounts(invoice)["due"]
        # A card paid online is already charged: it is recorded even above what is due (a
        # payment at the desk meanwhile), and the invoice then shows what to give back.
        if amount > due and not online:
            raise ValidationError(
                {"amount": f"is more than the {money.words(due, invoice.currency)} due."}
            )
        payment = Payment.objects.create(
            clinic=invoice.clinic,
            patient=invoice.patient,
            invoice=invoice,
            method=method,
            amount=amount,
            currency=invoice.currency,
            reference=reference.strip(),
            at=timezone.now(),
            by=user,
        )
        _enter(
            payment,
            -amount,
            f"Payment for invoice {invoice.number} ({payment.get_method_display()})",
            payment.at,
        )
        audit(
            clinic=invoice.clinic,
            user=user,
            action=AuditEvent.Action.CREATE,
            obj=payment,
            patient_id=invoice.patient_id,
            via=via,
            invoice=invoice.number,
            amount=str(amount),
            method=method,
        )
    return payment


def issue_credit_note(
    invoice: Invoice, amount: Decimal, reason: str, *, user: Any, via: str = "web"
) -> Invoice:
    """A credit note correcting an invoice by `amount` (tax included), up to what is neither
    credited nor paid: a paid invoice is refunded first."""
    if invoice.kind != Invoice.Kind.INVOICE:
        raise ValidationError({"invoice": "a credit note corrects an invoice."})
    if not reason.strip():
        raise ValidationError({"reason": "a credit note says why."})
    currency = invoice.currency
    amount = money.rounded(amount, currency)
    if amount <= 0:
        raise ValidationError({"amount": "must be more than 0."})
    with transaction.atomic():
        invoice = _locked(invoice)
        open_amount = amounts(invoice)["due"]
        if amount > open_amount:
            raise ValidationError(
                {
                    "amount": f"is more than the {money.words(open_amount, currency)} neither "
                    "paid nor credited; refund a payment first."
                }
            )
        # The tax is credited in the invoice's own proportion.
        tax = money.rounded(invoice.tax * amount / invoice.total, currency)
        note = Invoice.objects.create(
            clinic=invoice.clinic,
            patient=invoice.patient,
            kind=Invoice.Kind.CREDIT_NOTE,
            number=_number(invoice.clinic),
            credits=invoice,
            currency=currency,
            subtotal=amount - tax,
            tax=tax,
            total=amount,
            note=reason.strip(),
            issued_at=timezone.now(),
            issued_by=user,
        )
        InvoiceLine.objects.create(
            invoice=note,
            description=f"Credit for invoice {invoice.number}: {reason.strip()}"[:300],
            quantity=1,
            unit_amount=amount - tax,
            tax_rate=ZERO,
            net=amount - tax,
            tax=tax,
        )
        _enter(
            note, -amount, f"Credit note {note.number} for invoice {invoice.number}", note.issued_at
        )
        audit(
            clinic=invoice.clinic,
            user=user,
            action=AuditEvent.Action.CREATE,
            obj=note,
            patient_id=invoice.patient_id,
            via=via,
            credits=invoice.number,
            amount=str(amount),
            reason=reason.strip(),
        )
    return note


def refund(
    payment: Payment, amount: Decimal, reason: str, *, user: Any, via: str = "web"
) -> Payment:
    """Give back up to what is left of a payment, by the payment's own method."""
    if payment.kind != Payment.Kind.PAYMENT:
        raise ValidationError({"payment": "only a payment can be refunded."})
    if not reason.strip():
        raise ValidationError({"reason": "a refund says why."})
    amount = money.rounded(amount, payment.currency)
    if amount <= 0:
        raise ValidationError({"amount": "must be more than 0."})
    with transaction.atomic():
        payment = (
            Payment.objects.select_for_update()
            .select_related("clinic", "patient", "invoice")
            .get(pk=payment.pk)
        )
        refunded = payment.refunds.aggregate(r=Sum("amount", default=ZERO))["r"]
        left = payment.amount - refunded
        if amount > left:
            left_words = money.words(left, payment.currency)
            raise ValidationError({"amount": f"is more than the {left_words} left to refund."})
        reference = ""
        if payment.method == Payment.Method.ONLINE_CARD:
            # The card is refunded by the provider first; a refusal there writes nothing here.
            from mesoclinic.billing import online

            reference = online.refund_at_provider(payment, amount)
        back = Payment.objects.create(
            clinic=payment.clinic,
            patient=payment.patient,
            invoice=payment.invoice,
            kind=Payment.Kind.REFUND,
            method=payment.method,
            amount=amount,
            currency=payment.currency,
            reference=reference,
            refund_of=payment,
            reason=reason.strip(),
            at=timezone.now(),
            by=user,
        )
        _enter(back, amount, f"Refund for invoice {payment.invoice.number}", back.at)
        audit(
            clinic=payment.clinic,
            user=user,
            action=AuditEvent.Action.CREATE,
            obj=back,
            patient_id=payment.patient_id,
            via=via,
            refund_of=payment.pk,
            amount=str(amount),
            reason=reason.strip(),
        )
    return back


def balance(patient: Patient) -> Decimal:
    """What the patient owes the clinic (negative: what the clinic owes the patient)."""
    total = LedgerEntry.objects.filter(patient=patient).aggregate(b=Sum("amount", default=ZERO))[
        "b"
    ]
    return money.rounded(total, patient.clinic.currency)


def day_bounds(clinic: Clinic, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time(0), tzinfo=clinic.tz)
    return start, start + dt.timedelta(days=1)
