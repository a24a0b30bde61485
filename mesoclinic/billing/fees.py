"""Late-cancellation and no-show fees, by the terms the patient accepted.

A visit may be charged when it was missed, or cancelled less than the accepted number of hours
before it started, and the patient had accepted terms with a fee for it before then. The front
desk decides whether to charge (the clinic may waive it); a visit is charged at most once, which
the unique visit on FeeCharge holds under concurrent requests."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from mesoclinic.billing import actions, money
from mesoclinic.billing.models import FeeCharge, Invoice, PolicyAcceptance
from mesoclinic.patients.models import Patient
from mesoclinic.scheduling.models import Appointment


@dataclass(frozen=True)
class Chargeable:
    appointment: Appointment
    kind: str
    amount: Decimal
    acceptance: PolicyAcceptance

    @property
    def label(self) -> str:
        return str(FeeCharge.Kind(self.kind).label)

    def description(self) -> str:
        clinic = self.appointment.clinic
        when = clinic.local(self.appointment.starts_at)
        hour = when.strftime("%I:%M %p").lstrip("0")
        return f"{self.label}: the visit of {when.day} {when:%B %Y} at {hour}"

    def words(self) -> str:
        return money.words(self.amount, self.acceptance.currency)


def _accepted_before(
    appointment: Appointment, acceptances: list[PolicyAcceptance] | None
) -> PolicyAcceptance | None:
    """The patient's latest acceptance at or before the visit's start: from `acceptances` (the
    patient's, newest first) when the caller has them, else from the database."""
    if acceptances is None:
        return (
            PolicyAcceptance.objects.filter(
                patient_id=appointment.patient_id, accepted_at__lte=appointment.starts_at
            )
            .order_by("-accepted_at", "-id")
            .first()
        )
    return next((a for a in acceptances if a.accepted_at <= appointment.starts_at), None)


def chargeable(
    appointment: Appointment, acceptances: list[PolicyAcceptance] | None = None
) -> Chargeable | None:
    """The fee the patient's accepted terms allow for this visit, or None."""
    if appointment.status == Appointment.Status.NO_SHOW:
        kind, at = FeeCharge.Kind.NO_SHOW, appointment.no_show_at or appointment.starts_at
    elif appointment.status == Appointment.Status.CANCELLED and appointment.cancelled_at:
        kind, at = FeeCharge.Kind.LATE_CANCELLATION, appointment.cancelled_at
    else:
        return None
    acceptance = _accepted_before(appointment, acceptances)
    if acceptance is None:
        return None
    if kind == FeeCharge.Kind.LATE_CANCELLATION:
        notice = dt.timedelta(hours=acceptance.late_cancel_hours)
        if at < appointment.starts_at - notice:
            return None
        amount = acceptance.late_cancel_fee
    else:
        amount = acceptance.no_show_fee
    if amount <= 0:
        return None
    return Chargeable(appointment, kind, amount, acceptance)


def pending(patient: Patient) -> list[Chargeable]:
    """The patient's missed or late-cancelled visits that may still be charged."""
    found = (
        Appointment.objects.filter(
            patient=patient,
            status__in=[Appointment.Status.NO_SHOW, Appointment.Status.CANCELLED],
            fee__isnull=True,
        )
        .select_related("clinic")
        .order_by("-starts_at")[:50]
    )
    # The patient's acceptances once, not once per visit.
    acceptances = list(patient.policy_acceptances.order_by("-accepted_at", "-id"))
    return [c for a in found if (c := chargeable(a, acceptances)) is not None]


def charge(appointment: Appointment, *, user: Any, via: str = "web") -> Invoice:
    """Invoice the visit's fee, once."""
    with transaction.atomic():
        appointment = (
            Appointment.objects.select_for_update(of=("self",))
            .select_related("clinic", "patient__clinic", "course")
            .get(pk=appointment.pk)
        )
        if FeeCharge.objects.filter(appointment=appointment).exists():
            raise ValidationError({"appointment": "this visit's fee is already invoiced."})
        fee = chargeable(appointment)
        if fee is None:
            raise ValidationError(
                {
                    "appointment": "no fee applies: the visit was not missed or cancelled late, "
                    "or the patient accepted no terms with a fee for it."
                }
            )
        accepted = fee.acceptance.clinic.local(fee.acceptance.accepted_at)
        invoice = actions.issue_invoice(
            appointment.patient,
            [actions.LineInput(fee.description(), fee.amount, Decimal("0"))],
            user=user,
            via=via,
            course=appointment.course,
            appointment=appointment,
            note=f"By the payment terms accepted on {accepted.day} {accepted:%B %Y}.",
        )
        try:
            with transaction.atomic():
                FeeCharge.objects.create(
                    appointment=appointment,
                    kind=fee.kind,
                    acceptance=fee.acceptance,
                    invoice=invoice,
                )
        except IntegrityError as exc:
            raise ValidationError({"appointment": "this visit's fee is already invoiced."}) from exc
    return invoice
