"""The waitlist: a patient asks for an earlier slot for the next session of a course; when a
visit is cancelled (by anyone: scheduling.actions.do_cancel sends `visit_cancelled`), the first
patient on the list whose session window fits the freed slot, with a practitioner licensed on
the day and free time for their session, is offered it by email (and by text message when
they agreed to texts and the provider is set up), with a single-use link that expires.

Accepting books through the booking path (next_visit.do_book_next, or planning.do_move for a
session already booked later), so the checks are the staff's own and two patients accepting
the same slot cannot both have it: the calendar's constraints decide, and the loser is told the
slot was taken. An offer that expires (the worker's `do_expire_offers`, or found expired when
opened) or is found taken moves to the next patient on the list."""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import smtplib
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent, User, audit
from mesoclinic.courses.models import Course
from mesoclinic.notify import logic as notify_logic
from mesoclinic.notify import sms
from mesoclinic.patients.models import Screening
from mesoclinic.portal.intake import booking_stop
from mesoclinic.portal.models import WaitlistOffer, WaitlistRequest, token_hash
from mesoclinic.scheduling import actions, logic, next_visit, planning, series
from mesoclinic.scheduling.actions import BookingRefused
from mesoclinic.scheduling.models import Appointment
from mesoclinic.scheduling.series import Interval

logger = logging.getLogger(__name__)
VIA = "portal"


def offer_url(token: str) -> str:
    return f"{settings.SITE_URL.rstrip('/')}{reverse('portal:offer', args=[token])}"


# The patient's request.


def open_request(course: Course) -> WaitlistRequest | None:
    return WaitlistRequest.objects.filter(course=course, status=WaitlistRequest.Status.OPEN).first()


def do_join(course: Course, *, user: Any) -> WaitlistRequest:
    """Put the course on the waitlist; a second request while one is open answers the open
    one (the database allows one open request per course)."""
    try:
        with transaction.atomic():
            made = WaitlistRequest.objects.create(
                clinic=course.clinic, patient=course.patient, course=course
            )
            audit(
                clinic=course.clinic,
                user=user,
                action=AuditEvent.Action.CREATE,
                obj=made,
                patient_id=course.patient_id,
                via=VIA,
                course=course.pk,
            )
    except IntegrityError:
        found = open_request(course)
        assert found is not None
        return found
    return made


def do_withdraw(request: WaitlistRequest, *, user: Any) -> None:
    with transaction.atomic():
        changed = WaitlistRequest.objects.filter(
            pk=request.pk, status=WaitlistRequest.Status.OPEN
        ).update(status=WaitlistRequest.Status.WITHDRAWN, closed_at=timezone.now())
        if changed:
            audit(
                clinic=request.clinic,
                user=user,
                action=AuditEvent.Action.UPDATE,
                obj=request,
                patient_id=request.patient_id,
                via=VIA,
                status=WaitlistRequest.Status.WITHDRAWN,
            )


# Whether a freed slot fits a request.


def _booked_next(course: Course) -> Appointment | None:
    """The course's next session visit already booked, which an offer would move earlier."""
    return (
        Appointment.objects.filter(
            course=course,
            kind=Appointment.Kind.SESSION,
            status__in=planning.OPEN,
            starts_at__gt=timezone.now(),
        )
        .select_related("clinic", "course__protocol", "course__clinic", "practitioner")
        .order_by("starts_at")
        .first()
    )


def _stopped(course: Course) -> bool:
    latest = (
        Screening.objects.filter(patient_id=course.patient_id)
        .order_by("-screened_at", "-id")
        .first()
    )
    return booking_stop(latest) is not None


@dataclass(frozen=True)
class Fit:
    duration: dt.timedelta
    moving: Appointment | None  # the session visit the offer would move earlier, if any


def fits(request: WaitlistRequest, starts_at: dt.datetime, practitioner: User) -> Fit | None:
    """Whether the slot at `starts_at` with `practitioner` suits this request: the course
    takes bookings, screening has no hard stop, the slot is earlier than the session already
    booked and inside the next session's window, the practitioner may give a session that day,
    and they and the patient are free for the patient's own session length."""
    course = request.course
    if course.status not in next_visit.BOOKABLE or _stopped(course):
        return None
    clinic = course.clinic
    moving = _booked_next(course)
    if moving is not None:
        if starts_at >= moving.starts_at:
            return None
        window = next_visit.window_of(moving)
        duration = moving.duration
    else:
        found = next_visit.next_visit(course)
        if found is None or found.kind != logic.SESSION:
            return None
        window, duration = found.window, found.duration
    if window is None or not planning.fits(starts_at, window):
        return None
    day = starts_at.astimezone(clinic.tz).date()
    expires = actions.licensed_until(clinic, {practitioner.pk}).get(practitioner.pk)
    if not actions.may_give(logic.SESSION, expires, day):
        return None
    calendar = planning.Calendar(
        clinic,
        starts_at,
        starts_at + duration,
        ignore=frozenset([moving.pk]) if moving is not None else frozenset(),
        patient_id=course.patient_id,
    )
    at = starts_at.astimezone(dt.UTC)
    if not series.starts_in(calendar.free(practitioner.pk), Interval(at, at), duration):
        return None
    return Fit(duration, moving)


