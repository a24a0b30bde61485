"""The emails of this app. Like the texts, they say no health details: a recall email asks the
patient to read a message from the clinic (the notice itself is behind the signed link), and a
maintenance invitation speaks only of "your maintenance visit"."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import EmailMessage
from django.template.loader import render_to_string

from mesoclinic.accounts.models import Clinic

HEADERS = {"Auto-Submitted": "auto-generated"}


def notice_email(clinic: Clinic, first_name: str, to: str, link: str) -> EmailMessage:
    ctx = {"clinic": clinic, "first_name": first_name, "link": link}
    return EmailMessage(
        subject=f"A message from {clinic.name}",
        body=render_to_string("notify/notice_email.txt", ctx),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to],
        headers=HEADERS,
    )


def invitation_email(
    clinic: Clinic, first_name: str, to: str, window_from: str, window_to: str
) -> EmailMessage:
    ctx = {
        "clinic": clinic,
        "first_name": first_name,
        "window_from": window_from,
        "window_to": window_to,
    }
    return EmailMessage(
        subject=f"Time to book your maintenance visit at {clinic.name}",
        body=render_to_string("notify/invitation_email.txt", ctx),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to],
        headers=HEADERS,
    )
