"""Booking, cancelling and marking no-shows. Each runs in one transaction and is audited.

Never double-booking rests on the database, not on this module's check alone:

- PostgreSQL: the exclusion constraints on Appointment refuse an active row that overlaps
  another of the same practitioner, patient or room. The check below gives a readable reason
  first; when two requests race past it, the loser's IntegrityError is translated into the
  same BookingRefused, naming the appointment that won.
- SQLite: every transaction begins IMMEDIATE (settings.py), so the check and the insert run
  while this connection holds the database's only write lock; a second writer waits on the busy
  timeout and then sees the first one's row.

A visit of a course also locks the course's row first (`lock_courses`), so that everything
that books or moves a course's visits (a series, one visit, a move, the maintenance visit, the
optimiser) takes turns per course, and each re-reads the course's visits after its turn came.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.dispatch import Signal
from django.utils import timezone

from mesoclinic.accounts.models import (
    AuditEvent,
    Clinic,
    Membership,
    PractitionerLicence,
    User,
    acting,
    audit,
    audit_many,
)
from mesoclinic.courses import rules
from mesoclinic.courses.models import Course
from mesoclinic.patients.models import Patient
from mesoclinic.scheduling import logic, visit_types
from mesoclinic.scheduling.hours import Hours
from mesoclinic.scheduling.models import (
    Appointment,
    Room,
)

# Sent once a cancellation has been written (after its transaction), with `appointment`: the
# portal's waitlist offers the freed slot (portal/waitlist.py). A receiver's failure must not
# undo the cancellation, so receivers catch their own errors.
visit_cancelled = Signal()

EXCLUSION_CONSTRAINTS = {
    "appointment_no_practitioner_overlap": "practitioner_busy",
    "appointment_no_room_overlap": "room_taken",
    "appointment_no_patient_overlap": "patient_busy",
}


@dataclass(frozen=True)
class Refusal:
    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class BookingRefused(ValidationError):
    """Every reason a booking cannot be made. `refusals` lists them; codes are
    practitioner_busy, room_taken, patient_busy, overlap_in_request, holiday, clinic_closed,
    practitioner_not_working, practitioner_unlicensed and invalid (planning.py adds
    no_free_time, cadence and already_booked)."""

    def __init__(self, refusals: list[Refusal]):
        self.refusals = refusals
        super().__init__([r.message for r in refusals], code="booking_refused")

    @property
    def codes(self) -> list[str]:
        return [r.code for r in self.refusals]

    def __str__(self) -> str:
        return "; ".join(r.message for r in self.refusals)


@dataclass
class BookingRequest:
    """One visit to book. Without `ends_at` the visit lasts as long as the course's protocol
    says for its kind and number of areas; a consultation, as long as the clinic's visit types
    say."""

    patient: Patient
    kind: str
    practitioner: User
    starts_at: dt.datetime
    ends_at: dt.datetime | None = None
    course: Course | None = None
    room: Room | None = None
    notes: str = ""


def do_book(
    patient: Patient,
    *,
    kind: str,
    practitioner: User,
    starts_at: dt.datetime,
    ends_at: dt.datetime | None = None,
    course: Course | None = None,
    room: Room | None = None,
    notes: str = "",
    user: Any,
    via: str = "api",
) -> Appointment:
    """Book one appointment, or raise BookingRefused with every reason it cannot be."""
    request = BookingRequest(patient, kind, practitioner, starts_at, ends_at, course, room, notes)
    return do_book_many([request], user=user, via=via)[0]


def do_book_many(
    requests: Sequence[BookingRequest], *, user: Any, via: str = "api"
) -> list[Appointment]:
    """Book several appointments, all or none, or raise BookingRefused naming every conflict.

    1. Build the appointments and refuse what is malformed (times, clinics, roles, past).
    2. In one transaction: check the clinic's holidays and opening hours, each practitioner's
       working hours, overlaps inside the request, and overlaps with the calendar.
    3. Insert them together and audit each one.
    4. On PostgreSQL a racing request may still win between 2 and 3: the exclusion
       constraint's IntegrityError becomes a BookingRefused that names the winner.
    """
    if not requests:
        return []
    appointments = [_build(r, user) for r in requests]
    invalid = _invalid(requests, appointments)
    if invalid:
        raise BookingRefused(invalid)
    clinic = requests[0].patient.clinic
    try:
        with transaction.atomic():
            lock_courses(a.course_id for a in appointments)
            refusals = calendar_refusals(clinic, appointments)
            if refusals:
                raise BookingRefused(refusals)
            # Checked above inside this transaction, which on SQLite holds the write lock, so
            # one insert for all; on PostgreSQL the exclusion constraints still decide.
            Appointment.objects.bulk_create(appointments)
            audit_many(
                clinic=clinic,
                user=user,
                action=AuditEvent.Action.CREATE,
                via=via,
                entries=[(a, a.patient_id, _booked_detail(a)) for a in appointments],
            )
    except IntegrityError as exc:
        code = exclusion_code(exc)
        if code is None:
            raise
        for appointment in appointments:
            appointment.pk = None  # The rows were rolled back.
        # The winner has committed (PostgreSQL made this insert wait for it), so it is visible.
        refusals = _overlap_refusals(clinic, appointments) or [
            Refusal(code, "Another booking took this time a moment ago; choose another.")
        ]
        raise BookingRefused(refusals) from exc
    return appointments


def lock_courses(course_ids: Iterable[int | None]) -> dict[int, Course]:
    """Lock the rows of these courses until the transaction ends, in the order of their ids
    (two transactions locking two courses never wait for each other crosswise), and return
    them as they are now. Call it inside the transaction, before reading the courses' visits.

    On PostgreSQL a second booking of the same course waits here until the first commits, and
    then reads the first one's visits; on SQLite the IMMEDIATE transaction already holds the
    only write lock, and SELECT ... FOR UPDATE is left out of the query."""
    ids = sorted({pk for pk in course_ids if pk is not None})
    if not ids:
        return {}
    return {
        c.pk: c
        for c in Course.objects.select_for_update(of=("self",))
        .select_related("clinic", "patient", "protocol")
        .filter(pk__in=ids)
        .order_by("pk")
    }


def calendar_refusals(clinic: Clinic, appointments: list[Appointment]) -> list[Refusal]:
    """Everything the calendar has against these visits, new or moved: holidays, opening and
    working hours, licences, and overlaps (moved rows are not counted against themselves).
    Run it inside the transaction that writes them."""
    return (
        _hours_refusals(clinic, appointments)
        + _licence_refusals(clinic, appointments)
        + _overlap_refusals(clinic, appointments)
    )


def _booked_detail(a: Appointment) -> dict[str, Any]:
    return {
        "kind": a.kind,
        "starts_at": a.starts_at.isoformat(),
        "ends_at": a.ends_at.isoformat(),
        "practitioner": a.practitioner_id,
        "room": a.room_id,
        "course": a.course_id,
    }


def do_cancel(
    appointment: Appointment, *, user: Any, reason: str = "", via: str = "api"
) -> Appointment:
    """Cancel a booked or confirmed appointment; its slot is free again."""
    with transaction.atomic():
        fresh = Appointment.objects.select_for_update().get(pk=appointment.pk)
        if fresh.status not in (Appointment.Status.BOOKED, Appointment.Status.CONFIRMED):
            raise ValidationError(f"{status_words(fresh)} appointment cannot be cancelled.")
        previous = fresh.status
        fresh.status = Appointment.Status.CANCELLED
        fresh.cancelled_at = timezone.now()
        fresh.cancelled_by = acting(user)
        fresh.cancel_reason = reason.strip()[:300]
        fresh.save(update_fields=["status", "cancelled_at", "cancelled_by", "cancel_reason"])
        audit(
            clinic=fresh.clinic,
            user=user,
            action=AuditEvent.Action.UPDATE,
            obj=fresh,
            patient_id=fresh.patient_id,
            via=via,
            status=fresh.status,
            previous=previous,
            reason=fresh.cancel_reason,
        )
    if not transaction.get_connection().in_atomic_block:
        visit_cancelled.send(Appointment, appointment=fresh)
    else:
        transaction.on_commit(lambda: visit_cancelled.send(Appointment, appointment=fresh))
    return fresh


def do_mark_no_show(appointment: Appointment, *, user: Any, via: str = "api") -> Appointment:
    """Record that the patient did not come. Only once the appointment has begun; the slot is
    free again."""
    with transaction.atomic():
        fresh = Appointment.objects.select_for_update().get(pk=appointment.pk)
        if fresh.status not in (Appointment.Status.BOOKED, Appointment.Status.CONFIRMED):
            raise ValidationError(
                f"{status_words(fresh)} appointment cannot be marked as a no-show."
            )
        now = timezone.now()
        if now < fresh.starts_at:
            raise ValidationError("An appointment that has not begun cannot be a no-show.")
        _stamp(fresh, Appointment.Status.NO_SHOW, "no_show", now, user, via)
    return fresh


def do_mark_arrived(appointment: Appointment, *, user: Any, via: str = "api") -> Appointment:
    """Check the patient in: a booked or confirmed visit of today is marked arrived, with who
    marked it and when. A cancelled or missed visit stays as it is."""
    with transaction.atomic():
        fresh = Appointment.objects.select_for_update().get(pk=appointment.pk)
        if fresh.status not in (Appointment.Status.BOOKED, Appointment.Status.CONFIRMED):
            raise ValidationError(f"{status_words(fresh)} appointment cannot be checked in.")
        now = timezone.now()
        tz = fresh.clinic.tz
        if fresh.starts_at.astimezone(tz).date() != now.astimezone(tz).date():
            raise ValidationError("A patient can be checked in only on the day of the visit.")
        _stamp(fresh, Appointment.Status.ARRIVED, "arrived", now, user, via)
    return fresh


def _stamp(
    appointment: Appointment, status: str, field: str, now: dt.datetime, user: Any, via: str
) -> None:
    """Move a locked appointment to `status`, stamping `<field>_at` and `<field>_by`, and
    audit the change with the status it had before."""
    previous = appointment.status
    appointment.status = status
    setattr(appointment, f"{field}_at", now)
    setattr(appointment, f"{field}_by", acting(user))
    appointment.save(update_fields=["status", f"{field}_at", f"{field}_by"])
    audit(
        clinic=appointment.clinic,
        user=user,
        action=AuditEvent.Action.UPDATE,
        obj=appointment,
        patient_id=appointment.patient_id,
        via=via,
        status=status,
        previous=previous,
    )


# What a charted session finishes: its kind of visit, by the session's kind.
SESSION_VISIT = {"course": logic.SESSION, "maintenance": logic.MAINTENANCE}
CHARTABLE = ("booked", "confirmed", "arrived")


def link_session(session: Any, *, user: Any, via: str = "api") -> Appointment | None:
    """Mark done the visit a charted session was given at, and link the session to it: the
    course's open visit of the session's kind on the same day, the nearest in time. Call it
    inside the transaction that saves the session; a session charted without a visit booked
    (after the fact, or a walk-in) links nothing."""
    course = session.course
    tz = course.clinic.tz
    local = session.performed_at.astimezone(tz)
    day_start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    candidates = list(
        Appointment.objects.select_for_update()
        .filter(
            course=course,
            kind=SESSION_VISIT.get(session.kind, logic.SESSION),
            status__in=CHARTABLE,
            session__isnull=True,
            starts_at__gte=day_start,
            starts_at__lt=day_start + dt.timedelta(days=1),
        )
        .order_by("starts_at")
    )
    if not candidates:
        return None
    visit = min(candidates, key=lambda a: abs(a.starts_at - session.performed_at))
    previous = visit.status
    visit.status = Appointment.Status.DONE
    visit.session = session
    visit.save(update_fields=["status", "session"])
    audit(
        clinic=visit.clinic,
        user=user,
        action=AuditEvent.Action.UPDATE,
        obj=visit,
        patient_id=visit.patient_id,
        via=via,
        status=visit.status,
        previous=previous,
        session=session.pk,
    )
    return visit


def status_words(a: Appointment) -> str:
    """ "A booked", "An arrived": the status as the start of a sentence."""
    status = str(a.get_status_display()).lower()
    return ("An " if status[0] in "aeiou" else "A ") + status


# Building and checking.


def _build(request: BookingRequest, user: Any) -> Appointment:
    ends_at = request.ends_at
    if ends_at is None and (request.course is not None or request.kind == logic.CONSULTATION):
        ends_at = request.starts_at + visit_types.visit_length(
            request.patient.clinic, request.kind, request.course
        )
    return Appointment(
        clinic=request.patient.clinic,
        patient=request.patient,
        course=request.course,
        kind=request.kind,
        practitioner=request.practitioner,
        room=request.room,
        starts_at=request.starts_at,
        ends_at=ends_at,  # type: ignore[misc]  # None is refused by _invalid().
        notes=request.notes,
        created_by=acting(user),
    )


def _invalid(requests: Sequence[BookingRequest], appointments: list[Appointment]) -> list[Refusal]:
    out: list[str] = []
    clinic_id = requests[0].patient.clinic_id
    now = timezone.now()
    clinical = {
        Membership.Role.MANAGER,
        Membership.Role.PRACTITIONER,
    }
    practitioners_ok = set(
        Membership.objects.filter(
            clinic_id=clinic_id,
            role__in=clinical,
            user_id__in={r.practitioner.pk for r in requests},
        ).values_list("user_id", flat=True)
    )
    for r, a in zip(requests, appointments, strict=True):
        if r.kind not in Appointment.Kind.values:
            out.append(f"{r.kind!r} is not a kind of appointment.")
        if r.patient.clinic_id != clinic_id:
            out.append("All the appointments of one booking must be in the same clinic.")
        if r.course is not None and r.course.patient_id != r.patient.pk:
            out.append("The course is another patient's.")
        if r.room is not None and (r.room.clinic_id != clinic_id or not r.room.active):
            out.append(f"{r.room} is not an open room of this clinic.")
        if r.practitioner.pk not in practitioners_ok:
            out.append(f"{r.practitioner.display_name} is not a practitioner of this clinic.")
        if timezone.is_naive(r.starts_at) or (a.ends_at and timezone.is_naive(a.ends_at)):
            out.append("Give times with their time zone.")
            continue
        if a.ends_at is None:
            out.append("Give the end time of a visit that is not part of a course.")
        elif a.ends_at <= a.starts_at:
            out.append("An appointment must end after it starts.")
        if r.starts_at < now:
            out.append("An appointment cannot be booked in the past.")
    return [Refusal("invalid", m) for m in dict.fromkeys(out)]


def _hours_refusals(clinic: Clinic, appointments: list[Appointment]) -> list[Refusal]:
    """Holidays, opening hours and working hours, with four queries for the whole request."""
    tz = clinic.tz
    days = {a.starts_at.astimezone(tz).date() for a in appointments}
    hours = Hours.load(clinic, {a.practitioner_id for a in appointments}, min(days), max(days))

    out: list[Refusal] = []
    for a in appointments:
        start, end = a.starts_at.astimezone(tz), a.ends_at.astimezone(tz)
        day, what = start.date(), _what(a, tz)
        if end.date() != day:
            out.append(Refusal("clinic_closed", f"{what} would run past midnight."))
            continue
        if day in hours.holidays:
            out.append(
                Refusal(
                    "holiday",
                    f"The clinic is closed on {logic.day_words(start)} "
                    f"({hours.holidays[day]}): {what}.",
                )
            )
            continue
        open_spans = hours.open_on(day)
        if not logic.covers(open_spans, start.time(), end.time()):
            out.append(
                Refusal(
                    "clinic_closed",
                    f"The clinic is open {logic.spans_words(open_spans)} on "
                    f"{start:%A}s: {what} falls outside."
                    if open_spans
                    else f"The clinic is closed on {start:%A}s, so "
                    f"{_what(a, tz, article=True)} cannot be booked.",
                )
            )
        spans = hours.working(a.practitioner_id, day)
        if not logic.covers(spans, start.time(), end.time()):
            out.append(
                Refusal(
                    "practitioner_not_working",
                    _working_words(a, spans, start, what),
                )
            )
    return out


def _working_words(a: Appointment, spans: list[logic.Span], start: dt.datetime, what: str) -> str:
    """ "Dr A works 09:00–13:00 on Wed 9 Dec: a session … falls outside.", or, on a day off,
    "Dr A does not work on Wed 9 Dec, so a session at 10:00–10:40 cannot be booked." """
    name, day = a.practitioner.display_name, logic.day_words(start)
    if not spans:
        kind = str(a.get_kind_display()).lower()
        kind = ("an " if kind[0] in "aeiou" else "a ") + kind
        span = f"{logic.clock(start)}–{logic.clock(a.ends_at.astimezone(start.tzinfo))}"
        return f"{name} does not work on {day}, so {kind} at {span} cannot be booked."
    return f"{name} works {logic.spans_words(spans)} on {day}: {what} falls outside."


# Visits where the practitioner injects: they need a licence valid on the day, as the session
# gate does (courses/rules.py), so a course is never booked with someone who may not give it.
INJECTING = {logic.ALLERGY_TEST, logic.SESSION, logic.MAINTENANCE}


def licensed_until(clinic: Clinic, user_ids: set[int]) -> dict[int, dt.date]:
    """The latest licence expiry of each practitioner in the clinic (absent: no licence)."""
    out: dict[int, dt.date] = {}
    for user_id, expires in PractitionerLicence.objects.filter(
        clinic=clinic, user_id__in=user_ids
    ).values_list("user_id", "expires_on"):
        out[user_id] = max(expires, out.get(user_id, expires))
    return out


def may_give(kind: str, expires: dt.date | None, day: dt.date) -> bool:
    """Who may take a visit on a day: a visit where the practitioner injects needs a licence
    valid on `day`, by the session gate's own rule (courses.rules.licence_problem). The booking
    path refuses by it, and every picker and slot search offers only by it, so nothing is
    offered that the booking would refuse, nor booked that the gate would refuse."""
    return kind not in INJECTING or rules.licence_problem("", expires, day) is None


def licence_words(name: str, expires: dt.date | None, day: dt.date, today: dt.date) -> str:
    """Why `name` may not inject on `day` (courses.rules.licence_problem), for a visit that
    may_give refused."""
    return rules.licence_problem(name, expires, day, today) or ""


def licensed_for(clinic: Clinic, users: Iterable[User], kind: str, day: dt.date) -> list[User]:
    """Those of `users` who may take a visit of `kind` on `day` (see may_give)."""
    users = list(users)
    if kind not in INJECTING:
        return users
    until = licensed_until(clinic, {u.pk for u in users})
    return [u for u in users if may_give(kind, until.get(u.pk), day)]


def _licence_refusals(clinic: Clinic, appointments: list[Appointment]) -> list[Refusal]:
    injecting = [a for a in appointments if a.kind in INJECTING]
    if not injecting:
        return []
    until = licensed_until(clinic, {a.practitioner_id for a in injecting})
    out = []
    today = timezone.now().astimezone(clinic.tz).date()
    for a in injecting:
        day = a.starts_at.astimezone(clinic.tz).date()
        expires = until.get(a.practitioner_id)
        if not may_give(a.kind, expires, day):
            words = licence_words(a.practitioner.display_name, expires, day, today)
            out.append(
                Refusal(
                    "practitioner_unlicensed",
                    f"{words.removesuffix('.')}: "
                    f"{_what(a, clinic.tz)} needs a licensed practitioner.",
                )
            )
    return list(dict.fromkeys(out))


def _overlap_refusals(clinic: Clinic, appointments: list[Appointment]) -> list[Refusal]:
    """Overlaps inside the request and with the calendar's active appointments, in one query."""
    tz = clinic.tz
    out: list[Refusal] = []
    for i, a in enumerate(appointments):
        for b in appointments[i + 1 :]:
            shared = (
                a.practitioner_id == b.practitioner_id
                or a.patient_id == b.patient_id
                or (a.room_id is not None and a.room_id == b.room_id)
            )
            if shared and a.starts_at < b.ends_at and b.starts_at < a.ends_at:
                out.append(
                    Refusal("overlap_in_request", f"{_what(a, tz)} and {_what(b, tz)} overlap.")
                )
    who = Q(practitioner_id__in={a.practitioner_id for a in appointments}) | Q(
        patient_id__in={a.patient_id for a in appointments}
    )
    rooms = {a.room_id for a in appointments if a.room_id is not None}
    if rooms:
        who |= Q(room_id__in=rooms)
    # Only what overlaps one of the visits: a course spans months of a busy calendar.
    overlaps = Q()
    for a in appointments:
        overlaps |= Q(starts_at__lt=a.ends_at, ends_at__gt=a.starts_at)
    existing = list(
        Appointment.objects.filter(
            who,
            starts_at__lt=max(a.ends_at for a in appointments),
            ends_at__gt=min(a.starts_at for a in appointments),
        )
        .filter(overlaps)
        .exclude(status__in=Appointment.INACTIVE)
        .exclude(pk__in=[a.pk for a in appointments if a.pk is not None])
        .select_related("practitioner", "room", "patient")
        .order_by("starts_at")
    )
    for a in appointments:
        for b in existing:
            if not (b.starts_at < a.ends_at and a.starts_at < b.ends_at):
                continue
            if b.practitioner_id == a.practitioner_id:
                out.append(
                    Refusal(
                        "practitioner_busy",
                        f"{b.practitioner.display_name} already has {_what(b, tz, article=True)}.",
                    )
                )
            elif a.room_id is not None and b.room_id == a.room_id:
                out.append(
                    Refusal("room_taken", f"{b.room} is taken by {_what(b, tz, article=True)}.")
                )
            elif b.patient_id == a.patient_id:
                out.append(
                    Refusal(
                        "patient_busy",
                        f"{b.patient} already has {_what(b, tz, article=True)} with "
                        f"{b.practitioner.display_name}.",
                    )
                )
    return list(dict.fromkeys(out))


def exclusion_code(exc: IntegrityError) -> str | None:
    """The refusal code when PostgreSQL refused a row with one of the overlap constraints."""
    diag = getattr(exc.__cause__, "diag", None)
    return EXCLUSION_CONSTRAINTS.get(getattr(diag, "constraint_name", None) or "")


def _what(a: Appointment, tz: dt.tzinfo, article: bool = False) -> str:
    """ "a session 10:00–10:45 on Tue 1 Dec", in the clinic's time."""
    start, end = a.starts_at.astimezone(tz), a.ends_at.astimezone(tz)
    kind = str(a.get_kind_display())
    if article:
        kind = ("an " if kind[0].lower() in "aeiou" else "a ") + kind.lower()
    return f"{kind} {logic.clock(start)}–{logic.clock(end)} on {logic.day_words(start)}"
