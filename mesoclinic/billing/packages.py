"""Packages: a course sold as N sessions at a package price, with its invoice; each session
charted on the course redeems one, until none is left. What is prepaid and not yet given is
the clinic's package liability."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent, Clinic, audit
from mesoclinic.billing import actions, money
from mesoclinic.billing.models import Package, PackageRedemption, PaymentPolicy, PriceItem
from mesoclinic.billing.policy import policy_for


def sell(
    course: Any,
    sessions: int,
    price: Decimal | None = None,
    *,
    user: Any,
    via: str = "web",
    lines: list[actions.LineInput] | None = None,
) -> Package:
    """Sell `course` as a package of `sessions` sessions for `price` (tax included), or for
    the total of `lines` (an accepted quote's): the invoice and the package are written
    together."""
    if not 1 <= sessions <= 100:
        raise ValidationError({"sessions": "must be 1 to 100."})
    if course.status in ("stopped", "completed"):
        raise ValidationError(
            {"course": "the course is over; a package is sold for a course to come."}
        )
    currency = course.clinic.currency
    if lines is None:
        price = money.rounded(price or Decimal("0"), currency)
        if price <= 0:
            raise ValidationError({"price": "must be more than 0."})
        label = f"Package of {sessions} sessions: {course.protocol.name}"
        lines = [actions.LineInput(label, price, Decimal("0"))]
    with transaction.atomic():
        invoice = actions.issue_invoice(course.patient, lines, user=user, via=via, course=course)
        package = Package.objects.create(
            clinic=course.clinic,
            patient=course.patient,
            course=course,
            sessions=sessions,
            price=invoice.total,
            currency=currency,
            invoice=invoice,
            sold_at=invoice.issued_at,
            sold_by=user,
        )
        audit(
            clinic=course.clinic,
            user=user,
            action=AuditEvent.Action.CREATE,
            obj=package,
            patient_id=course.patient_id,
            via=via,
            sessions=sessions,
            price=str(invoice.total),
            invoice=invoice.number,
        )
    return package


def redeem(session: Any) -> PackageRedemption | None:
    """Redeem one prepaid session of the course's oldest package with sessions left, for a
    session just charted (in its transaction; the package row is locked). None when the course
    has no such package."""
    # Locked first, then counted: PostgreSQL allows no FOR UPDATE with an aggregate.
    packages = list(
        Package.objects.select_for_update(of=("self",))
        .filter(course_id=session.course_id, settled_at__isnull=True)
        .order_by("sold_at", "id")
    )
    if not packages:
        return None
    used = dict(
        PackageRedemption.objects.filter(package__in=packages)
        .values("package_id")
        .annotate(n=Count("id"))
        .values_list("package_id", "n")
    )
    for package in packages:
        if used.get(package.pk, 0) < package.sessions:
            return PackageRedemption.objects.create(
                package=package, session=session, at=timezone.now()
            )
    return None


@dataclass(frozen=True)
class PackageState:
    package: Package
    used: int

    @property
    def left(self) -> int:
        return self.package.sessions - self.used

    @property
    def to_settle(self) -> bool:
        """Its course stopped with prepaid sessions not given, and it is not settled yet."""
        p = self.package
        return (
            p.settled_at is None and self.left > 0 and p.course.status in ("stopped", "completed")
        )

    @property
    def value_left(self) -> Decimal:
        """What the sessions not yet given were paid for, at the package's price per session."""
        p = self.package
        return money.rounded(p.price * self.left / p.sessions, p.currency)


def states(**filters: Any) -> list[PackageState]:
    found = (
        Package.objects.filter(**filters)
        .select_related("course__protocol", "invoice")
        .annotate(used=Count("redemptions"))
    )
    return [PackageState(p, p.used) for p in found]


def liability(clinic: Clinic) -> tuple[int, Decimal]:
    """The prepaid sessions not yet given in the clinic, and what they were paid for. A
    settled package owes nothing more."""
    found = [s for s in states(clinic=clinic, settled_at__isnull=True) if s.left]
    return sum(s.left for s in found), sum((s.value_left for s in found), Decimal("0"))


def single_session_price(package: Package) -> Decimal | None:
    """A session's price without the package, tax included: the accepted quote's per-session
    line, or else the clinic's price list (its first active session item)."""
    currency = package.currency
    quote = getattr(package, "quote", None)
    line = quote.lines.first() if quote is not None else None
    if line is None:
        item = (
            PriceItem.objects.filter(clinic_id=package.clinic_id, kind="session", active=True)
            .order_by("name")
            .first()
        )
        if item is None:
            return None
        unit, rate = item.amount, item.tax_rate
    else:
        unit, rate = line.unit_amount, line.tax_rate
    return money.rounded(unit, currency) + money.tax_of(
        money.rounded(unit, currency), rate, currency
    )


def rest_due(state: PackageState) -> Decimal:
    """What the clinic's package policy gives back for the sessions not given (tax included),
    never more than the package's price."""
    package = state.package
    policy = policy_for(package.clinic)
    if policy.package_refund == PaymentPolicy.PackageRefund.NONE or not state.left:
        return Decimal("0")
    if policy.package_refund == PaymentPolicy.PackageRefund.FULL_PRICE:
        single = single_session_price(package)
        if single is None:
            raise ValidationError(
                {
                    "package": "the policy charges the sessions given at the single-session "
                    "price, and the price list has no session price."
                }
            )
        return max(Decimal("0"), package.price - single * state.used)
    return state.value_left


def settle(package: Package, *, user: Any, via: str = "web") -> Decimal:
    """Settle a package whose course stopped early, by the clinic's policy: what the patient
    paid beyond what the package keeps is refunded (the latest payments first), and the rest
    is credited on the package's invoice. No session is redeemed from it after. Returns what
    was given back. Under the package's row lock: a package is settled once."""
    with transaction.atomic():
        package = (
            Package.objects.select_for_update(of=("self",))
            .select_related("clinic", "invoice", "course__protocol", "patient")
            .get(pk=package.pk)
        )
        if package.settled_at is not None:
            raise ValidationError({"package": "this package is already settled."})
        if package.course.status not in ("stopped", "completed"):
            raise ValidationError({"package": "a package is settled when its course has stopped."})
        used = PackageRedemption.objects.filter(package=package).count()
        state = PackageState(package, used)
        invoice = package.invoice
        figures = actions.amounts(invoice)
        rest = min(rest_due(state), invoice.total - figures["credited"])
        reason = f"The course stopped with {state.left} prepaid sessions not given."
        if rest > 0:
            kept = invoice.total - figures["credited"] - rest
            over = figures["paid"] - kept
            for payment in invoice.payments.filter(kind="payment").order_by("-at", "-id"):
                if over <= 0:
                    break
                left = payment.amount - sum(r.amount for r in payment.refunds.all())
                if left > 0:
                    back = min(left, over)
                    actions.refund(payment, back, reason, user=user, via=via)
                    over -= back
            actions.issue_credit_note(invoice, rest, reason, user=user, via=via)
        now = timezone.now()
        Package.objects.filter(pk=package.pk).update(
            settled_at=now, settled_by=user, rest_credited=rest
        )
        audit(
            clinic=package.clinic,
            user=user,
            action=AuditEvent.Action.UPDATE,
            obj=package,
            patient_id=package.patient_id,
            via=via,
            settled=True,
            sessions_left=state.left,
            given_back=str(rest),
            policy=policy_for(package.clinic).package_refund,
        )
    return rest
