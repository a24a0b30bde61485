"""The calendar in the JSON API: appointments, booking a whole course, moving a visit with the
visits after it, the maintenance visit, the next free slot and broken cadences.

Registered on the same NinjaAPI as views.py (imported by ApiConfig.ready). Every booking goes
through scheduling.actions or scheduling.planning, so the API refuses exactly what the web
refuses; a refusal is 409 `application/problem+json` with `reasons: [{code, message}]`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.utils import timezone
from ninja import Query, Status

from mesoclinic.access import (
    access_appointment,
    access_course,
    access_patient,
    appointments_for,
    audit_list,
    audit_view,
    members_for,
)
from mesoclinic.accounts.models import User
from mesoclinic.api import schemas as s
from mesoclinic.api.auth import ALL_STAFF, CLINICAL, Caller, caller
from mesoclinic.api.views import api
from mesoclinic.courses.models import Course
from mesoclinic.scheduling import actions, planning
from mesoclinic.scheduling.models import Appointment, Room
from mesoclinic.scheduling.series import Preferences

MAX_RANGE = dt.timedelta(days=62)


def _staff_practitioner(who: Caller, user_id: int, field: str = "practitioner") -> User:
    membership = (
        members_for(who, ALL_STAFF)
        .select_related("user")
        .filter(user_id=user_id, role__in=CLINICAL)
        .first()
    )
    if membership is None:
        raise ValidationError({field: "is not a practitioner of this clinic."})
    return membership.user


def _appointment_out(a: Appointment) -> dict[str, Any]:
    tz = a.clinic.tz
    return {
        "id": a.pk,
        "patient": a.patient_id,
        "patient_name": str(a.patient),
        "course": a.course_id,
        "kind": a.kind,
        "practitioner": a.practitioner_id,
        "practitioner_name": a.practitioner.display_name,
        "room": a.room_id,
        "room_name": a.room.name if a.room else None,
        "starts_at": a.starts_at.astimezone(tz),
        "ends_at": a.ends_at.astimezone(tz),
        "status": a.status,
        "cancel_reason": a.cancel_reason,
        "notes": a.notes,
    }


def _prefs(p: s.PreferencesIn) -> Preferences:
    return Preferences(frozenset(p.weekdays), p.earliest_time, p.latest_time)


@api.get("/appointments", response=list[s.AppointmentOut], tags=["calendar"])
def list_appointments(
    request: HttpRequest,
    start: s.When,
    end: s.When,
    practitioner: s.Id | None = None,
    patient: s.Id | None = None,
    include_cancelled: bool = False,
) -> list[dict[str, Any]]:
    """The clinic's appointments that overlap [start, end), at most 62 days at a time."""
    who = caller(request)
    who.require(ALL_STAFF)
    if end <= start:
        raise ValidationError({"end": "must be after start."})
    if end - start > MAX_RANGE:
        raise ValidationError({"end": "must be at most 62 days after start."})
    qs = (
        appointments_for(who)
        .filter(starts_at__lt=end, ends_at__gt=start)
        .select_related("clinic", "patient", "practitioner", "room")
    )
    if practitioner is not None:
        qs = qs.filter(practitioner_id=practitioner)
    if patient is not None:
        qs = qs.filter(patient_id=patient)
    if not include_cancelled:
        qs = qs.exclude(status__in=Appointment.INACTIVE)
    found = list(qs.order_by("starts_at"))
    audit_list(who, "appointments", [a.patient_id for a in found])
    return [_appointment_out(a) for a in found]


@api.post("/appointments", response={201: s.AppointmentOut}, tags=["calendar"])
def book_appointment(request: HttpRequest, payload: s.AppointmentIn) -> Status[dict[str, Any]]:
    who = caller(request)
    patient = access_patient(caller(request), payload.patient, ALL_STAFF)
    course = None
    if payload.course is not None:
        course = access_course(caller(request), payload.course, ALL_STAFF)
    room = None
    if payload.room is not None:
        room = Room.objects.filter(clinic=who.clinic, pk=payload.room).first()
        if room is None:
            raise ValidationError({"room": "is not a room of this clinic."})
    made = actions.do_book(
        patient,
        kind=payload.kind,
        practitioner=_staff_practitioner(who, payload.practitioner),
        starts_at=payload.starts_at,
        ends_at=payload.ends_at,
        course=course,
        room=room,
        notes=payload.notes,
        user=who.user,
    )
    return Status(201, _appointment_out(made))


@api.get("/appointments/{appointment_id}", response=s.AppointmentOut, tags=["calendar"])
def get_appointment(request: HttpRequest, appointment_id: int) -> dict[str, Any]:
    found = access_appointment(caller(request), appointment_id)
    _audit_view(caller(request), found)
    return _appointment_out(found)


