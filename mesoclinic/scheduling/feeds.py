"""iCalendar feeds: one for each practitioner, one for each patient.

A feed covers the last 30 days and the next year. Cancelled and missed visits stay in it as
STATUS:CANCELLED, so a calendar that already holds them removes them instead of keeping a
visit that will not happen. Each event's UID is the appointment's, and SEQUENCE grows when
the visit moves, so an app updates the event in place.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent, Clinic, User, audit
from mesoclinic.lib import ical
from mesoclinic.patients.models import Patient
from mesoclinic.scheduling.models import Appointment, CalendarFeed

PAST = dt.timedelta(days=30)
AHEAD = dt.timedelta(days=365)
PRODID = "-//mesoclinic//calendar feed//EN"
# A calendar app polls every few minutes; recording each fetch would write on every poll.
FETCH_RECORD_EVERY = dt.timedelta(minutes=5)


def do_create_feed(
    *, user: Any, for_user: User | None = None, patient: Patient | None = None, via: str = "web"
) -> CalendarFeed:
    """A new private address for one person's visits; any earlier one stops working."""
    if (for_user is None) == (patient is None):
        raise ValueError("A feed is for one practitioner or one patient.")
    clinic = patient.clinic if patient is not None else None
    if patient is None:
        membership = for_user.memberships.first()  # type: ignore[union-attr]
        clinic = membership.clinic if membership else None
    if clinic is None:
        raise ValueError("A practitioner's feed needs a clinic.")
    with transaction.atomic():
        earlier = CalendarFeed.objects.filter(
            patient=patient, user=for_user, revoked_at__isnull=True
        ).select_for_update()
        replaced = [f.pk for f in earlier]
        CalendarFeed.objects.filter(pk__in=replaced).update(revoked_at=timezone.now())
        feed = CalendarFeed.objects.create(
            clinic=clinic,
            user=for_user,
            patient=patient,
            token=secrets.token_urlsafe(32),
            created_by=user,
        )
        audit(
            clinic=clinic,
            user=user,
            action=AuditEvent.Action.CREATE,
            obj=feed,
            patient_id=patient.pk if patient else None,
            via=via,
            replaced=replaced,
        )
    return feed


def do_revoke_feed(feed: CalendarFeed, *, user: Any, via: str = "web") -> None:
    with transaction.atomic():
        updated = CalendarFeed.objects.filter(pk=feed.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        if updated:
            audit(
                clinic=feed.clinic,
                user=user,
                action=AuditEvent.Action.UPDATE,
                obj=feed,
                patient_id=feed.patient_id,
                via=via,
                revoked=True,
            )


def find(token: str) -> CalendarFeed | None:
    return (
        CalendarFeed.objects.select_related("clinic", "user", "patient")
        .filter(token=token, revoked_at__isnull=True)
        .first()
    )


def render(feed: CalendarFeed, *, host: str, now: dt.datetime | None = None) -> str:
    """The feed's text, and a note of the fetch (at most every few minutes)."""
    now = now or timezone.now()
    if feed.last_fetched_at is None or now - feed.last_fetched_at > FETCH_RECORD_EVERY:
        CalendarFeed.objects.filter(pk=feed.pk).update(last_fetched_at=now)
    visits = (
        Appointment.objects.filter(
            clinic=feed.clinic, starts_at__gte=now - PAST, starts_at__lt=now + AHEAD
        )
        .select_related("patient", "practitioner", "room")
        .order_by("starts_at")
    )
    if feed.user_id is not None:
        rows = list(visits.filter(practitioner_id=feed.user_id))
        name = f"{feed.user.display_name} · {feed.clinic.name}"  # type: ignore[union-attr]
        make = _practitioner_event
    else:
        rows = list(visits.filter(patient=feed.patient))
        name = f"{feed.clinic.name}: my visits"
        make = _patient_event
    changes = _changes(rows)
    events = [make(a, feed.clinic, _uid(a, host), changes.get(str(a.pk), 0)) for a in rows]
    return ical.calendar(name, events, prodid=PRODID, stamp=now)


def _uid(a: Appointment, host: str) -> str:
    return f"appointment-{a.pk}@{host}"


def _status(a: Appointment) -> str:
    return "CANCELLED" if not a.active else "CONFIRMED"


def _changes(rows: list[Appointment]) -> dict[str, int]:
    """Each visit's SEQUENCE, which must grow whenever it moves or changes status (RFC 5545
    §3.8.7.4): the number of audited changes to it, counted in one query."""
    counts = (
        AuditEvent.objects.filter(
            object_type="scheduling.Appointment",
            object_id__in=[str(a.pk) for a in rows],
            action=AuditEvent.Action.UPDATE,
        )
        .values("object_id")
        .annotate(n=Count("pk"))
    )
    return {c["object_id"]: c["n"] for c in counts}


def _initials(patient: Patient) -> str:
    return f"{patient.first_name[:1]}. {patient.last_name[:1]}.".upper()


def _practitioner_event(a: Appointment, clinic: Clinic, uid: str, sequence: int) -> ical.Event:
    room = f" · {a.room}" if a.room else ""
    return ical.Event(
        uid=uid,
        starts_at=a.starts_at,
        ends_at=a.ends_at,
        summary=f"{a.get_kind_display()} · {_initials(a.patient)}{room}",
        description=f"Appointment {a.pk}. Open the calendar in mesoclinic for the patient.",
        location=", ".join(p for p in (str(a.room or ""), clinic.name) if p),
        status=_status(a),
        sequence=sequence,
    )


def _patient_event(a: Appointment, clinic: Clinic, uid: str, sequence: int) -> ical.Event:
    return ical.Event(
        uid=uid,
        starts_at=a.starts_at,
        ends_at=a.ends_at,
        summary=f"{a.get_kind_display()} at {clinic.name}",
        description=f"With {a.practitioner.display_name}.",
        location=", ".join(p for p in (clinic.name, clinic.city) if p),
        status=_status(a),
        sequence=sequence,
    )
