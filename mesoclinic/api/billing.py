"""Money through the API: the price list, a patient's account, invoices, payments, credit notes,
refunds and the daily close. The front desk and managers issue invoices and take payments;
only a manager writes a credit note or a refund, or changes the price list. Another clinic's
objects are 404, and reading a patient's account is audited."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Literal

from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.utils import timezone
from ninja import Router, Schema, Status
from pydantic import Field

from mesoclinic.access import (
    MANAGE,
    MONEY,
    access_course,
    access_invoice,
    access_patient,
    access_payment,
    prices_for,
)
from mesoclinic.accounts.models import AuditEvent, audit
from mesoclinic.api.auth import caller
from mesoclinic.billing import actions, money, packages, reports
from mesoclinic.billing.models import Invoice, LedgerEntry, Payment, PriceItem
from mesoclinic.lib import limits

router = Router(tags=["money"])

Amount = Field(gt=0, le=10_000_000, max_digits=14, decimal_places=3)


class PriceIn(Schema):
    kind: Literal[
        "consultation", "allergy_test", "session", "review", "maintenance", "product", "fee"
    ]
    name: str = Field(min_length=1, max_length=200)
    amount: Decimal = Field(ge=0, le=10_000_000, max_digits=14, decimal_places=3)
    tax_rate: Decimal = Field(Decimal("0"), ge=0, le=100, max_digits=6, decimal_places=3)


class LineIn(Schema):
    price: int | None = Field(None, ge=1, description="A price list item; or give the line.")
    description: str = Field("", max_length=300)
    unit_amount: Decimal = Field(Decimal("0"), ge=0, le=10_000_000, max_digits=14, decimal_places=3)
    tax_rate: Decimal = Field(Decimal("0"), ge=0, le=100, max_digits=6, decimal_places=3)
    quantity: int = Field(1, ge=1, le=1000)


class InvoiceIn(Schema):
    lines: list[LineIn] = Field(min_length=1, max_length=100)
    note: str = Field("", max_length=limits.NOTES)


class PackageIn(Schema):
    sessions: int = Field(ge=1, le=100)
    price: Decimal = Field(gt=0, le=10_000_000, max_digits=14, decimal_places=3)


class PaymentIn(Schema):
    amount: Decimal = Amount
    method: Literal["cash", "card_terminal", "bank_transfer"]
    reference: str = Field("", max_length=100)


class CreditIn(Schema):
    amount: Decimal = Amount
    reason: str = Field(min_length=1, max_length=limits.REASON)


def _m(amount: Decimal, currency: str) -> str:
    """An amount as text, to the currency's minor unit ("450.00", "1100" in yen)."""
    return str(money.rounded(amount, currency))


def _price_out(p: PriceItem) -> dict[str, Any]:
    return {
        "id": p.pk,
        "kind": p.kind,
        "name": p.name,
        "amount": _m(p.amount, p.clinic.currency),
        "tax_rate": str(p.tax_rate.normalize()),
        "active": p.active,
    }


def _invoice_out(invoice: Invoice) -> dict[str, Any]:
    figures = actions.amounts(invoice) if invoice.kind == Invoice.Kind.INVOICE else None
    c = invoice.currency
    return {
        "id": invoice.pk,
        "kind": invoice.kind,
        "number": invoice.number,
        "patient": invoice.patient_id,
        "credits": invoice.credits.number if invoice.credits else None,
        "currency": c,
        "subtotal": _m(invoice.subtotal, c),
        "tax": _m(invoice.tax, c),
        "total": _m(invoice.total, c),
        "paid": _m(figures["paid"], c) if figures else None,
        "credited": _m(figures["credited"], c) if figures else None,
        "due": _m(figures["due"], c) if figures else None,
        "issued_at": invoice.issued_at,
        "note": invoice.note,
        "lines": [
            {
                "description": line.description,
                "quantity": line.quantity,
                "unit_amount": _m(line.unit_amount, c),
                "tax_rate": str(line.tax_rate.normalize()),
                "net": _m(line.net, c),
                "tax": _m(line.tax, c),
            }
            for line in invoice.lines.all()
        ],
    }


def _package_out(state: packages.PackageState) -> dict[str, Any]:
    p = state.package
    return {
        "id": p.pk,
        "course": p.course_id,
        "sessions": p.sessions,
        "used": state.used,
        "left": state.left,
        "price": _m(p.price, p.currency),
        "value_left": _m(state.value_left, p.currency),
        "invoice": p.invoice_id,
        "sold_at": p.sold_at,
    }


def _payment_out(p: Payment) -> dict[str, Any]:
    return {
        "id": p.pk,
        "kind": p.kind,
        "invoice": p.invoice_id,
        "method": p.method,
        "amount": _m(p.amount, p.currency),
        "currency": p.currency,
        "reference": p.reference,
        "refund_of": p.refund_of_id,
        "at": p.at,
    }


@router.get("/prices")
def list_prices(request: HttpRequest) -> list[dict[str, Any]]:
    """The clinic's price list."""
    return [_price_out(p) for p in prices_for(caller(request))]


@router.post("/prices", response={201: dict})
def add_price(request: HttpRequest, payload: PriceIn) -> Status[dict[str, Any]]:
    who = caller(request)
    who.require(MANAGE)
    if PriceItem.objects.filter(clinic=who.clinic, name__iexact=payload.name.strip()).exists():
        raise ValidationError({"name": "the price list already has an item with this name."})
    item = PriceItem.objects.create(
        clinic=who.clinic,
        kind=payload.kind,
        name=payload.name.strip(),
        amount=payload.amount,
        tax_rate=payload.tax_rate,
    )
    audit(clinic=who.clinic, user=who.user, action=AuditEvent.Action.CREATE, obj=item)
    return Status(201, _price_out(item))


