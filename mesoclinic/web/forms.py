from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone

from mesoclinic.courses.models import FollowUp
from mesoclinic.lib import limits
from mesoclinic.patients.models import Patient
from mesoclinic.patients.records import EDITABLE, guardian_problems


def put_errors(
    form: forms.Form, exc: ValidationError, field_of: Callable[[str], str | None] | None = None
) -> None:
    """Show an action's ValidationError on the form: each problem on the field it names, where
    the form has that field (`field_of` maps an action's key to a field name when they
    differ), and the rest at the top of the form, prefixed by what they are about."""
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc.messages)
        return
    for key, errors in exc.error_dict.items():
        target = field_of(key) if field_of else key
        if target not in form.fields:
            target = None
        for e in errors:
            text = " ".join(e.messages)
            form.add_error(target, text if target else f"{key.replace('_', ' ')}: {text}")


class PatientForm(forms.ModelForm):
    # The model's address is a text column of any length; the API takes at most as many.
    address = forms.CharField(
        label="Address",
        required=False,
        max_length=limits.ADDRESS,
        widget=forms.Textarea(attrs={"rows": 3}),
    )

    class Meta:
        model = Patient
        # Registration and editing share the fields (patients/records.py EDITABLE).
        fields = list(EDITABLE)
        widgets = {
            "date_of_birth": forms.DateInput(attrs={"type": "date"}),
        }
        help_texts = {
            "phone": "Digits, spaces and + ( ) - .",
            "guardian_name": "Needed while the patient is under 18.",
            "sms_consent": "Tick only when the patient agreed to visit reminders and messages "
            "from the clinic by text. They can reply STOP at any time.",
        }
        labels = {"sms_consent": "The patient agrees to text messages"}

    def clean(self) -> dict[str, object]:
        cleaned = super().clean() or {}
        # The clinic's day when the form knows the clinic, else the active time zone's.
        clinic_id = self.instance.clinic_id
        zone = self.instance.clinic.tz if clinic_id else None
        today = timezone.localdate(timezone.now(), zone)
        for name, message in guardian_problems(cleaned, today).items():
            if name not in self.errors:
                self.add_error(name, message)
        return cleaned

    def clean_first_name(self) -> str:
        return str(self.cleaned_data["first_name"]).strip()

    def clean_last_name(self) -> str:
        return str(self.cleaned_data["last_name"]).strip()

    def clean_date_of_birth(self) -> dt.date:
        born: dt.date = self.cleaned_data["date_of_birth"]
        if born.year < 1900:
            raise forms.ValidationError("Enter a date of birth after 1900.")
        return born


