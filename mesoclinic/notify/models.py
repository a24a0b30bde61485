"""Text messages, recall notices and maintenance invitations: each is an outbox row
(lib/outbox.py) planned ahead, claimed by one worker at a time and kept as the history.

Each is made at most once by a unique constraint: one visit text per visit time, one text per
recall notice, one notice per patient per recalled lot, one maintenance invitation per course.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from mesoclinic.accounts.models import Clinic
from mesoclinic.courses.models import Course
from mesoclinic.formulary.models import Lot
from mesoclinic.patients.models import Patient
from mesoclinic.scheduling.models import Appointment


class Status(models.TextChoices):
    PENDING = "pending", "Waiting to be sent"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Could not be sent"
    SKIPPED = "skipped", "Not sent"


class SkipReason(models.TextChoices):
    NO_CONSENT = "no_consent", "The patient has not agreed to text messages"
    NO_PHONE = "no_phone", "The patient has no mobile number"
    NO_EMAIL = "no_email", "The patient has no email address"
    VISIT_CHANGED = "visit_changed", "The visit was cancelled or moved"
    TOO_LATE = "too_late", "Too late to be of use"
    NOT_CONFIGURED = "not_configured", "Text messages are not set up"
    NOT_DUE = "not_due", "No longer due: the course changed"
    REFUSED = "refused", "The provider refused it"


class OutboxRow(models.Model):
    """The fields lib/outbox.Outbox works on."""

    status = models.CharField(max_length=7, choices=Status.choices, default=Status.PENDING)
    skip_reason = models.CharField(max_length=14, choices=SkipReason.choices, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claim_token = models.CharField(max_length=32, blank=True)
    claimed_by = models.CharField(max_length=100, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    sent_to = models.CharField(max_length=254, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        abstract = True


class RecallNotice(OutboxRow):
    """A notice to one patient who received a recalled lot. The row is also the email's outbox
    entry; a text, when the patient agreed to texts, is a TextMessage pointing here. The
    patient reads the notice from a signed link (or, later, in the portal), which sets read_at."""

    clinic = models.ForeignKey(Clinic, models.CASCADE, related_name="recall_notices")
    lot = models.ForeignKey(Lot, models.PROTECT, related_name="notices")
    patient = models.ForeignKey(Patient, models.CASCADE, related_name="recall_notices")
    text = models.TextField(max_length=4000)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["patient__last_name", "patient__first_name", "pk"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="notice_status_next")]
        constraints = [
            # A second click, or two managers at once, never notifies a patient twice.
            models.UniqueConstraint(fields=["lot", "patient"], name="one_notice_per_patient_lot"),
        ]

    def __str__(self) -> str:
        return f"Recall notice of lot {self.lot_id} to patient {self.patient_id}"


class TextMessage(OutboxRow):
    """One text message to a patient: a visit reminder, or the short note that a recall notice
    waits to be read. `provider_sid` and `provider_status` are what the provider answered and
    later reported (delivered, undelivered, failed)."""

    class Kind(models.TextChoices):
        VISIT = "visit", "Visit reminder"
        NOTICE = "notice", "Recall notice"

    clinic = models.ForeignKey(Clinic, models.CASCADE, related_name="texts")
    patient = models.ForeignKey(Patient, models.CASCADE, related_name="texts")
    kind = models.CharField(max_length=6, choices=Kind.choices)
    appointment = models.ForeignKey(
        Appointment, models.CASCADE, null=True, blank=True, related_name="texts"
    )
    planned_for = models.DateTimeField(null=True, blank=True)
    notice = models.ForeignKey(
        RecallNotice, models.CASCADE, null=True, blank=True, related_name="texts"
    )
    body = models.CharField(max_length=320, blank=True)
    provider_sid = models.CharField(max_length=64, blank=True)
    provider_status = models.CharField(max_length=20, blank=True)
    provider_error = models.CharField(max_length=20, blank=True)
    status_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["next_attempt_at"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="text_status_next")]
        constraints = [
            models.UniqueConstraint(
                fields=["appointment", "planned_for"],
                condition=Q(kind="visit"),
                name="one_text_per_visit_time",
            ),
            models.UniqueConstraint(
                fields=["notice"], condition=Q(kind="notice"), name="one_text_per_notice"
            ),
            models.UniqueConstraint(
                fields=["provider_sid"], condition=~Q(provider_sid=""), name="text_provider_sid"
            ),
            models.CheckConstraint(
                condition=(Q(kind="visit") & Q(appointment__isnull=False))
                | (Q(kind="notice") & Q(notice__isnull=False)),
                name="text_says_what_for",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} text to patient {self.patient_id} ({self.status})"


class MaintenanceInvitation(OutboxRow):
    """The one email inviting a patient to book maintenance once their completed course's
    maintenance window (from the protocol) opens."""

    clinic = models.ForeignKey(Clinic, models.CASCADE, related_name="maintenance_invitations")
    course = models.OneToOneField(Course, models.CASCADE, related_name="maintenance_invitation")
    patient = models.ForeignKey(Patient, models.CASCADE, related_name="maintenance_invitations")
    window_from = models.DateField()
    window_to = models.DateField()

    class Meta:
        ordering = ["next_attempt_at"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="invitation_status_next")
        ]

    def __str__(self) -> str:
        return f"Maintenance invitation for course {self.course_id} ({self.status})"
