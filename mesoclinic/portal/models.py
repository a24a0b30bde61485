"""The links that let a patient into the portal: an invitation sent from the chart, and the
link that verifies the email address of a patient who registered themself.

A link's token is random and only its SHA-256 is stored, so a copy of the database signs no
one in. A link works once: `do_use_link` marks `used_at` with an update that matches only a
row whose `used_at` is still empty, so two clicks racing each other sign in at most once."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import models
from django.utils import timezone

from mesoclinic.accounts.models import Clinic
from mesoclinic.patients.models import Patient


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class PortalLink(models.Model):
    class Kind(models.TextChoices):
        INVITE = "invite", "Invitation from the clinic"
        REGISTER = "register", "Email verification after registering"
        SIGN_IN = "sign_in", "Sign-in link the patient asked for"

    clinic = models.ForeignKey(Clinic, models.CASCADE, related_name="portal_links")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    token_hash = models.CharField(max_length=64, unique=True)
    # An invitation is for a patient record; a registration has none until it is verified.
    patient = models.ForeignKey(
        Patient, models.CASCADE, null=True, blank=True, related_name="portal_links"
    )
    email = models.EmailField()
    # A registration's name and date of birth, kept until the address is verified.
    details = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind="register") | models.Q(patient__isnull=False),
                name="portal_invite_names_a_patient",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.email}"

    def is_open(self) -> bool:
        return self.used_at is None and self.expires_at > timezone.now()


class WaitlistRequest(models.Model):
    """A patient asks for an earlier slot for the next session of a course. One open request
    per course (a database constraint), so a double click or two tabs make one."""

    class Status(models.TextChoices):
        OPEN = "open", "Waiting for an earlier slot"
        DONE = "done", "Booked from an offer"
        WITHDRAWN = "withdrawn", "Withdrawn"

    clinic = models.ForeignKey(Clinic, models.CASCADE, related_name="waitlist")
    patient = models.ForeignKey(Patient, models.CASCADE, related_name="waitlist")
    course = models.ForeignKey("courses.Course", models.CASCADE, related_name="waitlist")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["course"],
                condition=models.Q(status="open"),
                name="waitlist_one_open_request_per_course",
            ),
        ]

    def __str__(self) -> str:
        return f"Waitlist request of {self.patient} ({self.get_status_display()})"


class WaitlistOffer(models.Model):
    """A freed slot offered to one patient on the waitlist by a single-use link that expires
    (`WAITLIST_OFFER_MINUTES`). Accepting books through the booking path, so two patients
    accepting the same slot cannot both have it: the calendar's constraints decide."""

    class Status(models.TextChoices):
        OFFERED = "offered", "Offered"
        ACCEPTED = "accepted", "Accepted"
        EXPIRED = "expired", "Expired"
        TAKEN = "taken", "Taken by someone else"
        REFUSED = "refused", "No longer fits"

    request = models.ForeignKey(WaitlistRequest, models.CASCADE, related_name="offers")
    token_hash = models.CharField(max_length=64, unique=True)
    starts_at = models.DateTimeField()
    practitioner = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="+")
    # The visit whose cancellation freed the slot.
    freed_by = models.ForeignKey(
        "scheduling.Appointment", models.SET_NULL, null=True, blank=True, related_name="+"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OFFERED)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    answered_at = models.DateTimeField(null=True, blank=True)
    booked = models.ForeignKey(
        "scheduling.Appointment", models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"Offer of {self.starts_at:%Y-%m-%d %H:%M} ({self.get_status_display()})"

    def is_open(self) -> bool:
        return self.status == self.Status.OFFERED and self.expires_at > timezone.now()


class Message(models.Model):
    """One message in the secure thread between a patient and their clinic. The patient writes
    from the portal, staff from the patient's thread; `read_at` is when the other side first
    opened the thread after it arrived (the clinic's unread counts are the patient's messages
    without it). Each message is written with its audit row."""

    class Sender(models.TextChoices):
        PATIENT = "patient", "The patient"
        CLINIC = "clinic", "The clinic"

    clinic = models.ForeignKey(Clinic, models.CASCADE, related_name="messages")
    patient = models.ForeignKey(Patient, models.CASCADE, related_name="messages")
    sender = models.CharField(max_length=7, choices=Sender.choices)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    body = models.TextField(max_length=4000)
    sent_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["sent_at", "id"]
        indexes = [
            models.Index(fields=["clinic", "sender", "read_at"], name="message_unread"),
            models.Index(fields=["patient", "sent_at"], name="message_thread"),
        ]
        constraints = [
            models.CheckConstraint(condition=~models.Q(body=""), name="message_not_empty"),
        ]

    def __str__(self) -> str:
        return f"Message {self.pk} ({self.sender}) in patient {self.patient_id}'s thread"
