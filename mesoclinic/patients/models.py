"""Patients, their allergies, screening and consent."""

from __future__ import annotations

import datetime as dt
import hashlib
import tomllib
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from mesoclinic.accounts.models import Clinic, phone_validator
from mesoclinic.formulary.models import Ingredient, Product

SCREENING_FILE = Path(__file__).resolve().parent / "screening.toml"


def validate_not_future_date(value: dt.date) -> None:
    if value > dt.date.today():
        raise ValidationError("A date of birth cannot be in the future.")


class Patient(models.Model):
    class Sex(models.TextChoices):
        FEMALE = "female", "Female"
        MALE = "male", "Male"
        OTHER = "other", "Other"
        UNKNOWN = "unknown", "Not stated"

    clinic = models.ForeignKey(Clinic, models.CASCADE, related_name="patients")
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)
    date_of_birth = models.DateField(validators=[validate_not_future_date])
    sex = models.CharField(max_length=10, choices=Sex.choices, default=Sex.UNKNOWN)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=30, blank=True, validators=[phone_validator])
    address = models.TextField(blank=True)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="patient",
        help_text="The patient's own login, when they have one.",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["last_name", "first_name"]
        indexes = [models.Index(fields=["clinic", "last_name"], name="patient_clinic_name")]

    def __str__(self) -> str:
        return f"{self.first_name} {self.last_name}"

    def age_on(self, day: dt.date) -> int:
        dob = self.date_of_birth
        return day.year - dob.year - ((day.month, day.day) < (dob.month, dob.day))


class Allergy(models.Model):
    """An allergy the patient reported, to one ingredient. The session gate refuses any lot
    whose product contains it."""

    patient = models.ForeignKey(Patient, models.CASCADE, related_name="allergies")
    ingredient = models.ForeignKey(Ingredient, models.PROTECT, related_name="+")
    reaction = models.CharField(max_length=200, blank=True)
    recorded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["patient", "ingredient"], name="allergy_once"),
        ]

    def __str__(self) -> str:
        return f"{self.patient}: {self.ingredient}"


class ScreeningForm(models.Model):
    """One version of a clinic's screening questionnaire (patients/screening.toml)."""

    clinic = models.ForeignKey(Clinic, models.CASCADE, related_name="screening_forms")
    version = models.PositiveIntegerField()
    document = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-version"]
        constraints = [
            models.UniqueConstraint(fields=["clinic", "version"], name="screening_form_version"),
        ]

    def __str__(self) -> str:
        return f"Screening form v{self.version}"

    @classmethod
    def current(cls, clinic: Clinic) -> ScreeningForm:
        form = ScreeningForm.objects.filter(clinic=clinic).order_by("-version").first()
        return form if form is not None else do_install_screening_form(clinic)

    @property
    def questions(self) -> list[dict[str, Any]]:
        return list(self.document["questions"])


def do_install_screening_form(clinic: Clinic) -> ScreeningForm:
    document = tomllib.loads(SCREENING_FILE.read_text(encoding="utf-8"))
    form, _ = ScreeningForm.objects.get_or_create(
        clinic=clinic, version=document["version"], defaults={"document": document}
    )
    return form


class Screening(models.Model):
    class Result(models.TextChoices):
        ELIGIBLE = "eligible", "Eligible"
        CAUTION = "caution", "Eligible with caution"
        INELIGIBLE = "ineligible", "Not eligible (hard stop)"

    patient = models.ForeignKey(Patient, models.CASCADE, related_name="screenings")
    form = models.ForeignKey(ScreeningForm, models.PROTECT, related_name="+")
    answers = models.JSONField()
    result = models.CharField(max_length=12, choices=Result.choices)
    reasons = models.JSONField(default=list)
    screened_at = models.DateTimeField(default=timezone.now)
    screened_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="+"
    )

    class Meta:
        ordering = ["-screened_at", "-id"]
        get_latest_by = ["screened_at", "id"]

    def __str__(self) -> str:
        return f"{self.patient} screened {self.screened_at:%Y-%m-%d}: {self.result}"


class ConsentTemplate(models.Model):
    """One version of a clinic's consent wording. The regulatory section is generated from
    the formulary for the products the patient consents to (patients/consent.py)."""

    clinic = models.ForeignKey(Clinic, models.CASCADE, related_name="consent_templates")
    version = models.PositiveIntegerField()
    body = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-version"]
        constraints = [
            models.UniqueConstraint(fields=["clinic", "version"], name="consent_template_version"),
        ]

    def __str__(self) -> str:
        return f"Consent text v{self.version}"


class Consent(models.Model):
    class Method(models.TextChoices):
        TYPED = "typed", "Typed name on screen"
        DRAWN = "drawn", "Typed name and drawn signature on screen"
        PAPER = "paper", "Signed on paper, scanned"

    patient = models.ForeignKey(Patient, models.CASCADE, related_name="consents")
    template = models.ForeignKey(ConsentTemplate, models.PROTECT, related_name="+")
    products = models.ManyToManyField(Product, related_name="+")
    indication = models.CharField(max_length=30, blank=True)
    areas = models.JSONField(default=list, blank=True)
    text = models.TextField(help_text="The full text the patient saw and signed.")
    text_sha256 = models.CharField(max_length=64)
    signed_name = models.CharField(max_length=200)
    signed_at = models.DateTimeField()
    method = models.CharField(max_length=10, choices=Method.choices)
    signature = models.TextField(
        blank=True, help_text="A drawn signature as an SVG path or data URL."
    )
    witnessed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="+"
    )
    recorded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-signed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.patient} consent v{self.template.version} {self.signed_at:%Y-%m-%d}"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
