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
from mesoclinic.billing.models import Package, PackageRedemption


def sell(course: Any, sessions: int, price: Decimal, *, user: Any, via: str = "web") -> Package:
    """Sell `course` as a package of `sessions` sessions for `price` (tax included): the
    invoice and the package are written together."""
    if not 1 <= sessions <= 100:
        raise ValidationError({"sessions": "must be 1 to 100."})
    if course.status in ("stopped", "completed"):
        raise ValidationError(
            {"course": "the course is over; a package is sold for a course to come."}
        )
    currency = course.clinic.currency
    price = money.rounded(price, currency)
    if price <= 0:
        raise ValidationError({"price": "must be more than 0."})
    label = f"Package of {sessions} sessions: {course.protocol.name}"
    with transaction.atomic():
        invoice = actions.issue_invoice(
            course.patient, [actions.LineInput(label, price, Decimal("0"))], user=user, via=via
        )
        package = Package.objects.create(
            clinic=course.clinic,
            patient=course.patient,
            course=course,
            sessions=sessions,
            price=price,
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
            price=str(price),
            invoice=invoice.number,
        )
    return package


def redeem(session: Any) -> PackageRedemption | None:
    """Redeem one prepaid session of the course's oldest package with sessions left, for a
    session just charted (in its transaction; the package row is locked). None when the course
    has no such package."""
    # Locked first, then counted: PostgreSQL allows no FOR UPDATE with an aggregate.
    packages = list(
        Package.objects.select_for_update()
        .filter(course_id=session.course_id)
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
    """The prepaid sessions not yet given in the clinic, and what they were paid for."""
    found = [s for s in states(clinic=clinic) if s.left]
    return sum(s.left for s in found), sum((s.value_left for s in found), Decimal("0"))
