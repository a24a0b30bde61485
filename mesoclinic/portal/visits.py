"""The patient books, moves and cancels their own visits, and asks for an earlier slot.

Every change goes through the staff's own actions (next_visit.do_book_next, planning.do_move,
actions.do_cancel), so the server's checks are the same: the course's window (the allergy
test's wait, the cadence), licences, hours and no overlap. Three checks are the portal's own,
made here on the server whatever the page showed: the clinic's policy for late changes
(`Clinic.patient_change_hours`; staff are not bound by it), a hard stop in screening (no
treatment is booked or moved online) and the patient's own records only (another patient's
visit or course is a 404). Everything is audited with the channel "portal"."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from mesoclinic.access import (
    OWN,
    Caller,
    access_appointment,
    access_course,
    access_patient,
    appointments_for,
    courses_for,
)
from mesoclinic.accounts.models import AuditEvent, Clinic, audit
from mesoclinic.courses.models import Course
from mesoclinic.lib import limits
from mesoclinic.portal import waitlist
from mesoclinic.portal.intake import booking_stop, latest_screening
from mesoclinic.portal.views import patient_caller, patient_page
from mesoclinic.scheduling import actions, logic, next_visit, planning
from mesoclinic.scheduling.actions import BookingRefused
from mesoclinic.scheduling.models import Appointment

VIA = "portal"
# The visits a patient may book or move online: those of a course. A consultation is booked
# by calling the clinic (or from the public site, later).
COURSE_KINDS = (Appointment.Kind.ALLERGY_TEST, Appointment.Kind.SESSION)


def _phone_words(clinic: Clinic) -> str:
    return f"call {clinic.name} on {clinic.phone}" if clinic.phone else f"call {clinic.name}"


def policy_words(clinic: Clinic) -> str:
    hours = clinic.patient_change_hours
    span = f"{hours} hour{'s' if hours != 1 else ''}"
    return f"Online, a visit can be moved or cancelled up to {span} before it starts."


def too_late(appointment: Appointment, now: dt.datetime | None = None) -> str | None:
    """Why the clinic's policy refuses an online change to this visit, or None."""
    clinic = appointment.clinic
    now = now or timezone.now()
    if appointment.starts_at - now >= dt.timedelta(hours=clinic.patient_change_hours):
        return None
    return f"{policy_words(clinic)} To change this visit, {_phone_words(clinic)}."


def stop_words(clinic: Clinic) -> str:
    return (
        "Your answers to the health questions stop online booking of treatment. "
        f"To book a consultation instead, {_phone_words(clinic)}."
    )


def _stopped(caller: Caller) -> bool:
    return booking_stop(latest_screening(caller)) is not None


def _changeable(a: Appointment) -> bool:
    return (
        a.kind in COURSE_KINDS
        and a.course_id is not None
        and a.status in planning.OPEN
        and a.starts_at > timezone.now()
    )


# The page of the patient's visits.


@patient_page
@require_safe
def visits(request: HttpRequest) -> HttpResponse:
    caller = patient_caller(request)
    patient = access_patient(caller, caller.patient.pk, OWN, view=True)  # type: ignore[union-attr]
    clinic = patient.clinic
    now = timezone.now()
    upcoming = list(
        appointments_for(caller, OWN)
        .filter(ends_at__gt=now)
        .exclude(status__in=Appointment.INACTIVE)
        .select_related("course__protocol", "practitioner", "clinic")
        .order_by("starts_at")[:20]
    )
    labels = planning.session_labels(upcoming)
    rows = [
        {
            "visit": a,
            "label": labels.get(a.pk) or a.get_kind_display(),
            "changeable": a.status in planning.OPEN,
            "movable": _changeable(a),
            # The policy is said once above the list; a row says only what to do.
            "late": f"It is too close to change online: {_phone_words(clinic)}."
            if a.status in planning.OPEN and too_late(a, now)
            else None,
        }
        for a in upcoming
    ]
    courses = []
    for course in (
        courses_for(caller, OWN)
        .filter(status__in=next_visit.BOOKABLE)
        .select_related("protocol", "clinic", "patient")
        .order_by("created_at")
    ):
        booked_session = any(
            a.course_id == course.pk and a.kind == Appointment.Kind.SESSION for a in upcoming
        )
        courses.append(
            {
                "course": course,
                "next": next_visit.next_visit(course),
                "waiting": waitlist.open_request(course),
                "can_wait": booked_session,
            }
        )
    return render(
        request,
        "portal/visits.html",
        {
            "page": "visits",
            "patient": patient,
            "clinic": clinic,
            "rows": rows,
            "courses": courses,
            "stop": booking_stop(latest_screening(caller)),
            "policy": policy_words(clinic),
        },
    )


