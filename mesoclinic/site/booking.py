"""Booking a free consultation from the public site.

The free slots come from the scheduling app's own calendar (opening hours, holidays, each
practitioner's hours, rooms and visits), and the booking goes through the same action as
staff's (scheduling.actions.do_book), which refuses overlaps in a transaction and, on
PostgreSQL, by its exclusion constraints."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent, Clinic, User, audit
from mesoclinic.patients.models import Patient
from mesoclinic.scheduling import logic, planning, series, visit_types
from mesoclinic.scheduling.actions import do_book
from mesoclinic.scheduling.models import Appointment
from mesoclinic.site.models import VisitorBooking

# How far ahead the site offers consultations, and how many at most.
DAYS_AHEAD = 14
MOST_SLOTS = 24
# A visitor books no earlier than this after now, so the clinic can prepare.
NOTICE = dt.timedelta(hours=2)
# At most this many consultations a day from one network address, per clinic.
BOOKINGS_PER_DAY = 3


@dataclass(frozen=True)
class Slot:
    practitioner_id: int
    starts_at: dt.datetime  # in the clinic's time zone

    @property
    def value(self) -> str:
        return f"{self.practitioner_id}@{self.starts_at.astimezone(dt.UTC):%Y-%m-%dT%H:%MZ}"

    @classmethod
    def parse(cls, value: str, tz: dt.tzinfo) -> Slot | None:
        who, _, when = value.partition("@")
        try:
            start = dt.datetime.strptime(when, "%Y-%m-%dT%H:%MZ").replace(tzinfo=dt.UTC)
            return cls(int(who), start.astimezone(tz))
        except ValueError:
            return None


def free_slots(clinic: Clinic, now: dt.datetime | None = None) -> list[Slot]:
    """Free consultation starts in the next two weeks, the earliest first, with the
    practitioner who is free then (one slot per start time)."""
    now = now or timezone.now()
    start = now + NOTICE
    end = now + dt.timedelta(days=DAYS_AHEAD)
    length = visit_types.visit_length(clinic, logic.CONSULTATION, None)
    calendar = planning.Calendar(clinic, start, end)
    window = series.Interval(start.astimezone(dt.UTC), end.astimezone(dt.UTC))
    by_start: dict[dt.datetime, int] = {}
    for user in planning.practitioners_of(clinic):
        for s in series.starts_in(calendar.free(user.pk), window, length):
            by_start.setdefault(s, user.pk)
    # Every half hour at most, so the list stays short enough to read on a phone.
    chosen: list[Slot] = []
    for s in sorted(by_start):
        if chosen and s - chosen[-1].starts_at < dt.timedelta(minutes=30):
            continue
        chosen.append(Slot(by_start[s], s.astimezone(clinic.tz)))
        if len(chosen) >= MOST_SLOTS:
            break
    return chosen


class TooManyBookings(Exception):
    """The address has booked its share of consultations for today."""


def do_book_consultation(
    clinic: Clinic, slot: Slot, details: dict[str, Any], *, address: str, via: str = "site"
) -> Appointment:
    """Register the visitor as a patient of the clinic (or find them, when a patient with the
    same name, date of birth and email is already registered) and book the consultation
    through the staff's booking action. Raises BookingRefused when the slot was taken, and
    TooManyBookings when `address` has booked BOOKINGS_PER_DAY in the last day (counted
    under a lock on the clinic's row, so parallel bookings are all counted)."""
    practitioner = User.objects.filter(pk=slot.practitioner_id).first()
    if practitioner is None or practitioner.pk not in {
        u.pk for u in planning.practitioners_of(clinic)
    }:
        from mesoclinic.scheduling.actions import BookingRefused, Refusal

        raise BookingRefused([Refusal("invalid", "That time is no longer offered.")])
    with transaction.atomic():
        Clinic.objects.select_for_update().filter(pk=clinic.pk).first()
        since = timezone.now() - dt.timedelta(days=1)
        recent = VisitorBooking.objects.filter(clinic=clinic, address=address, booked_at__gte=since)
        if recent.count() >= BOOKINGS_PER_DAY:
            raise TooManyBookings
        patient = (
            Patient.objects.filter(
                clinic=clinic,
                first_name__iexact=details["first_name"],
                last_name__iexact=details["last_name"],
                date_of_birth=details["date_of_birth"],
                email__iexact=details["email"],
                merged_into__isnull=True,
            )
            .order_by("pk")
            .first()
        )
        if patient is None:
            patient = Patient.objects.create(
                clinic=clinic,
                first_name=details["first_name"],
                last_name=details["last_name"],
                date_of_birth=details["date_of_birth"],
                email=details["email"],
                phone=details["phone"],
            )
            audit(
                clinic=clinic,
                user=None,
                action=AuditEvent.Action.CREATE,
                obj=patient,
                patient_id=patient.pk,
                via=via,
                source="public site consultation",
            )
        appointment = do_book(
            patient,
            kind=logic.CONSULTATION,
            practitioner=practitioner,
            starts_at=slot.starts_at,
            notes="Booked from the public site.",
            user=None,
            via=via,
        )
        VisitorBooking.objects.create(clinic=clinic, appointment=appointment, address=address)
        return appointment
