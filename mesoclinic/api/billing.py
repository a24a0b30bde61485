"""Money through the API: the price list, a patient's account, invoices, payments, credit notes,
refunds, the daily close and revenue. The front desk and managers issue invoices and take payments;
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
    access_appointment,
    access_course,
    access_invoice,
    access_package,
    access_patient,
    access_payment,
    access_quote,
    prices_for,
)
from mesoclinic.accounts.models import AuditEvent, audit
from mesoclinic.api.auth import caller
from mesoclinic.billing import actions, fees, money, online, packages, quotes, reports
from mesoclinic.billing.models import (
    Invoice,
    LedgerEntry,
    Payment,
    PaymentPolicy,
    PriceItem,
    Quote,
)
from mesoclinic.billing.policy import policy_for, terms_text
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
        "tax_rate": money.percent(p.tax_rate),
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
                "tax_rate": money.percent(line.tax_rate),
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


@router.get("/reports/revenue")
def revenue(
    request: HttpRequest, start: dt.date | None = None, end: dt.date | None = None
) -> dict[str, Any]:
    """Revenue before tax from `start` to `end` (local days, both included; by default this
    month and the eleven before it), by month, protocol and practitioner, counted when the
    service is given: docs/money.md (managers)."""
    who = caller(request)
    who.require(MANAGE)
    today = timezone.localdate(timezone.now(), who.clinic.tz)
    first, last = reports.last_twelve_months(today)
    found = reports.revenue(who.clinic, start or first, end or last)
    c = found.currency
    return {
        "start": found.start,
        "end": found.end,
        "currency": c,
        "total": _m(found.total, c),
        "months": [{"month": f"{m:%Y-%m}", "amount": _m(a, c)} for m, a in found.by_month],
        "protocols": [{"protocol": t.label, "amount": _m(t.amount, c)} for t in found.by_protocol],
        "practitioners": [
            {"practitioner": t.label, "amount": _m(t.amount, c)} for t in found.by_practitioner
        ],
        "rows": [
            {
                "month": f"{r.month:%Y-%m}",
                "protocol_key": r.protocol_key,
                "protocol": r.protocol,
                "practitioner_id": r.practitioner_id,
                "practitioner": r.practitioner,
                "amount": _m(r.amount, c),
            }
            for r in found.rows
        ],
    }


# Quotes, online payment, fees, package settlement and the payment policy.


class QuoteIn(Schema):
    kind: Literal["package", "sessions"]
    sessions: int | None = Field(None, ge=1, le=100, description="By default the course's plan.")
    price: int | None = Field(None, ge=1, description="For sessions: a session price item.")
    package_price: Decimal | None = Field(
        None, gt=0, le=10_000_000, max_digits=14, decimal_places=3
    )
    discount_percent: Decimal = Field(Decimal("0"), ge=0, le=100, max_digits=5, decimal_places=2)


class AcceptIn(Schema):
    signed_name: str = Field(min_length=1, max_length=200)
    signature: str = Field("", max_length=limits.SIGNATURE)
    text_sha256: str = Field(min_length=64, max_length=64)


class CheckoutIn(Schema):
    amount: Decimal = Amount
    success_url: str = Field(min_length=1, max_length=2000)
    cancel_url: str = Field(min_length=1, max_length=2000)


class PolicyIn(Schema):
    deposit_percent: Decimal = Field(ge=0, le=100, max_digits=5, decimal_places=2)
    quote_valid_days: int = Field(ge=1, le=365)
    late_cancel_hours: int = Field(ge=1, le=168)
    late_cancel_fee: Decimal = Field(ge=0, le=10_000_000, max_digits=14, decimal_places=3)
    no_show_fee: Decimal = Field(ge=0, le=10_000_000, max_digits=14, decimal_places=3)
    package_refund: Literal["pro_rata", "full_price", "none"]
    insurance_notice: str = Field("", max_length=limits.REASON)
    extra_terms: str = Field("", max_length=limits.NOTES)


def _quote_out(q: Quote) -> dict[str, Any]:
    c = q.currency
    return {
        "id": q.pk,
        "patient": q.patient_id,
        "course": q.course_id,
        "kind": q.kind,
        "sessions": q.sessions,
        "status": q.status,
        "currency": c,
        "subtotal": _m(q.subtotal, c),
        "discount": _m(q.discount, c),
        "tax": _m(q.tax, c),
        "total": _m(q.total, c),
        "deposit": _m(q.deposit, c),
        "deposit_due": _m(quotes.deposit_due(q), c),
        "valid_until": q.valid_until,
        "text": q.text,
        "text_sha256": q.text_sha256,
        "issued_at": q.issued_at,
        "accepted_at": q.accepted_at,
        "accepted_in": q.accepted_in or None,
        "signed_name": q.signed_name or None,
        "invoice": q.package.invoice_id if q.package else None,
    }


def _policy_out(p: PaymentPolicy) -> dict[str, Any]:
    c = p.clinic.currency
    return {
        "deposit_percent": money.percent(p.deposit_percent),
        "quote_valid_days": p.quote_valid_days,
        "late_cancel_hours": p.late_cancel_hours,
        "late_cancel_fee": _m(p.late_cancel_fee, c),
        "no_show_fee": _m(p.no_show_fee, c),
        "package_refund": p.package_refund,
        "insurance_notice": p.insurance_notice,
        "extra_terms": p.extra_terms,
        "online_payments": p.online,
        "terms": terms_text(p),
    }


@router.post("/courses/{course_id}/quotes", response={201: dict})
def quote_course(request: HttpRequest, course_id: int, payload: QuoteIn) -> Status[dict[str, Any]]:
    """Quote a course as its planned sessions at a price-list price, or as a package."""
    who = caller(request)
    course = access_course(who, course_id, MONEY)
    item = None
    if payload.price is not None:
        item = prices_for(who).filter(pk=payload.price, active=True).first()
        if item is None:
            raise ValidationError({"price": "no such item on the price list."})
    quote = quotes.issue(
        course,
        kind=payload.kind,
        user=who.user,
        sessions=payload.sessions,
        item=item,
        package_price=payload.package_price,
        discount_percent=payload.discount_percent,
        via="api",
    )
    return Status(201, _quote_out(quote))


@router.get("/quotes/{quote_id}")
def get_quote(request: HttpRequest, quote_id: int) -> dict[str, Any]:
    return _quote_out(access_quote(caller(request), quote_id, MONEY, view=True))


@router.post("/quotes/{quote_id}/accept")
def accept_quote(request: HttpRequest, quote_id: int, payload: AcceptIn) -> dict[str, Any]:
    """The patient accepts the quote's exact text in the clinic (`text_sha256` is the hash of
    the text they read), witnessed by the caller; the course is invoiced as a package."""
    who = caller(request)
    quote = quotes.accept(
        access_quote(who, quote_id, MONEY),
        signed_name=payload.signed_name,
        signature=payload.signature,
        text_sha256=payload.text_sha256,
        user=who.user,
        accepted_in="clinic",
        via="api",
    )
    return _quote_out(quote)


@router.post("/invoices/{invoice_id}/checkout", response={201: dict})
def checkout(request: HttpRequest, invoice_id: int, payload: CheckoutIn) -> Status[dict[str, Any]]:
    """Start an online card payment: send the patient to `url`. The payment is recorded when
    the card provider's signed notice arrives."""
    who = caller(request)
    invoice = access_invoice(who, invoice_id, MONEY)
    started = online.start(
        invoice,
        payload.amount,
        user=who.user,
        success_url=payload.success_url,
        cancel_url=payload.cancel_url,
    )
    return Status(
        201,
        {
            "id": started.pk,
            "provider_id": started.provider_id,
            "url": started.url,
            "amount": _m(started.amount, started.currency),
            "status": started.status,
        },
    )


