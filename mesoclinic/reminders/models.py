"""The reminder outbox, and the changes patients ask for from a reminder's link.

A Reminder row is planned ahead of time and sent by a worker (actions.py). The row is the
history: when it was due, who claimed it, how many attempts, why it was skipped or failed.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from mesoclinic.accounts.models import Clinic
from mesoclinic.reminders import logic
from mesoclinic.scheduling.models import Appointment


class Reminder(models.Model):
    class Kind(models.TextChoices):
        H48 = logic.FIRST.key, "48 hours before"
        H24 = logic.LAST.key, "24 hours before"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"

    class SkipReason(models.TextChoices):
        CANCELLED = logic.SKIP_CANCELLED, "The visit was cancelled"
        NO_SHOW = logic.SKIP_NO_SHOW, "The visit was marked as a no-show"
        MOVED = logic.SKIP_MOVED, "The visit moved to another time"
        NO_EMAIL = logic.SKIP_NO_EMAIL, "The patient has no email address"
        BOOKED_LATE = logic.SKIP_BOOKED_LATE, "Booked less than 48 h ahead: the 24 h one is enough"
        TOO_LATE = logic.SKIP_TOO_LATE, "Too late to be of use"

    clinic = models.ForeignKey(Clinic, models.CASCADE, related_name="reminders")
    appointment = models.ForeignKey(Appointment, models.CASCADE, related_name="reminders")
    kind = models.CharField(max_length=3, choices=Kind.choices)
    planned_for = models.DateTimeField(help_text="The appointment's start this reminder is for.")
    due_at = models.DateTimeField()
    status = models.CharField(max_length=7, choices=Status.choices, default=Status.PENDING)
    skip_reason = models.CharField(max_length=11, choices=SkipReason.choices, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    claim_token = models.CharField(max_length=32, blank=True)
    claimed_by = models.CharField(max_length=100, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    sent_to = models.EmailField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["due_at"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="reminder_status_next"),
            models.Index(fields=["claim_token"], name="reminder_claim_token"),
        ]
        constraints = [
            # Planning twice, or by two workers at once, never makes a second reminder of a kind
            # for the same visit time; a moved visit gets new rows for its new time.
            models.UniqueConstraint(
                fields=["appointment", "kind", "planned_for"], name="one_reminder_per_visit_time"
            ),
            models.CheckConstraint(
                condition=~Q(status="skipped") | ~Q(skip_reason=""),
                name="reminder_skipped_says_why",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} reminder for appointment {self.appointment_id} ({self.status})"


class ChangeRequest(models.Model):
    """A patient asked, from a reminder's link, to change a visit. The front desk follows up;
    one open request per visit time, whose message the patient may update."""

    clinic = models.ForeignKey(Clinic, models.CASCADE, related_name="change_requests")
    appointment = models.ForeignKey(Appointment, models.CASCADE, related_name="change_requests")
    planned_for = models.DateTimeField(help_text="The appointment's start the patient saw.")
    message = models.TextField(blank=True, max_length=1000)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    handled_at = models.DateTimeField(null=True, blank=True)
    handled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["appointment", "planned_for"],
                condition=Q(handled_at__isnull=True),
                name="one_open_change_request_per_visit_time",
            ),
        ]

    def __str__(self) -> str:
        return f"Change request for appointment {self.appointment_id}"