@api.post("/appointments/{appointment_id}/cancel", response=s.AppointmentOut, tags=["calendar"])
def cancel_appointment(
    request: HttpRequest, appointment_id: int, payload: s.CancelIn
) -> dict[str, Any]:
    found = access_appointment(caller(request), appointment_id)
    actions.do_cancel(found, user=caller(request).user, reason=payload.reason)
    return _appointment_out(access_appointment(caller(request), appointment_id))


@api.post("/appointments/{appointment_id}/no-show", response=s.AppointmentOut, tags=["calendar"])
def no_show(request: HttpRequest, appointment_id: int) -> dict[str, Any]:
    found = access_appointment(caller(request), appointment_id)
    actions.do_mark_no_show(found, user=caller(request).user)
    return _appointment_out(access_appointment(caller(request), appointment_id))


@api.post("/appointments/{appointment_id}/arrived", response=s.AppointmentOut, tags=["calendar"])
def arrived(request: HttpRequest, appointment_id: int) -> dict[str, Any]:
    """Check the patient in: a booked or confirmed visit of today becomes arrived."""
    found = access_appointment(caller(request), appointment_id)
    actions.do_mark_arrived(found, user=caller(request).user)
    return _appointment_out(access_appointment(caller(request), appointment_id))


@api.post("/appointments/{appointment_id}/move", response=s.MoveOut, tags=["calendar"])
def move_appointment(
    request: HttpRequest, appointment_id: int, payload: s.MoveIn
) -> dict[str, Any]:
    """Move a visit; the later visits of its course shift to keep their cadence windows. With
    `dry_run`, only the changes and problems. A problem refuses the move (409) unless
    `accept_break`."""
    who = caller(request)
    found = access_appointment(caller(request), appointment_id)
    practitioner = _staff_practitioner(who, payload.practitioner) if payload.practitioner else None
    if payload.dry_run:
        plan = planning.plan_move(found, payload.starts_at, practitioner=practitioner)
        return {
            "applied": False,
            "changes": [_change_out(c) for c in plan.changes if c.moved],
            "problems": plan.problems,
        }
    course_visits = Appointment.objects.filter(course_id=found.course_id) if found.course_id else []
    before = {found.pk: found.starts_at} | {a.pk: a.starts_at for a in course_visits}
    moved = planning.do_move(
        found,
        payload.starts_at,
        user=who.user,
        practitioner=practitioner,
        accept_break=payload.accept_break,
    )
    tz = found.clinic.tz
    return {
        "applied": True,
        "changes": [
            {
                "appointment": a.pk,
                "kind": a.kind,
                "from_starts_at": before[a.pk].astimezone(tz),
                "starts_at": a.starts_at.astimezone(tz),
                "ends_at": a.ends_at.astimezone(tz),
                "practitioner": a.practitioner_id,
            }
            for a in moved
        ],
        "problems": [],
    }


def _change_out(c: planning.Change) -> dict[str, Any]:
    tz = c.appointment.clinic.tz
    return {
        "appointment": c.appointment.pk,
        "kind": c.appointment.kind,
        "from_starts_at": c.appointment.starts_at.astimezone(tz),
        "starts_at": c.starts_at.astimezone(tz),
        "ends_at": c.ends_at.astimezone(tz),
        "practitioner": c.practitioner_id,
    }


def _plan_out(plan: planning.CoursePlan) -> list[dict[str, Any]]:
    return [
        {
            "kind": row["kind"],
            "starts_at": row["starts_at"],
            "ends_at": row["ends_at"],
            "practitioner": row["practitioner"].pk,
            "practitioner_name": row["practitioner"].display_name,
            "room": row["room_id"],
        }
        for row in plan.rows()
    ]


@api.post(
    "/courses/{course_id}/booking",
    response={200: s.ProposalOut, 201: s.ProposalOut},
    tags=["calendar"],
)
def book_course(
    request: HttpRequest, course_id: int, payload: s.BookCourseIn
) -> Status[dict[str, Any]]:
    """Propose every visit the course still needs (the allergy test visit, then each session
    at the cadence) and book them all in one transaction; with `dry_run`, only propose."""
    who = caller(request)
    course = access_course(caller(request), course_id, ALL_STAFF)
    practitioner = _staff_practitioner(who, payload.practitioner) if payload.practitioner else None
    prefs = _prefs(payload.preferences)
    plan = planning.propose_course(
        course, practitioner=practitioner, not_before=payload.not_before, prefs=prefs
    )
    if payload.dry_run:
        return Status(
            200,
            {
                "booked": False,
                "visits": _plan_out(plan),
                "problems": plan.problems,
                "changes": plan.changes,
            },
        )
    made = planning.do_book_course(
        course,
        user=who.user,
        practitioner=practitioner,
        not_before=payload.not_before,
        prefs=prefs,
        accept_changes=payload.accept_changes,
    )
    tz = course.clinic.tz
    return Status(
        201,
        {
            "booked": True,
            "visits": [
                {
                    "kind": a.kind,
                    "starts_at": a.starts_at.astimezone(tz),
                    "ends_at": a.ends_at.astimezone(tz),
                    "practitioner": a.practitioner_id,
                    "practitioner_name": a.practitioner.display_name,
                    "room": a.room_id,
                }
                for a in made
            ],
            "problems": [],
            "changes": plan.changes if payload.accept_changes else [],
            "appointments": [_appointment_out(a) for a in made],
        },
    )


