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
from mesoclinic.patients import normal
from mesoclinic.patients.screening import CAUTION, HARD_STOP

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
    # Text messages (visit reminders, a request to read a message from the clinic) go only to a
    # patient who said yes; a STOP reply from the phone takes the yes back (notify/).
    sms_consent = models.BooleanField(
        "text message reminders",
        default=False,
        help_text="The patient agreed to receive text messages at this phone number.",
    )
    sms_consent_at = models.DateTimeField(
        "text messages agreed on",
        null=True,
        blank=True,
        help_text="When the patient last agreed; empty while they have not.",
    )

    # Whom to call in an emergency.
    emergency_name = models.CharField("emergency contact's name", max_length=200, blank=True)
    emergency_relation = models.CharField("relation to the patient", max_length=100, blank=True)
    emergency_phone = models.CharField(
        "emergency contact's phone", max_length=30, blank=True, validators=[phone_validator]
    )
    # A minor's parent or guardian: required while the patient is under 18.
    guardian_name = models.CharField("guardian's name", max_length=200, blank=True)
    guardian_relation = models.CharField("guardian's relation", max_length=100, blank=True)
    guardian_phone = models.CharField(
        "guardian's phone", max_length=30, blank=True, validators=[phone_validator]
    )
    guardian_email = models.EmailField("guardian's email", blank=True)

    # Kept in step with the name and phone on every save (patients/normal.py): what a search
    # matches, whatever accents, apostrophes or phone format were typed.
    search_key = models.CharField(max_length=210, blank=True, editable=False)
    phone_e164 = models.CharField(max_length=20, blank=True, editable=False)

    # A duplicate merged into another record stays, pointing at the record that was kept.
    merged_into = models.ForeignKey(
        "self", models.PROTECT, null=True, blank=True, related_name="merged_from"
    )
    merged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["last_name", "first_name"]
        indexes = [
            models.Index(fields=["clinic", "last_name"], name="patient_clinic_name"),
            models.Index(fields=["clinic", "search_key"], name="patient_clinic_search_key"),
            models.Index(fields=["clinic", "phone_e164"], name="patient_clinic_phone"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(merged_into=models.F("pk")),
                name="patient_not_merged_into_itself",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.first_name} {self.last_name}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.refresh_search_columns()
        # The time of the patient's yes to texts goes with the yes, however it was given.
        if not self.sms_consent:
            self.sms_consent_at = None
        elif self.sms_consent_at is None:
            self.sms_consent_at = timezone.now()
        fields = kwargs.get("update_fields")
        if fields is not None:
            kwargs["update_fields"] = {*fields, "search_key", "phone_e164", "sms_consent_at"}
        super().save(*args, **kwargs)

    def refresh_search_columns(self) -> None:
        self.search_key = normal.search_key(self.first_name, self.last_name)
        self.phone_e164 = normal.e164(self.phone, normal.region_of(self.clinic.phone))

    def is_minor_on(self, day: dt.date) -> bool:
        return self.age_on(day) < ADULT_AGE

    def age_on(self, day: dt.date) -> int:
        dob = self.date_of_birth
        return day.year - dob.year - ((day.month, day.day) < (dob.month, dob.day))


# The age from which a patient needs no guardian.
ADULT_AGE = 18


class AllergyQuerySet(models.QuerySet["Allergy"]):
    def standing(self) -> AllergyQuerySet:
        """The allergies that count: not marked as entered in error."""
        return self.filter(entered_in_error_at__isnull=True)


class Allergy(models.Model):
    """An allergy the patient reported: to one ingredient of the formulary (the session gate
    refuses any lot whose product contains it), or to another substance named in words. A
    wrong entry is never deleted: it is marked as entered in error, with the reason."""

    patient = models.ForeignKey(Patient, models.CASCADE, related_name="allergies")
    ingredient = models.ForeignKey(
        Ingredient, models.PROTECT, null=True, blank=True, related_name="+"
    )
    substance = models.CharField(
        max_length=200, blank=True, help_text="Another substance, when it is no ingredient."
    )
    reaction = models.CharField(max_length=200, blank=True)
    noticed = models.CharField(
        "when", max_length=100, blank=True, help_text="When it happened, as the patient says."
    )
    recorded_at = models.DateTimeField(default=timezone.now)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    entered_in_error_at = models.DateTimeField(null=True, blank=True)
    entered_in_error_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    entered_in_error_reason = models.CharField(max_length=500, blank=True)

    objects = AllergyQuerySet.as_manager()

    class Meta:
        ordering = ["recorded_at", "id"]
        verbose_name_plural = "allergies"
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "ingredient"],
                condition=models.Q(entered_in_error_at__isnull=True),
                name="allergy_once",
            ),
            models.CheckConstraint(
                condition=models.Q(ingredient__isnull=False) | ~models.Q(substance=""),
                name="allergy_names_what",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.patient}: {self.what}"

    @property
    def what(self) -> str:
        return self.ingredient.name if self.ingredient is not None else self.substance


class Medication(models.Model):
    """A medicine the patient takes. Stopping it keeps the row, with the day it stopped."""

    patient = models.ForeignKey(Patient, models.CASCADE, related_name="medications")
    name = models.CharField(max_length=200)
    dose = models.CharField(max_length=200, blank=True)
    since = models.DateField(null=True, blank=True)
    stopped_on = models.DateField(null=True, blank=True)
    recorded_at = models.DateTimeField(default=timezone.now)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    stopped_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["stopped_on", "name", "id"]

    def __str__(self) -> str:
        return f"{self.name} {self.dose}".strip()


class PatientChange(models.Model):
    """One change to a patient's record, with the values before and after: the record's
    history page reads these."""

    class Kind(models.TextChoices):
        DETAILS = "details", "Details edited"
        MEDICATION = "medication", "Medication"
        ALLERGY = "allergy", "Allergy"
        MERGE = "merge", "Records merged"

    patient = models.ForeignKey(Patient, models.CASCADE, related_name="changes")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    summary = models.CharField(max_length=300)
    # {field: [before, after]}, in the words of the field's label.
    changes = models.JSONField(default=dict, blank=True)
    changed_at = models.DateTimeField(default=timezone.now)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    via = models.CharField(max_length=20, default="web")

    class Meta:
        ordering = ["-changed_at", "-id"]
        get_latest_by = ["changed_at", "id"]

    def __str__(self) -> str:
        return f"{self.patient}: {self.summary}"


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

    @property
    def hard_stops(self) -> tuple[str, ...]:
        """The questions whose answers stop treatment, in their words."""
        return tuple(str(r["text"]) for r in self.reasons or [] if r.get("outcome") == HARD_STOP)

    @property
    def cautions(self) -> tuple[str, ...]:
        """The questions whose answers call for caution, in their words."""
        return tuple(str(r["text"]) for r in self.reasons or [] if r.get("outcome") == CAUTION)


class ConsentTemplate(models.Model):
    """One version of a clinic's consent wording. The regulatory section is generated from
    the formulary for the products the patient consents to (patients/consent.py). A version is
    never edited: a change is the next version (patients/actions.do_change_consent_wording),
    and patients then sign it before their next session."""

    clinic = models.ForeignKey(Clinic, models.CASCADE, related_name="consent_templates")
    version = models.PositiveIntegerField()
    body = models.TextField()
    change_note = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
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
