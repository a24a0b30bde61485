"""Serious adverse events, the infection watch after each session, and surveillance alerts.

- AdverseEvent: a serious event (FHIR AdverseEvent) with its CTCAE grade, onset, outcome,
  actions taken, suspected lots and SNOMED CT code. Surveillance counts a session as having an
  adverse outcome when an AdverseEvent names it.
- WatchPrompt: an email to the patient 2, 4, 8 and 12 weeks after a session (SPEC: mycobacterial
  infections appear 1–12 weeks after treatment), with a signed link to a short questionnaire.
  A reported lump, discharge or non-healing wound opens an urgent courses.FollowUp.
- SurveillanceRun and SafetyAlert: each run of the CUSUMs and MaxSPRTs, and the alerts they
  raise for the manager's inbox.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from mesoclinic.accounts.models import Clinic
from mesoclinic.courses.models import Course, FollowUp, Session, SideEffect
from mesoclinic.formulary.models import Lot
from mesoclinic.patients.models import Patient
from mesoclinic.safety import logic


class AdverseEvent(models.Model):
    class Kind(models.TextChoices):
        INFECTION = "infection", "Infection"
        MYCOBACTERIAL = "mycobacterial_infection", "Non-tuberculous mycobacterial infection"
        ABSCESS = "abscess", "Abscess"
        NECROSIS = "necrosis", "Skin necrosis"
        PANNICULITIS = "panniculitis", "Panniculitis"
        PIGMENTATION = "pigmentation_change", "Pigmentation change"
        ALLERGIC = "allergic_reaction", "Allergic reaction"
        OTHER = "other", "Other"

    class Outcome(models.TextChoices):
        # FHIR R4B AdverseEvent.outcome (http://terminology.hl7.org/CodeSystem/adverse-event-outcome).
        ONGOING = "ongoing", "Ongoing"
        RECOVERING = "resolving", "Recovering"
        RECOVERED = "resolved", "Recovered"
        SEQUELAE = "resolvedWithSequelae", "Recovered with lasting effects"
        FATAL = "fatal", "Fatal"
        UNKNOWN = "unknown", "Unknown"

    clinic = models.ForeignKey(Clinic, models.CASCADE, related_name="adverse_events")
    patient = models.ForeignKey(Patient, models.CASCADE, related_name="adverse_events")
    course = models.ForeignKey(Course, models.CASCADE, related_name="adverse_events")
    session = models.ForeignKey(
        Session,
        models.PROTECT,
        related_name="adverse_events",
        help_text="The session the event is attributed to.",
    )
    side_effect = models.ForeignKey(
        SideEffect,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="adverse_events",
        help_text="The side effect it was escalated from, if any.",
    )
    kind = models.CharField(max_length=30, choices=Kind.choices)
    description = models.TextField(blank=True)
    snomed_code = models.CharField(
        max_length=18, blank=True, help_text="A SNOMED CT concept id (checked by its check digit)."
    )
    ctcae_grade = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(5)],
        help_text="CTCAE injection site reaction grade, 1 (mild) to 5 (death).",
    )
    onset_at = models.DateTimeField()
    outcome = models.CharField(max_length=24, choices=Outcome.choices, default=Outcome.ONGOING)
    outcome_at = models.DateTimeField(null=True, blank=True)
    actions_taken = models.TextField(blank=True)
    suspected_lots = models.ManyToManyField(Lot, blank=True, related_name="adverse_events")
    reported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="+"
    )
    reported_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-onset_at", "-id"]
        indexes = [models.Index(fields=["clinic", "onset_at"], name="adverse_event_clinic")]
        constraints = [
            models.CheckConstraint(
                condition=Q(ctcae_grade__gte=1) & Q(ctcae_grade__lte=5),
                name="adverse_event_ctcae_1_5",
            ),
            models.CheckConstraint(
                condition=~Q(outcome="fatal") | Q(ctcae_grade=5),
                name="adverse_event_fatal_is_grade_5",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} (CTCAE {self.ctcae_grade}) after {self.session}"

    @property
    def urgent(self) -> bool:
        """An infection, or a grade at or above the course protocol's urgent threshold."""
        return logic.urgent(self.kind, self.ctcae_grade, self.course.spec.urgent_from_grade.v)