class ScreeningForm(forms.Form):
    """One yes/no question per field, built from the clinic's current questionnaire."""

    def __init__(self, questions: list[dict[str, str]], *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        for q in questions:
            self.fields[q["key"]] = forms.TypedChoiceField(
                label=q["text"],
                choices=[("no", "No"), ("yes", "Yes")],
                coerce=lambda v: v == "yes",
                widget=forms.RadioSelect,
            )


class CourseForm(forms.Form):
    protocol = forms.ChoiceField()
    areas = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple)
    cadence_days = forms.TypedChoiceField(
        label="Cadence", coerce=int, choices=[(7, "Every week"), (14, "Every other week")]
    )
    planned_sessions = forms.IntegerField(label="Planned sessions", min_value=1, max_value=60)
    first_session_on = forms.DateField(
        label="Session 1 on",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Leave empty for the first day after the allergy-test wait.",
    )
    products = forms.TypedMultipleChoiceField(
        label="Products",
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Leave them all unticked to plan the formulary's products for the "
        "protocol's indication. Only the lots of the planned products can be used.",
    )

    def __init__(
        self,
        protocols: list[tuple[str, str]],
        areas: list[tuple[str, str]],
        *args: object,
        products: list[tuple[int, str]] | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["protocol"].choices = protocols  # type: ignore[attr-defined]
        self.fields["areas"].choices = areas  # type: ignore[attr-defined]
        self.fields["products"].choices = products or []  # type: ignore[attr-defined]


class ConsentForm(forms.Form):
    signed_name = forms.CharField(label="Patient's full name, typed", max_length=200)
    signature = forms.CharField(
        max_length=limits.SIGNATURE,
        widget=forms.HiddenInput,
        required=False,
        help_text="Drawn with a finger or a mouse in the box.",
    )

    def clean_signed_name(self) -> str:
        name = str(self.cleaned_data["signed_name"]).strip()
        if not name:
            raise forms.ValidationError("Type the patient's name.")
        return name


class AllergyTestForm(forms.Form):
    given_at = forms.DateTimeField(
        label="Given at", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    lot_1 = forms.CharField(label="First injection: lot number", max_length=60)
    site_1 = forms.CharField(
        label="First injection: site", max_length=100, initial="left inner forearm"
    )
    lot_2 = forms.CharField(label="Second injection: lot number", max_length=60)
    site_2 = forms.CharField(
        label="Second injection: site", max_length=100, initial="right inner forearm"
    )


class ReadingForm(forms.Form):
    read_at = forms.DateTimeField(
        label="Read at", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    result = forms.ChoiceField(
        choices=[
            ("none", "No reaction"),
            ("local", "Local reaction"),
            ("systemic", "Systemic reaction"),
        ],
        widget=forms.RadioSelect,
    )
    notes = forms.CharField(
        max_length=limits.NOTES, required=False, widget=forms.Textarea(attrs={"rows": 2})
    )


# CTCAE v5.0, "injection site reaction": the grade with the words that define it.
CTCAE_GRADES = [
    (1, "1 · Mild: tenderness, warmth, redness or itching"),
    (2, "2 · Moderate: pain, swelling (edema), lipodystrophy or phlebitis"),
    (3, "3 · Severe: ulceration, necrosis or severe tissue damage"),
    (4, "4 · Life-threatening: urgent intervention needed"),
    (5, "5 · Death"),
]


def datetime_local() -> forms.DateTimeInput:
    # The browser's datetime-local input reads and writes "2025-06-03T14:30", with no zone:
    # the form reads it in the active zone, which is the clinic's (ClinicTimezoneMiddleware).
    return forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")


class SideEffectForm(forms.Form):
    """A side effect after a session. The field names are the action's, so that its
    ValidationError lands on the field it names. `sessions` is None when the session is
    already chosen (the form reached from a session's page)."""

    session = forms.TypedChoiceField(label="After session", coerce=int)
    kind = forms.ChoiceField(label="Side effect")
    description = forms.CharField(
        max_length=limits.NOTES,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text='What the patient reports and what you see. Needed for "Other".',
    )
    onset_at = forms.DateTimeField(label="Onset", widget=datetime_local())
    grade = forms.TypedChoiceField(label="Grade (CTCAE)", coerce=int, choices=CTCAE_GRADES)
    resolved_at = forms.DateTimeField(
        label="Resolved at",
        required=False,
        widget=datetime_local(),
        help_text="Leave empty while it lasts.",
    )

    def __init__(
        self,
        kinds: list[tuple[str, str]],
        sessions: list[tuple[int, str]] | None,
        zone: str,
        *args: object,
        **kwargs: object,
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["kind"].choices = kinds  # type: ignore[attr-defined]
        if sessions is None:
            del self.fields["session"]
        else:
            self.fields["session"].choices = sessions  # type: ignore[attr-defined]
        self.fields["onset_at"].help_text = f"When it began, in the clinic's time ({zone})."


class ResolveSideEffectForm(forms.Form):
    resolved_at = forms.DateTimeField(label="Resolved at", widget=datetime_local())


class CloseFollowUpForm(forms.Form):
    resolution = forms.ChoiceField(label="How it ended", choices=FollowUp.Resolution.choices)
    outcome = forms.CharField(
        max_length=limits.NOTES,
        label="Outcome",
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="What was done, and how the patient is.",
    )


class CourseStatusForm(forms.Form):
    """Stop or complete a course from the chart."""

    action = forms.ChoiceField(
        choices=[("stop", "Stop the course"), ("complete", "Mark the course completed")],
        widget=forms.HiddenInput,
    )
    reason = forms.CharField(
        max_length=limits.REASON,
        required=False,
        label="Why",
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Needed to stop a course: it shows on the chart.",
    )
    cancel_visits = forms.BooleanField(
        required=False,
        label="Cancel the course's future visits",
        initial=True,
    )

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if data.get("action") == "stop" and not str(data.get("reason", "")).strip():
            self.add_error("reason", "Say why the course is stopped.")
        return data


class AmendSessionForm(forms.Form):
    """Correct one field of a charted session; the original stays on record."""

    field = forms.ChoiceField(
        label="What to correct",
        choices=[
            ("notes", "Notes"),
            ("burning_minutes", "Burning (minutes)"),
            ("discomfort_minutes", "Discomfort (minutes)"),
        ],
    )
    value = forms.CharField(
        label="Corrected value",
        required=False,
        max_length=limits.NOTES,
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    reason = forms.CharField(
        label="Why",
        max_length=limits.REASON,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Shown beside the correction, with the original.",
    )


class AmendMeasurementForm(forms.Form):
    """Correct a measurement's value; the original stays on record."""

    value = forms.CharField(label="Corrected value", max_length=20)
    reason = forms.CharField(
        label="Why",
        max_length=limits.REASON,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Shown beside the correction, with the original.",
    )


class AmendReadingForm(forms.Form):
    """Correct an allergy test reading's result; the original stays on record."""

    result = forms.ChoiceField(
        label="Corrected result",
        choices=[
            ("none", "No reaction"),
            ("local", "Local reaction"),
            ("systemic", "Systemic reaction"),
        ],
        widget=forms.RadioSelect,
    )
    reason = forms.CharField(
        label="Why",
        max_length=limits.REASON,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Shown beside the correction, with the original.",
    )
