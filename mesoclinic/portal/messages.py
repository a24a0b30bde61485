"""The secure message thread between a patient and their clinic.

A patient writes from the portal (`/my/messages/`); staff read and reply on the patient's
thread (`/patients/<id>/messages/`, linked from the chart) and see every thread with its
unread count in the clinic's inbox (`/messages/`). Every message is written with its audit
row; opening a thread marks the other side's messages read.

The email that tells a patient a reply is waiting carries no health details: only that the
clinic sent a message and the portal's address to sign in and read it."""

from __future__ import annotations

import smtplib
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages as flash
from django.contrib.auth.decorators import login_required
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Count, Max, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_safe

from mesoclinic.access import (
    OWN,
    READ,
    Caller,
    access_patient,
    audit_list,
    caller_from_request,
    messages_for,
)
from mesoclinic.accounts.models import AuditEvent, audit
from mesoclinic.patients.models import Patient
from mesoclinic.portal.models import Message
from mesoclinic.portal.views import patient_caller, patient_page

MAX_LENGTH = 4000


class MessageForm(forms.Form):
    body = forms.CharField(
        label="Your message",
        max_length=MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 5}),
        error_messages={"required": "Write your message first."},
    )

    def clean_body(self) -> str:
        body = str(self.cleaned_data["body"]).strip()
        if not body:
            raise forms.ValidationError("Write your message first.")
        return body


def do_send_message(patient: Patient, body: str, *, sender: str, user: Any, via: str) -> Message:
    """Write one message in the patient's thread, with its audit row. The text is not in the
    audit row: the message is the record, and the trail says who wrote it and when."""
    with transaction.atomic():
        message = Message.objects.create(
            clinic=patient.clinic, patient=patient, sender=sender, author=user, body=body
        )
        audit(
            clinic=patient.clinic,
            user=user,
            action=AuditEvent.Action.CREATE,
            obj=message,
            patient_id=patient.pk,
            via=via,
            sender=sender,
        )
    return message


def do_mark_thread_read(patient: Patient, *, sent_by: str) -> int:
    """Mark the messages `sent_by` one side in the patient's thread read, once each."""
    return Message.objects.filter(patient=patient, sender=sent_by, read_at__isnull=True).update(
        read_at=timezone.now()
    )


def notify_patient(patient: Patient) -> None:
    """Tell the patient a message is waiting, with no health details: the address may be read
    by someone else."""
    clinic = patient.clinic
    url = f"{settings.SITE_URL.rstrip('/')}{reverse('portal:messages')}"
    body = render_to_string(
        "portal/email_message.txt", {"clinic": clinic, "patient": patient, "url": url}
    )
    send_mail(
        f"A new message from {clinic.name}", body, settings.DEFAULT_FROM_EMAIL, [patient.email]
    )


# The patient's side.


@patient_page
@require_http_methods(["GET", "POST"])
def thread(request: HttpRequest) -> HttpResponse:
    caller = patient_caller(request)
    patient = access_patient(
        caller,
        caller.patient.pk,  # type: ignore[union-attr]
        OWN,
        view=request.method == "GET",
    )
    form = MessageForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        do_send_message(
            patient,
            form.cleaned_data["body"],
            sender=Message.Sender.PATIENT,
            user=request.user,
            via="portal",
        )
        flash.success(request, f"Your message is sent to {patient.clinic.name}.")
        return redirect("portal:messages")
    found = list(messages_for(caller, OWN).select_related("author").order_by("sent_at", "id"))
    if request.method == "GET":
        do_mark_thread_read(patient, sent_by=Message.Sender.CLINIC)
    return render(
        request,
        "portal/messages.html",
        {
            "page": "messages",
            "patient": patient,
            "clinic": patient.clinic,
            "thread": found,
            "form": form,
        },
        status=400 if form.errors else 200,
    )


# The clinic's side.


def _staff(request: HttpRequest) -> Caller:
    return caller_from_request(request)


@login_required
@require_safe
def inbox(request: HttpRequest) -> HttpResponse:
    """Every patient's thread in the clinic, the unread ones first, with their unread count."""
    caller = _staff(request)
    clinic = caller.require(READ).clinic
    rows = list(
        messages_for(caller, READ)
        .values("patient_id", "patient__first_name", "patient__last_name")
        .annotate(
            unread=Count("id", filter=Q(sender=Message.Sender.PATIENT, read_at__isnull=True)),
            last=Max("sent_at"),
        )
        .order_by("-unread", "-last")[:200]
    )
    audit_list(caller, "messages", [r["patient_id"] for r in rows])
    return render(
        request,
        "web/messages/inbox.html",
        {
            "page": "messages",
            "clinic": clinic,
            "rows": rows,
            "unread": sum(r["unread"] for r in rows),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def patient_thread(request: HttpRequest, patient_id: int) -> HttpResponse:
    caller = _staff(request)
    patient = access_patient(caller, patient_id, READ, view=request.method == "GET")
    form = MessageForm(request.POST or None)
    form.fields["body"].label = "Your reply"
    if request.method == "POST" and form.is_valid():
        do_send_message(
            patient,
            form.cleaned_data["body"],
            sender=Message.Sender.CLINIC,
            user=request.user,
            via="web",
        )
        if not patient.email:
            flash.warning(
                request,
                "The reply is in the patient's portal. The patient has no email address, so "
                "no email told them about it.",
            )
        else:
            try:
                notify_patient(patient)
            except (OSError, smtplib.SMTPException):
                flash.warning(
                    request,
                    "The reply is in the patient's portal, but the email telling them about it "
                    "could not be sent. Try again in a moment, or call the patient.",
                )
            else:
                flash.success(request, f"Reply sent. An email told {patient.email} about it.")
        return redirect("web:patient_messages", patient.pk)
    found = list(
        messages_for(caller, READ)
        .filter(patient=patient)
        .select_related("author")
        .order_by("sent_at", "id")
    )
    if request.method == "GET":
        do_mark_thread_read(patient, sent_by=Message.Sender.PATIENT)
    return render(
        request,
        "web/messages/thread.html",
        {"page": "messages", "patient": patient, "thread": found, "form": form},
        status=400 if form.errors else 200,
    )
