"""iCalendar feeds: one for each practitioner, one for each patient.

A feed covers the last 30 days and the next year. Cancelled and missed visits stay in it as
STATUS:CANCELLED, so a calendar that already holds them removes them instead of keeping a
visit that will not happen. Each event's UID is the appointment's, and SEQUENCE grows when
the visit moves, so an app updates the event in place.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Any

from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.db.models.signals import pre_delete
from django.dispatch import receiver
from django.utils import timezone

from mesoclinic.accounts.models import (
    AuditEvent,
    Clinic,
    Membership,
    User,
    audit,
    credentials_changed,
    membership_ended,
)
from mesoclinic.lib import ical
from mesoclinic.patients.models import Patient
from mesoclinic.scheduling.models import Appointment, CalendarFeed

PAST = dt.timedelta(days=30)
AHEAD = dt.timedelta(days=365)
PRODID = "-//mesoclinic//calendar feed//EN"
# A calendar app polls every few minutes; recording each fetch would write on every poll.
FETCH_RECORD_EVERY = dt.timedelta(minutes=5)


def hash_feed_token(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def do_create_feed(
    *, user: Any, for_user: User | None = None, patient: Patient | None = None, via: str = "web"
) -> tuple[CalendarFeed, str]:
    """A new private address for one person's visits; any earlier one stops working.

    Answers the feed and its raw token: only the token's hash is stored, so this is the one
    moment the address can be shown."""
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
        raw = secrets.token_urlsafe(32)
        feed = CalendarFeed.objects.create(
            clinic=clinic,
            user=for_user,
            patient=patient,
            token_hash=hash_feed_token(raw),
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
    return feed, raw


def do_revoke_feed(feed: CalendarFeed, *, user: Any, via: str = "web", reason: str = "") -> None:
    with transaction.atomic():
        updated = CalendarFeed.objects.filter(pk=feed.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        if updated:
            audit(
                clinic=feed.clinic,
                user=user,
                action=AuditEvent.Action.REVOKE,
                obj=feed,
                patient_id=feed.patient_id,
                via=via,
                revoked=True,
                **({"reason": reason} if reason else {}),
            )


def live() -> QuerySet[CalendarFeed]:
    """The feeds that still serve: not revoked, and a practitioner's only while their account
    is active and they are still a member of the feed's clinic. The revocation on those events
    (below) does the same in the database; this check holds even for a row it missed."""
    member = Membership.objects.filter(user=OuterRef("user_id"), clinic=OuterRef("clinic_id"))
    return CalendarFeed.objects.filter(revoked_at__isnull=True).filter(
        Q(user__isnull=True) | Q(Exists(member), user__is_active=True)
    )


def find(token: str) -> CalendarFeed | None:
    return (
        live()
        .select_related("clinic", "user", "patient")
        .filter(token_hash=hash_feed_token(token))
        .first()
    )


def _revoke_all(feeds: QuerySet[CalendarFeed], reason: str) -> None:
    for feed in feeds.filter(revoked_at__isnull=True).select_related("clinic"):
        do_revoke_feed(feed, user=None, via="account", reason=reason)


@receiver(credentials_changed, dispatch_uid="scheduling.revoke_feeds_on_credentials")
def _revoke_on_credentials(sender: Any, user: User, reason: str, **kwargs: Any) -> None:
    # A password change does not end a practitioner's calendar address: it was never a
    # password, and re-subscribing every calendar would punish a routine change. Deactivation
    # does end it.
    if reason == "deactivated":
        _revoke_all(CalendarFeed.objects.filter(user=user), reason)


@receiver(pre_delete, sender=Membership, dispatch_uid="scheduling.revoke_feeds_on_membership")
def _revoke_on_membership(sender: Any, instance: Membership, **kwargs: Any) -> None:
    _revoke_all(
        CalendarFeed.objects.filter(user_id=instance.user_id, clinic_id=instance.clinic_id),
        "membership ended",
    )


@receiver(membership_ended, dispatch_uid="scheduling.revoke_feeds_on_deactivation")
def _revoke_on_deactivation(sender: Any, membership: Membership, **kwargs: Any) -> None:
    _revoke_on_membership(sender, membership)


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
