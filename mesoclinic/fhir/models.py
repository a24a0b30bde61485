"""A Bulk Data `$export` job (FHIR Bulk Data Access IG STU 2): requested by a clinic's manager,
run once by the background worker (mesoclinic/fhir/bulk.py), its NDJSON files kept under
FHIR_EXPORT_DIR until FHIR_EXPORT_RETENTION_HOURS after it finished."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from mesoclinic.accounts.models import Clinic
from mesoclinic.formulary.models import Lot


class ExportJob(models.Model):
    class Level(models.TextChoices):
        SYSTEM = "system", "The whole clinic"
        PATIENT = "patient", "All patients"
        GROUP = "group", "A group of patients"

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for the worker"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    clinic = models.ForeignKey(Clinic, models.CASCADE, related_name="fhir_exports")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="+"
    )
    level = models.CharField(max_length=10, choices=Level.choices)
    # The Group of a group-level export: the patients exposed to this lot.
    lot = models.ForeignKey(Lot, models.CASCADE, null=True, blank=True, related_name="+")
    types = models.JSONField(default=list)  # `_type`: the resource types asked for; [] for all
    # The patients whose records the files hold: each download of a file is audited for them.
    patient_ids = models.JSONField(default=list)
    since = models.DateTimeField(null=True, blank=True)  # `_since`
    request_url = models.TextField()  # the kick-off request's URL, for the manifest
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    progress = models.CharField(max_length=200, blank=True)  # the status answer's X-Progress
    created_at = models.DateTimeField(default=timezone.now)
    claim_token = models.CharField(max_length=32, blank=True)
    claimed_by = models.CharField(max_length=100, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    # The manifest's `transactionTime`: when the worker started reading the records.
    transaction_time = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    output = models.JSONField(default=list)  # [{"type": …, "count": …}] of the files written
    error = models.TextField(blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "created_at"], name="fhir_export_due")]

    def __str__(self) -> str:
        return f"$export {self.pk} ({self.level}, {self.status})"


class SmartApp(models.Model):
    """An OAuth2 app a clinic's manager registered for SMART App Launch (fhir/smart.py): it
    signs in only its own clinic's staff and patients."""

    clinic = models.ForeignKey(Clinic, models.CASCADE, related_name="smart_apps")
    application = models.OneToOneField(
        settings.OAUTH2_PROVIDER_APPLICATION_MODEL, models.CASCADE, related_name="smart_app"
    )
    registered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="+"
    )
    registered_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.application} ({self.clinic})"
