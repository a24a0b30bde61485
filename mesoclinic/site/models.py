"""What the public site keeps: visitors' questions, with the clinic's answers."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from mesoclinic.accounts.models import Clinic


class Question(models.Model):
    """A visitor's question. Staff answer it and choose whether the site shows it; the
    asker's name and email are never shown."""

    clinic = models.ForeignKey(Clinic, models.CASCADE, related_name="questions")
    text = models.TextField(max_length=2000)
    name = models.CharField(max_length=100, blank=True)
    email = models.EmailField(blank=True)
    asked_at = models.DateTimeField(default=timezone.now)
    # Which network address asked, for the rate limit; not shown to anyone.
    address = models.CharField(max_length=45, blank=True)
    answer = models.TextField(blank=True, max_length=4000)
    answered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    answered_at = models.DateTimeField(null=True, blank=True)
    published = models.BooleanField(default=False)

    class Meta:
        ordering = ["-asked_at", "-id"]
        indexes = [models.Index(fields=["clinic", "published"], name="question_clinic_published")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(published=False) | ~models.Q(answer=""),
                name="published_question_has_answer",
            ),
        ]

    def __str__(self) -> str:
        return self.text[:60]


class VisitorBooking(models.Model):
    """A consultation a visitor booked from the public site, with the network address it came
    from: the site books at most a few a day from one address, so that nobody can fill the
    calendar with made-up visitors."""

    clinic = models.ForeignKey(Clinic, models.CASCADE, related_name="+")
    appointment = models.OneToOneField(
        "scheduling.Appointment", models.CASCADE, related_name="visitor_booking"
    )
    address = models.CharField(max_length=45)
    booked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["clinic", "address", "booked_at"], name="visitor_booking_address")
        ]

    def __str__(self) -> str:
        return f"Consultation {self.appointment_id} booked from the site"
