"""A new clinic: the first run that creates it with its first manager (`mesoclinic init` and
the first-run page share it), and the checklist of what the clinic still has to set up."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from mesoclinic.accounts.models import (
    AuditEvent,
    Clinic,
    Membership,
    PractitionerLicence,
    User,
    audit,
)
from mesoclinic.formulary.models import Lot
from mesoclinic.patients.actions import do_setup_clinic
from mesoclinic.scheduling.models import OpeningHours, Room, VisitType, WorkingHours


class ClinicExists(Exception):
    """Raised when a first run would add a clinic to a database that has one already."""


def do_create_clinic(
    clinic: Clinic,
    manager: User,
    *,
    password: str | None,
    another: bool = False,
    via: str = "command",
    by: Any = None,
) -> Clinic:
    """Save a new clinic (unsaved `clinic`), give it what every clinic needs (ingredients,
    protocols, screening form, consent wording), and make `manager` its first manager; the
    clinic's managers are led to the setup guide until they finish it. An existing `manager`
    (a superuser on the first-run page) keeps their account; a new one gets `password`.
    Refuses (ClinicExists) when a clinic exists and `another` was not asked for."""
    with transaction.atomic():
        if not another and Clinic.objects.exists():
            raise ClinicExists("This database already has a clinic.")
        clinic.setup_pending = True
        clinic.save()
        do_setup_clinic(clinic)
        if manager.pk is None:
            if password:
                manager.set_password(password)
            else:
                manager.set_unusable_password()
            manager.save()
        member = Membership.objects.create(
            user=manager, clinic=clinic, role=Membership.Role.MANAGER
        )
        audit(
            clinic=clinic,
            user=by,
            action=AuditEvent.Action.CREATE,
            obj=clinic,
            via=via,
            name=clinic.name,
            manager=manager.username,
        )
        audit(
            clinic=clinic,
            user=by,
            action=AuditEvent.Action.CREATE,
            obj=member,
            via=via,
            username=manager.username,
            role=member.role,
        )
    return clinic


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    done: bool
    detail: str
    url_name: str
    url_args: tuple[Any, ...] = ()


def practitioners_ready(clinic: Clinic, on: dt.date) -> list[User]:
    """The clinic's practitioners (managers included) with weekly hours and a valid licence."""
    clinical = (Membership.Role.PRACTITIONER, Membership.Role.MANAGER)
    licensed = PractitionerLicence.objects.filter(clinic=clinic, expires_on__gte=on)
    return list(
        User.objects.filter(
            memberships__clinic=clinic,
            memberships__role__in=clinical,
            is_active=True,
            pk__in=licensed.values("user_id"),
        )
        .filter(pk__in=WorkingHours.objects.filter(clinic=clinic).values("user_id"))
        .distinct()
    )


def checklist(clinic: Clinic) -> list[Step]:
    """What a new clinic must do before its first patient, each done or not."""
    today = timezone.localdate()
    has_details = bool(clinic.address.strip() and clinic.phone.strip())
    usable_lots = Lot.objects.filter(product__clinic=clinic, recalled=False).filter(
        Q(expires_on__gte=today)
    )
    ready = practitioners_ready(clinic, today)
    practitioners = Membership.objects.filter(
        clinic=clinic, role=Membership.Role.PRACTITIONER
    ).count()
    return [
        Step(
            "details",
            "Clinic details",
            has_details,
            "The address and phone number patients are given, the time zone, and how dates "
            "and times are written.",
            "web:manage_clinic",
        ),
        Step(
            "hours",
            "Opening hours and holidays",
            OpeningHours.objects.filter(clinic=clinic).exists(),
            "The hours the clinic is open each weekday, and the days it is closed.",
            "web:manage_opening_hours",
        ),
        Step(
            "rooms",
            "Rooms",
            Room.objects.filter(clinic=clinic, active=True).exists(),
            "At least one room where visits take place.",
            "web:manage_rooms",
        ),
        Step(
            "visit_types",
            "Visit types",
            VisitType.objects.filter(clinic=clinic).exists(),
            "How long a consultation and a visit without a course last. A course's visits "
            "take the lengths of its protocol.",
            "web:manage_visit_types",
        ),
        Step(
            "practitioner",
            "A practitioner with hours and a licence",
            bool(ready),
            (
                f"Ready: {', '.join(u.display_name for u in ready)}."
                if ready
                else _none_ready(practitioners)
            ),
            "web:manage_staff",
        ),
        Step(
            "formulary",
            "The formulary",
            usable_lots.exists(),
            "At least one product with its ingredients, and a lot of it in date.",
            "web:manage_formulary",
        ),
    ]


def _none_ready(practitioners: int) -> str:
    if not practitioners:
        return (
            "No practitioner on the staff yet. Invite one from the staff page, then set their "
            "hours and add their licence."
        )
    return (
        "No practitioner has both weekly hours and a valid licence yet. Set their hours "
        "below and add their licence on the staff page."
    )


def is_complete(steps: list[Step]) -> bool:
    return all(step.done for step in steps)


def do_finish_setup(clinic: Clinic, user: Any) -> None:
    with transaction.atomic():
        clinic.setup_pending = False
        clinic.save(update_fields=["setup_pending"])
        audit(
            clinic=clinic,
            user=user,
            action=AuditEvent.Action.UPDATE,
            obj=clinic,
            via="web",
            setup_finished=True,
        )
