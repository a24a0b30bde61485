"""The reminder email: plain text with a simple HTML alternative, in the clinic's time zone.

What to do before the visit comes from the course's protocol (the exact version the course was
planned with), never from this module: a visit outside a course gets no instructions.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string

from mesoclinic.reminders import links, logic
from mesoclinic.scheduling.models import Appointment


def context(appointment: Appointment) -> dict[str, Any]:
    """What the email and the link pages say about a visit."""
    clinic = appointment.clinic
    local = clinic.local(appointment.starts_at)
    course = appointment.course
    rules = course.spec.before_session if course is not None else None
    return {
        "patient": appointment.patient,
        "clinic": clinic,
        "kind": appointment.get_kind_display(),
        "when": logic.when_words(local, clinic),
        "short_when": logic.short_when(local, clinic),
        "practitioner": appointment.practitioner.display_name,
        "where": ", ".join(p for p in (clinic.name, clinic.city) if p),
        "before": logic.before_visit(rules, appointment.kind, local, clinic),
    }


def reminder_message(appointment: Appointment, to: str) -> EmailMultiAlternatives:
    ctx = {
        **context(appointment),
        "confirm_url": links.absolute_url(appointment, links.CONFIRM),
        "change_url": links.absolute_url(appointment, links.CHANGE),
    }
    subject = f"Reminder: your {ctx['kind'].lower()} on {ctx['short_when']} at {ctx['clinic']}"
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string("reminders/email.txt", ctx),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to],
        # RFC 3834: tells mail servers and autoresponders that no person sent this.
        headers={"Auto-Submitted": "auto-generated"},
    )
    message.attach_alternative(render_to_string("reminders/email.html", ctx), "text/html")
    return message