# Offering.


def slot_freed(appointment: Appointment) -> WaitlistOffer | None:
    """A visit was cancelled: offer its slot to the first patient on the list it fits. Only a
    session's slot, still in the future, is offered."""
    if appointment.kind != Appointment.Kind.SESSION or appointment.starts_at <= timezone.now():
        return None
    return _offer(
        appointment.clinic_id, appointment.starts_at, appointment.practitioner, appointment
    )


def _offer(
    clinic_id: int,
    starts_at: dt.datetime,
    practitioner: User,
    freed_by: Appointment | None,
) -> WaitlistOffer | None:
    now = timezone.now()
    already = WaitlistOffer.objects.filter(
        starts_at=starts_at, practitioner=practitioner, request__clinic_id=clinic_id
    ).values_list("request_id", flat=True)
    # A request waiting on an open offer of another slot is not offered a second one.
    busy = WaitlistOffer.objects.filter(
        status=WaitlistOffer.Status.OFFERED, expires_at__gt=now
    ).values_list("request_id", flat=True)
    candidates = (
        WaitlistRequest.objects.filter(clinic_id=clinic_id, status=WaitlistRequest.Status.OPEN)
        .exclude(Q(pk__in=already) | Q(pk__in=busy))
        .select_related("clinic", "patient", "course__protocol", "course__clinic")
        .order_by("created_at", "pk")
    )
    if freed_by is not None:
        candidates = candidates.exclude(patient_id=freed_by.patient_id)
    for request in candidates[:200]:
        if fits(request, starts_at, practitioner) is None:
            continue
        token = secrets.token_urlsafe(32)
        with transaction.atomic():
            offer = WaitlistOffer.objects.create(
                request=request,
                token_hash=token_hash(token),
                starts_at=starts_at,
                practitioner=practitioner,
                freed_by=freed_by,
                expires_at=now + dt.timedelta(minutes=settings.WAITLIST_OFFER_MINUTES),
            )
            audit(
                clinic=request.clinic,
                user=None,
                action=AuditEvent.Action.CREATE,
                obj=offer,
                patient_id=request.patient_id,
                via=VIA,
                starts_at=starts_at.isoformat(),
                practitioner=practitioner.pk,
            )
        _send(offer, token)
        return offer
    return None


def _send(offer: WaitlistOffer, token: str) -> None:
    """The offer by email, and by text to a patient who agreed to texts (outside the clinic's
    quiet hours). Neither carries a health detail: the clinic, the time and the link."""
    patient, clinic = offer.request.patient, offer.request.clinic
    local = offer.starts_at.astimezone(clinic.tz)
    until = offer.expires_at.astimezone(clinic.tz)
    when = f"{logic.day_words(local)} at {logic.clock(local)}"
    link = offer_url(token)
    context = {
        "clinic": clinic,
        "patient": patient,
        "when": when,
        "until": f"{logic.day_words(until)} at {logic.clock(until)}",
        "link": link,
    }
    if patient.email:
        try:
            send_mail(
                f"{clinic.name}: an earlier visit is free",
                render_to_string("portal/email_offer.txt", context),
                settings.DEFAULT_FROM_EMAIL,
                [patient.email],
            )
        except (OSError, smtplib.SMTPException):
            logger.exception("The waitlist offer %s could not be emailed", offer.pk)
    now_local = timezone.now().astimezone(clinic.tz).time()
    quiet = notify_logic.in_quiet_hours(now_local, clinic.quiet_from, clinic.quiet_until)
    # A STOP reply clears the patient's yes to texts (notify/actions.py), so it is honoured.
    if patient.sms_consent and patient.phone_e164 and sms.configured() and not quiet:
        body = (
            f"{clinic.name}: an earlier visit is free on {when}. "
            f"Take it before {context['until']}: {link} Reply STOP to opt out."
        )
        try:
            sms.send(patient.phone_e164, body)
        except sms.SmsError:
            logger.exception("The waitlist offer %s could not be texted", offer.pk)


# Answering an offer.


def find_offer(token: str) -> WaitlistOffer | None:
    return (
        WaitlistOffer.objects.filter(token_hash=token_hash(token))
        .select_related("request__clinic", "request__patient", "request__course", "practitioner")
        .first()
    )


@dataclass(frozen=True)
class Answer:
    ok: bool
    message: str
    booked: Appointment | None = None


