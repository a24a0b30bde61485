"""The clinic's calendar setup, changed from the manager's pages: opening hours, holidays,
rooms, visit lengths, and each practitioner's weekly hours and changes to them. Every change is
one transaction with its audit row."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent, Clinic, User, audit
from mesoclinic.scheduling import logic
from mesoclinic.scheduling.models import (
    Appointment,
    Holiday,
    OpeningHours,
    Room,
    VisitType,
    WorkingException,
    WorkingHours,
)

Span = tuple[dt.time, dt.time]
Week = dict[int, list[Span]]


class RoomInUse(Exception):
    """A room with visits cannot be deleted: the visits would lose where they took place."""


def _words(week: Week) -> dict[str, str]:
    return {str(day): logic.spans_words(spans) for day, spans in week.items()}


def opening_week(clinic: Clinic) -> Week:
    week: Week = {}
    for row in OpeningHours.objects.filter(clinic=clinic):
        week.setdefault(row.weekday, []).append((row.opens, row.closes))
    return week


def working_week(clinic: Clinic, user: User) -> Week:
    week: Week = {}
    for row in WorkingHours.objects.filter(clinic=clinic, user=user):
        week.setdefault(row.weekday, []).append((row.starts, row.ends))
    return week


def do_set_opening_hours(clinic: Clinic, week: Week, user: Any) -> None:
    with transaction.atomic():
        before = opening_week(clinic)
        OpeningHours.objects.filter(clinic=clinic).delete()
        OpeningHours.objects.bulk_create(
            OpeningHours(clinic=clinic, weekday=day, opens=s, closes=e)
            for day, spans in week.items()
            for s, e in spans
        )
        audit(
            clinic=clinic,
            user=user,
            action=AuditEvent.Action.UPDATE,
            object_type="scheduling.OpeningHours",
            via="web",
            before=_words(before),
            after=_words(week),
        )


def do_add_holiday(holiday: Holiday, user: Any) -> Holiday:
    with transaction.atomic():
        holiday.save()
        audit(
            clinic=holiday.clinic,
            user=user,
            action=AuditEvent.Action.CREATE,
            obj=holiday,
            via="web",
            date=holiday.date.isoformat(),
            name=holiday.name,
        )
    return holiday


def do_remove_holiday(holiday: Holiday, user: Any) -> None:
    with transaction.atomic():
        audit(
            clinic=holiday.clinic,
            user=user,
            action=AuditEvent.Action.DELETE,
            obj=holiday,
            via="web",
            date=holiday.date.isoformat(),
            name=holiday.name,
        )
        holiday.delete()


def future_visits(room: Room) -> int:
    return (
        Appointment.objects.filter(room=room, starts_at__gte=timezone.now())
        .exclude(status__in=Appointment.INACTIVE)
        .count()
    )


def do_add_room(clinic: Clinic, name: str, user: Any) -> Room:
    with transaction.atomic():
        room = Room.objects.create(clinic=clinic, name=name)
        audit(
            clinic=clinic,
            user=user,
            action=AuditEvent.Action.CREATE,
            obj=room,
            via="web",
            name=name,
        )
    return room


def do_rename_room(room: Room, name: str, user: Any) -> None:
    with transaction.atomic():
        before = room.name
        room.name = name
        room.save(update_fields=["name"])
        audit(
            clinic=room.clinic,
            user=user,
            action=AuditEvent.Action.UPDATE,
            obj=room,
            via="web",
            name_before=before,
            name=name,
        )


def do_set_room_active(room: Room, active: bool, user: Any) -> None:
    with transaction.atomic():
        room.active = active
        room.save(update_fields=["active"])
        audit(
            clinic=room.clinic,
            user=user,
            action=AuditEvent.Action.UPDATE,
            obj=room,
            via="web",
            active=active,
        )


def do_delete_room(room: Room, user: Any) -> None:
    """Delete a room that no visit ever used; raises RoomInUse otherwise."""
    with transaction.atomic():
        # Locked, so a booking cannot take the room between the check and the delete.
        locked = Room.objects.select_for_update().get(pk=room.pk)
        if Appointment.objects.filter(room=locked).exists():
            raise RoomInUse(locked.name)
        audit(
            clinic=room.clinic,
            user=user,
            action=AuditEvent.Action.DELETE,
            obj=locked,
            via="web",
            name=locked.name,
        )
        locked.delete()


def do_set_visit_lengths(clinic: Clinic, lengths: dict[str, int], user: Any) -> dict[str, int]:
    """Save the clinic's length of each kind of visit; answers what changed."""
    with transaction.atomic():
        saved = dict(VisitType.objects.filter(clinic=clinic).values_list("kind", "minutes"))
        changed = {k: m for k, m in lengths.items() if saved.get(k) != m}
        for kind, minutes in changed.items():
            VisitType.objects.update_or_create(
                clinic=clinic, kind=kind, defaults={"minutes": minutes}
            )
        audit(
            clinic=clinic,
            user=user,
            action=AuditEvent.Action.UPDATE,
            object_type="scheduling.VisitType",
            via="web",
            minutes=changed,
        )
    return changed


def do_set_working_hours(clinic: Clinic, practitioner: User, week: Week, user: Any) -> None:
    with transaction.atomic():
        before = working_week(clinic, practitioner)
        WorkingHours.objects.filter(clinic=clinic, user=practitioner).delete()
        WorkingHours.objects.bulk_create(
            WorkingHours(clinic=clinic, user=practitioner, weekday=day, starts=s, ends=e)
            for day, spans in week.items()
            for s, e in spans
        )
        audit(
            clinic=clinic,
            user=user,
            action=AuditEvent.Action.UPDATE,
            object_type="scheduling.WorkingHours",
            object_id=str(practitioner.pk),
            via="web",
            practitioner=practitioner.pk,
            before=_words(before),
            after=_words(week),
        )


def outside_opening(clinic: Clinic, week: Week) -> list[str]:
    """The weekdays on which `week` has hours the clinic is not open, in words."""
    opening = opening_week(clinic)
    names = dict(OpeningHours._meta.get_field("weekday").choices or [])
    return [
        str(names[day])
        for day, spans in sorted(week.items())
        if any(not logic.covers(opening.get(day, []), s, e) for s, e in spans)
    ]


def exception_clash(clinic: Clinic, practitioner: User, day: dt.date, span: Span | None) -> str:
    """Why a new change of hours on `day` would clash with one already there, or ""."""
    for other in WorkingException.objects.filter(clinic=clinic, user=practitioner, date=day):
        if other.whole_day or span is None:
            return "There is already a change of hours on this day; remove it first."
        if other.starts < span[1] and span[0] < other.ends:  # type: ignore[operator]
            return f"It overlaps the {other.get_kind_display().lower()} already on this day."
    return ""


def do_add_exception(exception: WorkingException, user: Any) -> WorkingException:
    with transaction.atomic():
        exception.save()
        audit(
            clinic=exception.clinic,
            user=user,
            action=AuditEvent.Action.CREATE,
            obj=exception,
            via="web",
            practitioner=exception.user_id,
            date=exception.date.isoformat(),
            kind=exception.kind,
        )
    return exception


def do_remove_exception(exception: WorkingException, user: Any) -> None:
    with transaction.atomic():
        audit(
            clinic=exception.clinic,
            user=user,
            action=AuditEvent.Action.DELETE,
            obj=exception,
            via="web",
            practitioner=exception.user_id,
            date=exception.date.isoformat(),
            kind=exception.kind,
        )
        exception.delete()
