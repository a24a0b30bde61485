"""The infection-watch email: plain text with a simple HTML alternative.

It asks, it does not diagnose: what to look for in plain words, a link to the questionnaire,
and to call the clinic (or emergency services) when it is urgent. No medical claim of its own.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string

from mesoclinic.safety import links, logic
from mesoclinic.safety.models import WatchPrompt


def context(prompt: WatchPrompt) -> dict[str, Any]:
    """What the email and the questionnaire page say. The prompt should come with its
    session, course, patient and clinic."""
    session = prompt.session
    clinic = prompt.clinic
    local = clinic.local(session.performed_at)
    return {
        "patient": session.course.patient,
        "clinic": clinic,
        "week": prompt.week,
        "session_day": f"{local:%A} {local.day} {local:%B %Y}",
        "questions": logic.QUESTIONS,
        "link_days": logic.LINK_MAX_AGE.days,
    }


def watch_message(prompt: WatchPrompt, to: str) -> EmailMultiAlternatives:
    ctx = {**context(prompt), "url": links.absolute_url(prompt)}
    subject = f"{ctx['clinic'].name}: how are your injection sites? (week {prompt.week})"
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string("safety/watch_email.txt", ctx),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to],
        # RFC 3834: tells mail servers and autoresponders that no person sent this.
        headers={"Auto-Submitted": "auto-generated"},
    )
    message.attach_alternative(render_to_string("safety/watch_email.html", ctx), "text/html")
    return message
