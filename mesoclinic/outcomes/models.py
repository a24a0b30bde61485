"""What a course achieved: measurements on the outcome scales, and standard photos.

A Measurement is one observation (FHIR Observation): a Hexsel total with its five items, a
Nürnberger–Müller grade, a circumference at one site, a weight, a GAIS grade or the patient's
satisfaction. A measurement taken before session 1 is the course's baseline.

A Photo is one standard view of one area. The image is stored through Django's storage API
(settings.STORAGES["clinical_photos"]), re-encoded without EXIF. Clinical and marketing use of
a patient's photos need separate consents (PhotoConsent).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from mesoclinic.accounts.models import Clinic
from mesoclinic.courses.models import Course, Session, SideEffect
from mesoclinic.outcomes import scales
from mesoclinic.patients.models import Patient
from mesoclinic.protocols.vocab import Area


class Measurement(models.Model):
    class Kind(models.TextChoices):
        HEXSEL = scales.HEXSEL, "Hexsel Cellulite Severity Scale"
        NURNBERGER_MULLER = scales.NURNBERGER_MULLER, "Nürnberger–Müller grade"
        CIRCUMFERENCE = scales.CIRCUMFERENCE, "Circumference"
        WEIGHT = scales.WEIGHT, "Weight"
        GAIS = scales.GAIS, "Global Aesthetic Improvement Scale"
        SATISFACTION = scales.SATISFACTION, "Patient satisfaction"

    clinic = models.ForeignKey(Clinic, models.CASCADE, related_name="measurements")
    course = models.ForeignKey(Course, models.CASCADE, related_name="measurements")
    session = models.ForeignKey(
        Session,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="measurements",
        help_text="The session it was taken at; empty for a baseline or a review visit.",
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    site = models.CharField(
        max_length=20, blank=True, help_text="A circumference site key (outcomes.scales.SITES)."
    )
    area = models.CharField(
        max_length=20, choices=Area.choices, blank=True, help_text="The area a Hexsel score is for."
    )
    value = models.DecimalField(max_digits=6, decimal_places=1)
    charted_value = models.DecimalField(
        max_digits=6,
        decimal_places=1,
        null=True,
        blank=True,
        help_text="The value as first charted, kept once it is amended (courses.Amendment).",
    )
    unit = models.CharField(max_length=10, blank=True, help_text='"cm", "kg" or "" for a score.')
    items = models.JSONField(
        default=dict, blank=True, help_text="The Hexsel item scores, by item key."
    )
    loinc = models.CharField(max_length=20, blank=True)
    taken_at = models.DateTimeField()
    notes = models.TextField(blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="+"
    )
    recorded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["taken_at", "id"]
        indexes = [models.Index(fields=["course", "kind", "taken_at"], name="measurement_course")]
        constraints = [
            # The database's own backstop behind outcomes.logic.validate, which names the reason.
            models.CheckConstraint(condition=Q(value__gte=0), name="measurement_not_negative"),
            models.CheckConstraint(
                condition=~Q(kind=scales.HEXSEL) | Q(value__lte=15), name="hexsel_0_15"
            ),
            models.CheckConstraint(
                condition=~Q(kind=scales.NURNBERGER_MULLER) | Q(value__lte=3),
                name="nurnberger_muller_0_3",
            ),
            models.CheckConstraint(
                condition=~Q(kind=scales.GAIS) | (Q(value__gte=1) & Q(value__lte=5)),
                name="gais_1_5",
            ),
            models.CheckConstraint(
                condition=~Q(kind=scales.SATISFACTION) | Q(value__lte=scales.SATISFACTION_MAX),
                name="satisfaction_0_10",
            ),
            models.CheckConstraint(
                condition=~Q(kind=scales.CIRCUMFERENCE) | ~Q(site=""),
                name="circumference_has_site",
            ),
        ]

    def __str__(self) -> str:
        where = f" {self.site}" if self.site else ""
        return (
            f"{self.get_kind_display()}{where} {self.value}{self.unit} ({self.taken_at:%Y-%m-%d})"
        )


class PhotoConsent(models.Model):
    """A patient's yes or no to one use of their photos. The latest row per purpose counts."""

    class Purpose(models.TextChoices):
        CLINICAL = "clinical", "Clinical record"
        MARKETING = "marketing", "Marketing"

    patient = models.ForeignKey(Patient, models.CASCADE, related_name="photo_consents")
    purpose = models.CharField(max_length=10, choices=Purpose.choices)
    granted = models.BooleanField()
    text = models.TextField(help_text="The words the patient agreed or declined to.")
    decided_at = models.DateTimeField(default=timezone.now)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="+"
    )

    class Meta:
        ordering = ["-decided_at", "-id"]

    def __str__(self) -> str:
        verb = "granted" if self.granted else "declined"
        return f"{self.get_purpose_display()} photo consent {verb} by {self.patient}"


def photo_path(photo: Photo, filename: str) -> str:
    # No patient name in the path: object storage keys end up in logs and listings.
    return f"photos/{photo.clinic_id}/{photo.course_id}/{filename}"


def photo_storage():  # type: ignore[no-untyped-def]
    from django.core.files.storage import storages

    return storages["clinical_photos"]


class Photo(models.Model):
    class View(models.TextChoices):
        FRONT = "front", "Front"
        BACK = "back", "Back"
        LEFT = "left", "Left"
        RIGHT = "right", "Right"

    clinic = models.ForeignKey(Clinic, models.CASCADE, related_name="photos")
    course = models.ForeignKey(Course, models.CASCADE, related_name="photos")
    session = models.ForeignKey(
        Session, models.SET_NULL, null=True, blank=True, related_name="photos"
    )
    # A photo of a side effect (the patient's, from the portal's diary) is a clinical photo of
    # the course, shown on the side effect; it is no progress photo and never a marketing one.
    side_effect = models.ForeignKey(
        SideEffect, models.SET_NULL, null=True, blank=True, related_name="photos"
    )
    area = models.CharField(max_length=20, choices=Area.choices)
    view = models.CharField(max_length=5, choices=View.choices)
    image = models.ImageField(
        upload_to=photo_path, storage=photo_storage, width_field="width", height_field="height"
    )
    width = models.PositiveIntegerField(default=0)
    height = models.PositiveIntegerField(default=0)
    content_type = models.CharField(max_length=20)
    sha256 = models.CharField(max_length=64, help_text="Of the stored, EXIF-free image.")
    taken_at = models.DateTimeField()
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="+"
    )
    uploaded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["taken_at", "id"]
        indexes = [models.Index(fields=["course", "area", "view"], name="photo_course_view")]

    def __str__(self) -> str:
        return f"{self.get_area_display()} {self.get_view_display()} ({self.taken_at:%Y-%m-%d})"
