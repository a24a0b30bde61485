"""An import from a CSV file: the file as uploaded, the columns chosen for each field, the
last validation report and, once imported, what was created.

The file's text is kept in the row, so the column mapping and the report survive between the
steps of the import and a restart of the server (no temporary files). It is dropped once the
file is imported."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from mesoclinic.accounts.models import Clinic


class ImportJob(models.Model):
    class Kind(models.TextChoices):
        PATIENTS = "patients", "Patients"
        PRODUCTS = "products", "Products with their ingredients"
        LOTS = "lots", "Lots"

    class Status(models.TextChoices):
        UPLOADED = "uploaded", "Waiting for the columns to be checked"
        CHECKED = "checked", "Checked"
        IMPORTED = "imported", "Imported"

    clinic = models.ForeignKey(Clinic, models.CASCADE, related_name="import_jobs")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    filename = models.CharField(max_length=200, blank=True)
    encoding = models.CharField(max_length=20)
    delimiter = models.CharField(max_length=1)
    content = models.TextField(help_text="The file's text, decoded.")
    # The column chosen for each field: {field key: column index in the file, or None}.
    mapping = models.JSONField(default=dict)
    # The last validation's problems: [{"row": 2, "column": "DOB", "problem": "..."}].
    problems = models.JSONField(default=list, blank=True)
    rows = models.PositiveIntegerField(default=0, help_text="Data rows in the file.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.UPLOADED)
    # What the import created: {"patients": [ids]} or {"products": [...], "lots": [...]}.
    created = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    imported_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "file import"
        ordering = ["-created_at", "-id"]
        constraints = [
            # An imported job has its time; a job not imported has none.
            models.CheckConstraint(
                condition=models.Q(status="imported", imported_at__isnull=False)
                | (~models.Q(status="imported") & models.Q(imported_at__isnull=True)),
                name="import_imported_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} from {self.filename or 'a file'}"

    @property
    def is_imported(self) -> bool:
        return self.status == self.Status.IMPORTED

    @property
    def created_ids(self) -> dict[str, Any]:
        return dict(self.created)
