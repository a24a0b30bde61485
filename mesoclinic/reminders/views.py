"""The pages a reminder's links open: for patients, with no login.

A GET only shows a page with a button. Mail scanners and link previews fetch every link in an
email, so nothing changes until the patient presses the button, which POSTs. A link that was
tampered with, cut short or has expired gets a page that names no visit.
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from mesoclinic.access import BY_LINK, access_appointment, audit_view, caller_for_appointment_link
from mesoclinic.reminders import actions, emails, links, logic
from mesoclinic.reminders.forms import ChangeRequestForm
from mesoclinic.reminders.models import ChangeRequest
from mesoclinic.scheduling.models import Appointment


class Closed(Exception):
    """The link cannot be acted on; `reason` picks what the page says."""

    def __init__(self, reason: str, status: int, appointment: Appointment | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.appointment = appointment


def _visit(token: str, action: str) -> tuple[links.Link, Appointment]:
    """The appointment a link is for, if the patient may still act on it; Closed otherwise."""
    try:
        link = links.read_token(token, action)
    except links.BadLink as bad:
        raise Closed("expired" if bad.expired else "invalid", 400) from None
    who = caller_for_appointment_link(link.appointment_id)
    try:
        appointment = access_appointment(who, link.appointment_id, BY_LINK)
    except Http404:
        raise Closed("gone", 404) from None
    if appointment.status == Appointment.Status.CANCELLED:
        raise Closed("cancelled", 200, appointment)
    if appointment.starts_at != link.planned_for:
        raise Closed("moved", 200, appointment)
    if appointment.status not in logic.ACTIVE or appointment.starts_at <= timezone.now():
        raise Closed("expired", 400)
    return link, appointment


def _closed(request: HttpRequest, closed: Closed) -> HttpResponse:
    clinic = closed.appointment.clinic if closed.appointment is not None else None
    return render(
        request,
        "reminders/closed.html",
        {"reason": closed.reason, "clinic": clinic},
        status=closed.status,
    )


def _page(appointment: Appointment, **extra: Any) -> dict[str, Any]:
    # Showing the page reads the patient's visit: the clinic's trail records it, as the link.
    audit_view(
        caller_for_appointment_link(appointment.pk), appointment, patient_id=appointment.patient_id
    )
    return {**emails.context(appointment), **extra}


@require_http_methods(["GET", "HEAD", "POST"])
def confirm(request: HttpRequest, token: str) -> HttpResponse:
    try:
        link, appointment = _visit(token, links.CONFIRM)
    except Closed as closed:
        return _closed(request, closed)
    if request.method == "POST":
        # If the visit changed since _visit() looked, the page after the redirect says how.
        with suppress(ValidationError):
            actions.do_confirm_by_link(appointment.pk, link.planned_for)
        return redirect(request.path)
    confirmed = appointment.status == Appointment.Status.CONFIRMED
    return render(request, "reminders/confirm.html", _page(appointment, confirmed=confirmed))


@require_http_methods(["GET", "HEAD", "POST"])
def change(request: HttpRequest, token: str) -> HttpResponse:
    try:
        link, appointment = _visit(token, links.CHANGE)
    except Closed as closed:
        return _closed(request, closed)
    open_request = ChangeRequest.objects.filter(
        appointment=appointment, planned_for=link.planned_for, handled_at__isnull=True
    ).first()
    if request.method == "POST":
        form = ChangeRequestForm(request.POST)
        if form.is_valid():
            with suppress(ValidationError):
                actions.do_request_change(
                    appointment.pk, link.planned_for, form.cleaned_data["message"]
                )
            return redirect(request.path)
    else:
        initial = {"message": open_request.message} if open_request else None
        form = ChangeRequestForm(initial=initial)
    return render(
        request, "reminders/change.html", _page(appointment, form=form, open_request=open_request)
    )