@router.post("/appointments/{appointment_id}/fee", response={201: dict})
def charge_fee(request: HttpRequest, appointment_id: int) -> Status[dict[str, Any]]:
    """Invoice a missed or late-cancelled visit's fee, by the terms the patient accepted."""
    who = caller(request)
    invoice = fees.charge(access_appointment(who, appointment_id, MONEY), user=who.user, via="api")
    return Status(201, _invoice_out(invoice))


@router.post("/packages/{package_id}/settle")
def settle_package(request: HttpRequest, package_id: int) -> dict[str, Any]:
    """Settle a stopped course's package by the payment policy (managers)."""
    who = caller(request)
    package = access_package(who, package_id, MANAGE)
    rest = packages.settle(package, user=who.user, via="api")
    return {"package": package.pk, "given_back": _m(rest, package.currency)}


@router.get("/payment-policy")
def get_policy(request: HttpRequest) -> dict[str, Any]:
    who = caller(request)
    return _policy_out(policy_for(who.require(MONEY).clinic))


@router.put("/payment-policy")
def put_policy(request: HttpRequest, payload: PolicyIn) -> dict[str, Any]:
    """The clinic's payment terms (managers). The Stripe keys are set on the policy page."""
    who = caller(request)
    policy = policy_for(who.require(MANAGE).clinic)
    for name, value in payload.dict().items():
        setattr(policy, name, value)
    policy.save()
    audit(
        clinic=policy.clinic,
        user=who.user,
        action=AuditEvent.Action.UPDATE,
        obj=policy,
        via="api",
    )
    return _policy_out(policy)