@router.get("/patients/{patient_id}/account")
def account(request: HttpRequest, patient_id: int) -> dict[str, Any]:
    """A patient's balance, ledger and invoices."""
    who = caller(request)
    patient = access_patient(who, patient_id, MONEY, view=True)
    entries = LedgerEntry.objects.filter(patient=patient).order_by("at", "id")
    return {
        "patient": patient.pk,
        "currency": patient.clinic.currency,
        "balance": _m(actions.balance(patient), patient.clinic.currency),
        "ledger": [
            {"at": e.at, "amount": _m(e.amount, e.currency), "description": e.description}
            for e in entries
        ],
        "packages": [_package_out(state) for state in packages.states(patient=patient)],
        "invoices": [
            _invoice_out(i)
            for i in Invoice.objects.filter(patient=patient)
            .select_related("credits")
            .prefetch_related("lines")
        ],
    }


@router.post("/patients/{patient_id}/invoices", response={201: dict})
def issue_invoice(
    request: HttpRequest, patient_id: int, payload: InvoiceIn
) -> Status[dict[str, Any]]:
    """Issue an invoice of price-list items or lines given in full."""
    who = caller(request)
    patient = access_patient(who, patient_id, MONEY)
    prices = {p.pk: p for p in prices_for(who).filter(active=True)}
    lines = []
    for n, line in enumerate(payload.lines):
        if line.price is not None:
            if line.price not in prices:
                raise ValidationError({f"lines.{n}.price": "no such item on the price list."})
            lines.append(actions.LineInput.of(prices[line.price], line.quantity))
        elif not line.description.strip():
            raise ValidationError(
                {f"lines.{n}": "name a price list item, or give a description and an amount."}
            )
        else:
            lines.append(
                actions.LineInput(line.description, line.unit_amount, line.tax_rate, line.quantity)
            )
    invoice = actions.issue_invoice(patient, lines, user=who.user, note=payload.note, via="api")
    return Status(201, _invoice_out(invoice))


@router.post("/courses/{course_id}/packages", response={201: dict})
def sell_package(
    request: HttpRequest, course_id: int, payload: PackageIn
) -> Status[dict[str, Any]]:
    """Sell a course as a package of sessions at a package price, with its invoice."""
    who = caller(request)
    course = access_course(who, course_id, MONEY)
    package = packages.sell(course, payload.sessions, payload.price, user=who.user, via="api")
    return Status(201, _package_out(packages.PackageState(package, 0)))


@router.get("/invoices/{invoice_id}")
def get_invoice(request: HttpRequest, invoice_id: int) -> dict[str, Any]:
    return _invoice_out(access_invoice(caller(request), invoice_id, MONEY, view=True))


@router.post("/invoices/{invoice_id}/payments", response={201: dict})
def pay(request: HttpRequest, invoice_id: int, payload: PaymentIn) -> Status[dict[str, Any]]:
    """Take a payment against an invoice: cash, the clinic's card terminal (with its
    reference) or a bank transfer (with its reference)."""
    who = caller(request)
    invoice = access_invoice(who, invoice_id, MONEY)
    payment = actions.record_payment(
        invoice,
        payload.amount,
        payload.method,
        user=who.user,
        reference=payload.reference,
        via="api",
    )
    return Status(201, _payment_out(payment))


@router.post("/invoices/{invoice_id}/credit-notes", response={201: dict})
def credit(request: HttpRequest, invoice_id: int, payload: CreditIn) -> Status[dict[str, Any]]:
    """A credit note correcting an invoice (managers)."""
    who = caller(request)
    invoice = access_invoice(who, invoice_id, MANAGE)
    note = actions.issue_credit_note(
        invoice, payload.amount, payload.reason, user=who.user, via="api"
    )
    return Status(201, _invoice_out(note))


@router.post("/payments/{payment_id}/refunds", response={201: dict})
def refund(request: HttpRequest, payment_id: int, payload: CreditIn) -> Status[dict[str, Any]]:
    """Refund all or part of a payment (managers)."""
    who = caller(request)
    payment = access_payment(who, payment_id, MANAGE)
    back = actions.refund(payment, payload.amount, payload.reason, user=who.user, via="api")
    return Status(201, _payment_out(back))


@router.get("/reports/daily-close")
def daily_close(request: HttpRequest, date: dt.date | None = None) -> dict[str, Any]:
    """The day's money by payment method, in the clinic's time zone (managers)."""
    who = caller(request)
    who.require(MANAGE)
    day = date or timezone.localdate(timezone.now(), who.clinic.tz)
    found = reports.daily_close(who.clinic, day)
    owed_sessions, owed_value = packages.liability(who.clinic)
    return {
        "date": found.day,
        "currency": found.currency,
        "methods": [
            {
                "method": m.method,
                "payments": m.payments,
                "taken": _m(m.taken, found.currency),
                "refunded": _m(m.refunded, found.currency),
                "net": _m(m.net, found.currency),
            }
            for m in found.methods
        ],
        "taken": _m(found.taken, found.currency),
        "invoiced": _m(found.invoiced, found.currency),
        "credited": _m(found.credited, found.currency),
        "adds_up": found.adds_up,
        "package_liability": {"sessions": owed_sessions, "value": _m(owed_value, found.currency)},
    }
