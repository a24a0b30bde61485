"""Quotes: a course priced as its planned sessions or as a package, with a discount, tax, total
and deposit, valid until a date, with the insurance notice and the payment terms.

Issuing a quote fixes its document text and the text's hash. The patient accepts that exact
text by signature, in the clinic or in the portal: the acceptance records the signature, the
time, and the payment terms as accepted (PolicyAcceptance), and sells the course as a package
whose invoice has the quote's own lines. The deposit is the part of that invoice due at once."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent, audit
from mesoclinic.billing import actions, money, packages
from mesoclinic.billing.models import PolicyAcceptance, PriceItem, Quote, QuoteLine
from mesoclinic.billing.policy import deposit_of, policy_for, terms_text
from mesoclinic.patients.models import sha256
from mesoclinic.protocols.vocab import Area

ZERO = Decimal("0")


def _date(day: dt.date) -> str:
    return f"{day.day} {day:%B %Y}"


def _percent(value: Decimal) -> str:
    return f"{money.percent(value)} %"


def _lines(
    course: Any,
    kind: str,
    sessions: int,
    item: PriceItem | None,
    package_price: Decimal | None,
    discount_percent: Decimal,
) -> list[actions.LineInput]:
    if kind == Quote.Kind.SESSIONS:
        if item is None or item.clinic_id != course.clinic_id:
            raise ValidationError({"price": "choose the price of a session from the price list."})
        return [
            actions.LineInput(item.name, item.amount, item.tax_rate, sessions, discount_percent)
        ]
    if kind == Quote.Kind.PACKAGE:
        if package_price is None or package_price <= 0:
            raise ValidationError({"package_price": "give the package's price, more than 0."})
        label = f"Package of {sessions} sessions: {course.protocol.name}"
        return [actions.LineInput(label, package_price, ZERO, 1, discount_percent)]
    raise ValidationError({"kind": "choose the planned sessions or a package."})


def render_text(quote: Quote, priced: list[actions.PricedLine], terms: str, notice: str) -> str:
    """The quote as the patient reads and signs it, every amount in its currency."""
    c = quote.currency
    course = quote.course
    names = dict(Area.choices)
    areas = ", ".join(str(names.get(a, a)).lower() for a in course.areas)
    issued = quote.clinic.local(quote.issued_at).date()
    # Blocks are parted by a blank line, and a list's lines start with "- ": the pages and the
    # PDF lay the text out by these marks alone, without changing a word of it.
    out = [
        f"Quote from {quote.clinic.name} for {quote.patient}.",
        "",
        f"Issued {_date(issued)}, valid until {_date(quote.valid_until)}.",
        "",
        f"{course.protocol.name} on {areas}: {quote.sessions} sessions, one every "
        f"{course.cadence_days} days.",
        "",
    ]
    for p in priced:
        line = p.line
        text = f"- {line.quantity} × {line.description} at {money.words(line.unit_amount, c)}"
        if p.discount:
            text += f", less {_percent(line.discount_percent)} ({money.words(p.discount, c)})"
        text += f": {money.words(p.net, c)}"
        text += f", tax {_percent(line.tax_rate)}." if line.tax_rate else ", no tax."
        out.append(text)
    out += [
        "",
        f"- Before the discount: {money.words(quote.subtotal, c)}",
        f"- Discount: {money.words(quote.discount, c)}",
        f"- Tax: {money.words(quote.tax, c)}",
        f"- Total: {money.words(quote.total, c)}",
        "",
        (
            f"Deposit due when you accept: {money.words(quote.deposit, c)}. The rest is due "
            "before the last session."
            if quote.deposit
            else "No deposit is asked. The total is due before the last session."
        ),
        "",
        "Insurance",
        "",
        notice,
        "",
        "Cancellations, missed visits and refunds",
        "",
        *(f"- {term}" for term in terms.splitlines()),
    ]
    return "\n".join(out).strip() + "\n"


def issue(
    course: Any,
    *,
    kind: str,
    user: Any,
    sessions: int | None = None,
    item: PriceItem | None = None,
    package_price: Decimal | None = None,
    discount_percent: Decimal = ZERO,
    via: str = "web",
) -> Quote:
    """Quote `course`: its planned sessions at a price-list price, or a package."""
    if course.status in ("stopped", "completed"):
        raise ValidationError({"course": "the course is over; a quote is for a course to come."})
    sessions = course.planned_sessions if sessions is None else sessions
    if not 1 <= sessions <= 100:
        raise ValidationError({"sessions": "must be 1 to 100."})
    if not ZERO <= discount_percent <= 100:
        raise ValidationError({"discount_percent": "must be 0 to 100."})
    clinic = course.clinic
    policy = policy_for(clinic)
    currency = clinic.currency
    lines = _lines(course, kind, sessions, item, package_price, discount_percent)
    priced = actions.price_lines(lines, currency)
    now = timezone.now()
    quote = Quote(
        clinic=clinic,
        patient=course.patient,
        course=course,
        kind=kind,
        sessions=sessions,
        currency=currency,
        discount_percent=discount_percent,
        subtotal=sum((p.gross for p in priced), ZERO),
        discount=sum((p.discount for p in priced), ZERO),
        tax=sum((p.tax for p in priced), ZERO),
        issued_at=now,
        issued_by=user,
        valid_until=clinic.local(now).date() + dt.timedelta(days=policy.quote_valid_days),
    )
    quote.total = quote.subtotal - quote.discount + quote.tax
    if quote.total <= 0:
        raise ValidationError({"discount_percent": "leaves nothing to pay; a quote is above 0."})
    quote.deposit = deposit_of(policy, quote.total)
    notice = policy.insurance_notice.strip() or "Ask your insurance carrier whether it pays."
    quote.text = render_text(quote, priced, terms_text(policy), notice)
    quote.text_sha256 = sha256(quote.text)
    with transaction.atomic():
        quote.save()
        QuoteLine.objects.bulk_create(
            QuoteLine(
                quote=quote,
                description=p.line.description,
                quantity=p.line.quantity,
                unit_amount=money.rounded(p.line.unit_amount, currency),
                tax_rate=p.line.tax_rate,
                discount=p.discount,
                net=p.net,
                tax=p.tax,
            )
            for p in priced
        )
        audit(
            clinic=clinic,
            user=user,
            action=AuditEvent.Action.CREATE,
            obj=quote,
            patient_id=course.patient_id,
            via=via,
            total=str(quote.total),
            deposit=str(quote.deposit),
            sha256=quote.text_sha256,
        )
    return quote


def refusal(quote: Quote, today: dt.date) -> str:
    """Why the quote cannot be accepted now, or ""."""
    if quote.status == Quote.Status.ACCEPTED:
        return "This quote is already accepted."
    if quote.status == Quote.Status.WITHDRAWN:
        return "This quote was withdrawn; ask the clinic for the new one."
    if today > quote.valid_until:
        return (
            f"This quote was valid until {_date(quote.valid_until)}; ask the clinic for a new one."
        )
    if quote.course.status in ("stopped", "completed"):
        return "The course this quote is for is over."
    return ""


def accept(
    quote: Quote,
    *,
    signed_name: str,
    signature: str,
    text_sha256: str,
    user: Any,
    accepted_in: str,
    via: str = "web",
) -> Quote:
    """The patient accepts the exact text they read (`text_sha256` is the hash of the text the
    page showed them). Under the quote's row lock: a quote is accepted once, and sells its
    course as one package."""
    name = signed_name.strip()
    if not name:
        raise ValidationError({"signed_name": "type the patient's full name as the signature."})
    with transaction.atomic():
        quote = (
            Quote.objects.select_for_update(of=("self",))
            .select_related("clinic", "patient", "course__protocol", "course__clinic")
            .get(pk=quote.pk)
        )
        if text_sha256 != quote.text_sha256 or sha256(quote.text) != quote.text_sha256:
            raise ValidationError(
                {"signed_name": "the quote changed while it was open; read it again and sign."}
            )
        now = timezone.now()
        why = refusal(quote, quote.clinic.local(now).date())
        if why:
            raise ValidationError({"signed_name": why})
        policy = policy_for(quote.clinic)
        acceptance = PolicyAcceptance.objects.create(
            clinic=quote.clinic,
            patient=quote.patient,
            text=quote.text,
            text_sha256=quote.text_sha256,
            late_cancel_hours=policy.late_cancel_hours,
            late_cancel_fee=policy.late_cancel_fee,
            no_show_fee=policy.no_show_fee,
            currency=quote.currency,
            accepted_at=now,
        )
        lines = [
            actions.LineInput(
                line.description,
                line.unit_amount,
                line.tax_rate,
                line.quantity,
                quote.discount_percent,
            )
            for line in quote.lines.all()
        ]
        # In the portal the patient signs; the invoice is issued by whoever issued the quote.
        seller = user if accepted_in == "clinic" else quote.issued_by
        package = packages.sell(quote.course, quote.sessions, lines=lines, user=seller, via=via)
        if package.invoice.total != quote.total:
            raise ValidationError({"quote": "the invoice would differ from the quote."})
        Quote.objects.filter(pk=quote.pk).update(
            status=Quote.Status.ACCEPTED,
            signed_name=name,
            signature=signature,
            method=Quote.Method.DRAWN if signature else Quote.Method.TYPED,
            accepted_at=now,
            accepted_in=accepted_in,
            witnessed_by=user if accepted_in == "clinic" else None,
            acceptance=acceptance,
            package=package,
        )
        # The course's other open quotes are no longer on offer.
        Quote.objects.filter(course=quote.course, status=Quote.Status.ISSUED).exclude(
            pk=quote.pk
        ).update(status=Quote.Status.WITHDRAWN)
        audit(
            clinic=quote.clinic,
            user=user,
            action=AuditEvent.Action.UPDATE,
            obj=quote,
            patient_id=quote.patient_id,
            via=via,
            accepted=True,
            accepted_in=accepted_in,
            sha256=quote.text_sha256,
            invoice=package.invoice.number,
        )
        quote.refresh_from_db()
    return quote


def withdraw(quote: Quote, *, user: Any, via: str = "web") -> None:
    with transaction.atomic():
        quote = Quote.objects.select_for_update().get(pk=quote.pk)
        if quote.status != Quote.Status.ISSUED:
            raise ValidationError({"quote": "only a quote waiting for the patient is withdrawn."})
        Quote.objects.filter(pk=quote.pk).update(status=Quote.Status.WITHDRAWN)
        audit(
            clinic=quote.clinic,
            user=user,
            action=AuditEvent.Action.UPDATE,
            obj=quote,
            patient_id=quote.patient_id,
            via=via,
            withdrawn=True,
        )


def deposit_due(quote: Quote) -> Decimal:
    """What is still due of an accepted quote's deposit."""
    if quote.package is None or not quote.deposit:
        return ZERO
    paid = actions.amounts(quote.package.invoice)["paid"]
    return max(ZERO, quote.deposit - paid)