@api.get("/courses/{course_id}/maintenance", response=s.ProposalOut, tags=["calendar"])
def maintenance_proposal(request: HttpRequest, course_id: int) -> dict[str, Any]:
    """For a completed course, the maintenance visit proposed in the protocol's window."""
    course = access_course(caller(request), course_id, ALL_STAFF, view=True)
    plan = planning.propose_maintenance(course)
    if plan is None:
        return {"booked": False, "visits": [], "problems": [_no_maintenance(course)]}
    return {"booked": False, "visits": _plan_out(plan), "problems": plan.problems}


@api.post("/courses/{course_id}/maintenance", response={201: s.AppointmentOut}, tags=["calendar"])
def book_maintenance(request: HttpRequest, course_id: int) -> Status[dict[str, Any]]:
    course = access_course(caller(request), course_id, ALL_STAFF)
    made = planning.do_book_maintenance(course, user=caller(request).user)
    return Status(201, _appointment_out(made))


def _no_maintenance(course: Course) -> str:
    if course.status not in (Course.Status.COMPLETED, Course.Status.MAINTENANCE):
        return "Maintenance is proposed once the course is completed."
    return "A maintenance visit is already booked."


@api.get("/calendar/next-free", response=s.FreeSlotOut, tags=["calendar"])
def next_free(
    request: HttpRequest,
    practitioner: s.Id,
    minutes: int = 30,
    not_before: s.When | None = None,
    patient: s.Id | None = None,
    prefs: Query[s.PreferencesIn] = None,  # type: ignore[assignment]
    kind: str | None = None,
) -> dict[str, Any]:
    """The first 15-minute start where the practitioner and a room (and the patient, when
    given) are free for `minutes`, within four weeks, on the preferred days and times where
    there is one. With `kind` (allergy_test, session, maintenance: a visit where the
    practitioner injects), only days the practitioner's licence covers: a practitioner
    without a valid licence is refused, naming the reason."""
    who = caller(request)
    who.require(ALL_STAFF)
    if not 5 <= minutes <= 8 * 60:
        raise ValidationError({"minutes": "must be between 5 and 480."})
    if kind is not None and kind not in Appointment.Kind.values:
        raise ValidationError({"kind": "is not a kind of visit."})
    user = _staff_practitioner(who, practitioner)
    if kind is not None:
        _licensed_from(who.clinic, user, kind, not_before or timezone.now())
    length = dt.timedelta(minutes=minutes)
    slot = planning.next_free_slot(
        who.clinic,
        user,
        length,
        not_before=not_before,
        prefs=_prefs(prefs) if prefs is not None else Preferences(),
        patient=access_patient(caller(request), patient, ALL_STAFF)
        if patient is not None
        else None,
        kind=kind,
    )
    return {
        "practitioner": user.pk,
        "starts_at": slot,
        "ends_at": slot + length if slot else None,
    }


def _licensed_from(clinic: Any, user: User, kind: str, start: dt.datetime) -> None:
    """Refuse a slot search the booking would refuse: an injecting visit with a practitioner
    whose licence is not valid on the search's first day."""
    expires = actions.licensed_until(clinic, {user.pk}).get(user.pk)
    day = start.astimezone(clinic.tz).date()
    if not actions.may_give(kind, expires, day):
        today = timezone.now().astimezone(clinic.tz).date()
        raise ValidationError(
            {
                "practitioner": f"{actions.licence_words(user.display_name, expires, day, today)} "
                "This visit needs a practitioner with a valid licence."
            }
        )


@api.get("/calendar/cadence-flags", response=list[s.CadenceFlagOut], tags=["calendar"])
def cadence_flags(request: HttpRequest) -> list[dict[str, Any]]:
    """Active courses whose cadence is broken: missed or cancelled and not rebooked, overdue
    with nothing booked, or booked outside the window."""
    who = caller(request)
    flags = planning.cadence_flags(who.require(ALL_STAFF).clinic, timezone.now())
    audit_list(who, "cadence flags", [f.course.patient_id for f in flags])
    return [
        {
            "course": f.course.pk,
            "patient": f.course.patient_id,
            "patient_name": str(f.course.patient),
            "message": f.message,
        }
        for f in flags
    ]


def _audit_view(who: Caller, a: Appointment) -> None:
    audit_view(who, a, patient_id=a.patient_id)