class WatchPrompt(models.Model):
    """One infection-watch email for one session, sent through the same kind of outbox as a
    reminder: planned ahead, claimed by a worker, retried, and kept as the history."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        ANSWERED = "answered", "Answered"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"

    clinic = models.ForeignKey(Clinic, models.CASCADE, related_name="watch_prompts")
    session = models.ForeignKey(Session, models.CASCADE, related_name="watch_prompts")
    week = models.PositiveSmallIntegerField(help_text="Weeks after the session: 2, 4, 8 or 12.")
    due_at = models.DateTimeField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    skip_reason = models.CharField(max_length=100, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    claim_token = models.CharField(max_length=32, blank=True)
    claimed_by = models.CharField(max_length=100, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    sent_to = models.EmailField(blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    answers = models.JSONField(default=dict, blank=True)
    warning_signs = models.JSONField(
        default=list, blank=True, help_text="The warning signs the answer reported."
    )
    follow_up = models.ForeignKey(
        FollowUp, models.SET_NULL, null=True, blank=True, related_name="watch_prompts"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["due_at"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="watch_status_next")]
        constraints = [
            models.UniqueConstraint(fields=["session", "week"], name="one_watch_prompt_per_week"),
            models.CheckConstraint(
                condition=~Q(status="skipped") | ~Q(skip_reason=""),
                name="watch_skipped_says_why",
            ),
        ]

    def __str__(self) -> str:
        return f"Week {self.week} infection watch for session {self.session_id} ({self.status})"


class SurveillanceRun(models.Model):
    clinic = models.ForeignKey(Clinic, models.CASCADE, related_name="surveillance_runs")
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    sessions = models.PositiveIntegerField(default=0)
    adverse_sessions = models.PositiveIntegerField(default=0)
    baseline_rate = models.FloatField(null=True, blank=True)
    alerts_raised = models.PositiveIntegerField(default=0)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"Surveillance of {self.clinic} at {self.started_at:%Y-%m-%d %H:%M}"


class SafetyAlert(models.Model):
    class Method(models.TextChoices):
        CUSUM = "cusum", "Bernoulli CUSUM"
        MAXSPRT = "maxsprt", "Binomial MaxSPRT"

    class Subject(models.TextChoices):
        PRACTITIONER = "practitioner", "Practitioner"
        LOT = "lot", "Lot"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        CLOSED = "closed", "Closed"

    clinic = models.ForeignKey(Clinic, models.CASCADE, related_name="safety_alerts")
    run = models.ForeignKey(SurveillanceRun, models.SET_NULL, null=True, related_name="alerts")
    method = models.CharField(max_length=8, choices=Method.choices)
    subject = models.CharField(max_length=12, choices=Subject.choices)
    practitioner = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.CASCADE, null=True, blank=True, related_name="+"
    )
    lot = models.ForeignKey(
        Lot, models.CASCADE, null=True, blank=True, related_name="safety_alerts"
    )
    subject_key = models.CharField(
        max_length=40, help_text='"practitioner:<id>" or "lot:<id>", for the uniqueness below.'
    )
    raised_at = models.DateTimeField(default=timezone.now)
    sessions = models.PositiveIntegerField(help_text="Sessions read when the alert was raised.")
    adverse_sessions = models.PositiveIntegerField()
    baseline_rate = models.FloatField()
    statistic = models.FloatField(help_text="The CUSUM value or the MaxSPRT log-likelihood ratio.")
    threshold = models.FloatField(help_text="The control limit or the critical value.")
    message = models.TextField()
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.OPEN)
    handled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    handled_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["-raised_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(subject="practitioner") & Q(practitioner__isnull=False) & Q(lot=None))
                | (Q(subject="lot") & Q(lot__isnull=False) & Q(practitioner=None)),
                name="alert_names_its_subject",
            ),
            # A signal that persists run after run stays one alert until it is closed.
            models.UniqueConstraint(
                fields=["clinic", "method", "subject_key"],
                condition=~Q(status="closed"),
                name="one_live_alert_per_subject",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_method_display()} alert: {self.message}"