def do_accept(token: str) -> Answer | None:
    """Take the offered slot, or say why not (expired, taken, no longer fitting): the slot
    then goes to the next patient on the list. None for an unknown link."""
    found = find_offer(token)
    if found is None:
        return None
    moved_on = False
    with transaction.atomic():
        offer = (
            WaitlistOffer.objects.select_for_update(of=("self",))
            .select_related(
                "request__clinic", "request__patient", "request__course", "practitioner"
            )
            .get(pk=found.pk)
        )
        if offer.status != WaitlistOffer.Status.OFFERED:
            return Answer(False, closed_words(offer))
        request = offer.request
        now = timezone.now()
        if offer.expires_at <= now:
            _close(offer, WaitlistOffer.Status.EXPIRED, now)
            answer = Answer(False, "This offer has expired, so the time went to someone else.")
            moved_on = True
        else:
            try:
                booked = _book(offer)
            except BookingRefused as exc:
                _close(offer, WaitlistOffer.Status.TAKEN, now)
                taken = {"practitioner_busy", "room_taken", "patient_busy"} & set(exc.codes)
                answer = Answer(
                    False,
                    "Someone else took this time a moment ago; your place on the waitlist is kept."
                    if taken
                    else f"This time no longer suits your course: {exc}",
                )
                moved_on = True
            else:
                _close(offer, WaitlistOffer.Status.ACCEPTED, now, booked)
                WaitlistRequest.objects.filter(pk=request.pk).update(
                    status=WaitlistRequest.Status.DONE, closed_at=now
                )
                answer = Answer(True, "The earlier time is yours.", booked)
    if moved_on:
        _offer(offer.request.clinic_id, offer.starts_at, offer.practitioner, offer.freed_by)
    return answer


def _book(offer: WaitlistOffer) -> Appointment:
    course = offer.request.course
    if _stopped(course):
        # A hard stop answered since the offer was made: no treatment is booked online.
        raise BookingRefused(
            [
                actions.Refusal(
                    "invalid",
                    "your answers to the health questions stop online booking of treatment; "
                    "call the clinic to book a consultation.",
                )
            ]
        )
    moving = _booked_next(course)
    user = offer.request.patient.user
    if moving is not None:
        if offer.starts_at >= moving.starts_at:
            raise BookingRefused(
                [actions.Refusal("invalid", "Your session is already booked earlier.")]
            )
        moved = planning.do_move(
            moving, offer.starts_at, user=user, practitioner=offer.practitioner, via=VIA
        )
        return moved[0]
    return next_visit.do_book_next(course, offer.starts_at, offer.practitioner, user=user, via=VIA)


def _close(
    offer: WaitlistOffer, status: str, now: dt.datetime, booked: Appointment | None = None
) -> None:
    offer.status = status
    offer.answered_at = now
    offer.booked = booked
    offer.save(update_fields=["status", "answered_at", "booked"])
    audit(
        clinic=offer.request.clinic,
        user=offer.request.patient.user,
        action=AuditEvent.Action.UPDATE,
        obj=offer,
        patient_id=offer.request.patient_id,
        via=VIA,
        status=status,
        booked=booked.pk if booked is not None else None,
    )


def closed_words(offer: WaitlistOffer) -> str:
    if offer.status == WaitlistOffer.Status.ACCEPTED:
        return "You have already taken this time."
    if offer.status == WaitlistOffer.Status.EXPIRED:
        return "This offer has expired, so the time went to someone else."
    return "This time has been taken; your place on the waitlist is kept."


def do_expire_offers(now: dt.datetime | None = None) -> int:
    """The worker's part: close the offers whose time ran out and offer each slot to the next
    patient on the list."""
    now = now or timezone.now()
    expired = list(
        WaitlistOffer.objects.filter(
            status=WaitlistOffer.Status.OFFERED, expires_at__lte=now
        ).select_related("request__clinic", "request__patient", "practitioner", "freed_by")[:200]
    )
    count = 0
    for offer in expired:
        changed = WaitlistOffer.objects.filter(
            pk=offer.pk, status=WaitlistOffer.Status.OFFERED
        ).update(status=WaitlistOffer.Status.EXPIRED, answered_at=now)
        if not changed:
            continue
        count += 1
        audit(
            clinic=offer.request.clinic,
            user=None,
            action=AuditEvent.Action.UPDATE,
            obj=offer,
            patient_id=offer.request.patient_id,
            via=VIA,
            status=WaitlistOffer.Status.EXPIRED,
        )
        if offer.starts_at > now:
            _offer(offer.request.clinic_id, offer.starts_at, offer.practitioner, offer.freed_by)
    return count


def on_visit_cancelled(sender: Any, appointment: Appointment, **kwargs: Any) -> None:
    """The receiver of scheduling.actions.visit_cancelled: a failure here never undoes the
    cancellation, it is logged."""
    try:
        slot_freed(appointment)
    except Exception:  # noqa: BLE001 - the cancellation stands whatever the waitlist does.
        logger.exception("The waitlist could not offer the slot of visit %s", appointment.pk)