# Choosing a time.


class TimeForm(forms.Form):
    """A slot from the list, or a day and time of the patient's own choosing."""

    slot = forms.CharField(required=False, max_length=limits.QUERY, widget=forms.RadioSelect)
    day = forms.DateField(
        required=False, label="Another day", widget=forms.DateInput(attrs={"type": "date"})
    )
    time = forms.TimeField(
        required=False, label="At", widget=forms.TimeInput(attrs={"type": "time"})
    )

    def __init__(self, *args: Any, clinic: Clinic, practitioners: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clinic = clinic
        self.practitioners = {u.pk: u for u in practitioners}

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        tz = self.clinic.tz
        raw = str(data.get("slot") or "")
        if raw:
            start_text, _, who = raw.partition("|")
            try:
                starts_at = dt.datetime.fromisoformat(start_text)
            except ValueError:
                starts_at = None
            user = self.practitioners.get(int(who)) if who.isdigit() else None
            if starts_at is None or timezone.is_naive(starts_at) or user is None:
                self.add_error("slot", "Choose one of the times listed.")
                return data
            data["starts_at"], data["practitioner"] = starts_at.astimezone(tz), user
            return data
        day, time = data.get("day"), data.get("time")
        if day is None and time is None and not self.errors:
            self.add_error("slot", "Choose a time, or give another day and time.")
        elif day is None and "day" not in self.errors:
            self.add_error("day", "Give the day as well as the time.")
        elif time is None and "time" not in self.errors:
            self.add_error("time", "Give the time as well as the day.")
        if day is not None and time is not None:
            data["starts_at"] = dt.datetime.combine(day, time, tzinfo=tz)
            data["practitioner"] = None
        return data


def _refusal_messages(exc: BookingRefused) -> list[str]:
    return list(dict.fromkeys(r.message for r in exc.refusals))


def _slot_rows(found: list[next_visit.Slot], tz: Any) -> list[dict[str, Any]]:
    """The slots grouped by day, for the page."""
    days: dict[dt.date, list[next_visit.Slot]] = {}
    for s in found:
        days.setdefault(s.starts_at.astimezone(tz).date(), []).append(s)
    return [{"day": day, "slots": slots} for day, slots in days.items()]


@patient_page
@require_http_methods(["GET", "POST"])
def book(request: HttpRequest, course_id: int) -> HttpResponse:
    """The course's next visit: the free times in its window, and booking one."""
    caller = patient_caller(request)
    course = access_course(caller, course_id, OWN, view=request.method == "GET")
    clinic = course.clinic
    stop = booking_stop(latest_screening(caller))
    found = next_visit.next_visit(course) if course.status in next_visit.BOOKABLE else None
    first = planning._usual_practitioner(
        course, {u.pk: u for u in planning.practitioners_of(clinic)}
    )
    people = next_visit.practitioners_for(course, first.pk if first else None)
    form = TimeForm(request.POST or None, clinic=clinic, practitioners=people)
    status = 200
    if request.method == "POST":
        status = 400
        if stop is not None:
            form.add_error(None, stop_words(clinic))
            status = 403
        elif form.is_valid():
            practitioner = form.cleaned_data["practitioner"] or (people[0] if people else None)
            try:
                if practitioner is None:
                    raise BookingRefused(
                        [actions.Refusal("invalid", "The clinic has no practitioner to book.")]
                    )
                made = next_visit.do_book_next(
                    course,
                    form.cleaned_data["starts_at"],
                    practitioner,
                    user=request.user,
                    via=VIA,
                )
            except BookingRefused as exc:
                for m in _refusal_messages(exc):
                    form.add_error(None, m)
                status = 409
            else:
                local = made.starts_at.astimezone(clinic.tz)
                messages.success(
                    request,
                    f"Booked: {logic.day_words(local)} at {logic.clock(local)} with "
                    f"{made.practitioner.display_name}.",
                )
                return redirect("portal:visits")
    slots = []
    if found is not None and stop is None:
        slots = next_visit.slots(course, found.kind, found.duration, found.window, people)
    return render(
        request,
        "portal/visit_book.html",
        {
            "page": "visits",
            "patient": course.patient,
            "clinic": clinic,
            "course": course,
            "next": found,
            "days": _slot_rows(slots, clinic.tz),
            "form": form,
            "stop": stop,
            "stop_words": stop_words(clinic),
        },
        status=status,
    )


def _own_open_visit(caller: Caller, appointment_id: int, view: bool) -> Appointment:
    appointment = access_appointment(caller, appointment_id, OWN, view=view)
    if appointment.status not in planning.OPEN or appointment.starts_at <= timezone.now():
        raise Http404("No such visit to change.")
    return appointment


@patient_page
@require_http_methods(["GET", "POST"])
def move(request: HttpRequest, appointment_id: int) -> HttpResponse:
    """Move a visit of a course to another time inside its window; later visits of the course
    shift with it as they do for staff (planning.do_move), and a time that breaks the cadence
    is refused with the valid days."""
    caller = patient_caller(request)
    appointment = _own_open_visit(caller, appointment_id, view=request.method == "GET")
    clinic = appointment.clinic
    course: Course = appointment.course  # type: ignore[assignment]
    label = next_visit.label_of(appointment)
    window = next_visit.window_of(appointment)
    # Only a visit of a course is moved online (its slots come from the course); the clinic
    # moves any other visit.
    late = too_late(appointment) or (
        None
        if _changeable(appointment)
        else f"This visit is moved by the clinic: {_phone_words(clinic)}."
    )
    stopped = _stopped(caller)
    people = [appointment.practitioner]
    form = TimeForm(request.POST or None, clinic=clinic, practitioners=people)
    status = 200
    if request.method == "POST":
        status = 400
        if late:
            form.add_error(None, late)
            status = 403
        elif stopped:
            form.add_error(None, stop_words(clinic))
            status = 403
        elif form.is_valid():
            starts_at = form.cleaned_data["starts_at"]
            if window is not None and not planning.fits(starts_at, window):
                form.add_error(None, next_visit.window_words(label, window, clinic.tz))
                status = 409
            else:
                try:
                    moved = planning.do_move(appointment, starts_at, user=request.user, via=VIA)
                except BookingRefused as exc:
                    for m in _refusal_messages(exc):
                        form.add_error(None, m)
                    if window is not None and "cadence" in exc.codes:
                        form.add_error(None, next_visit.window_words(label, window, clinic.tz))
                    status = 409
                else:
                    local = starts_at.astimezone(clinic.tz)
                    later = len(moved) - 1
                    messages.success(
                        request,
                        f"{label} is now on {logic.day_words(local)} at {logic.clock(local)}"
                        + (
                            f"; {later} later visit{'s' if later != 1 else ''} moved with it "
                            "to keep the course's rhythm."
                            if later > 0
                            else "."
                        ),
                    )
                    return redirect("portal:visits")
    slots = []
    if window is not None and not late and not stopped:
        slots = [
            s
            for s in next_visit.slots(
                course,
                appointment.kind,
                appointment.duration,
                window,
                people,
                ignore=frozenset([appointment.pk]),
            )
            if s.starts_at != appointment.starts_at
        ]
    return render(
        request,
        "portal/visit_move.html",
        {
            "page": "visits",
            "patient": appointment.patient,
            "clinic": clinic,
            "visit": appointment,
            "label": label,
            "window_words": next_visit.window_words(label, window, clinic.tz) if window else "",
            "days": _slot_rows(slots, clinic.tz),
            "form": form,
            "late": late,
            "stopped": stopped,
            "stop_words": stop_words(clinic),
        },
        status=status,
    )


@patient_page
@require_http_methods(["GET", "POST"])
def cancel(request: HttpRequest, appointment_id: int) -> HttpResponse:
    caller = patient_caller(request)
    appointment = _own_open_visit(caller, appointment_id, view=request.method == "GET")
    clinic = appointment.clinic
    late = too_late(appointment)
    errors: list[str] = []
    status = 200
    if request.method == "POST":
        if late:
            errors.append(late)
            status = 403
        else:
            try:
                actions.do_cancel(
                    appointment,
                    user=request.user,
                    reason="Cancelled by the patient online",
                    via=VIA,
                )
            except ValidationError as exc:
                errors += exc.messages
                status = 409
            else:
                local = appointment.starts_at.astimezone(clinic.tz)
                messages.success(
                    request,
                    f"Cancelled: your visit on {logic.day_words(local)} at {logic.clock(local)}.",
                )
                return redirect("portal:visits")
    return render(
        request,
        "portal/visit_cancel.html",
        {
            "page": "visits",
            "patient": appointment.patient,
            "clinic": clinic,
            "visit": appointment,
            "label": next_visit.label_of(appointment),
            "late": late,
            "errors": errors,
        },
        status=status,
    )


@patient_page
@require_POST
def wait(request: HttpRequest, course_id: int) -> HttpResponse:
    """Join the waitlist for an earlier slot for the course's next session, or leave it."""
    caller = patient_caller(request)
    course = access_course(caller, course_id, OWN)
    if request.POST.get("leave"):
        found = waitlist.open_request(course)
        if found is not None:
            waitlist.do_withdraw(found, user=request.user)
        messages.success(request, "You are off the waitlist; your visits stay as they are.")
    elif _stopped(caller):
        messages.error(request, stop_words(course.clinic))
    elif course.status not in next_visit.BOOKABLE:
        raise Http404("This course takes no bookings.")
    else:
        waitlist.do_join(course, user=request.user)
        messages.success(
            request,
            "You are on the waitlist. If an earlier time frees up that suits your course, we "
            "will email you a link to take it.",
        )
    return redirect("portal:visits")


# The offer's link (no sign-in needed: the link is the key, used once).


@require_http_methods(["GET", "POST"])
def offer(request: HttpRequest, token: str) -> HttpResponse:
    found = waitlist.find_offer(token)
    if found is None:
        return render(request, "portal/link_closed.html", status=410)
    clinic = found.request.clinic
    context: dict[str, Any] = {"offer": found, "clinic": clinic}
    if request.method == "GET":
        audit(
            clinic=clinic,
            user=request.user if request.user.is_authenticated else None,
            action=AuditEvent.Action.VIEW,
            obj=found,
            patient_id=found.request.patient_id,
            via=VIA,
        )
        if found.is_open():
            context["label"] = "An earlier visit"
        else:
            context["closed"] = (
                waitlist.closed_words(found)
                if found.status != found.Status.OFFERED
                else "This offer has expired, so the time went to someone else."
            )
        return render(request, "portal/offer.html", context, status=200 if found.is_open() else 410)
    answer = waitlist.do_accept(token)
    assert answer is not None
    context["answer"] = answer
    return render(request, "portal/offer.html", context, status=200 if answer.ok else 409)
