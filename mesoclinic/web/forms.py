from __future__ import annotations

import datetime as dt

from django import forms

from mesoclinic.patients.models import Patient


class PatientForm(forms.ModelForm):
    class Meta:
        model = Patient
        fields = ["first_name", "last_name", "date_of_birth", "sex", "phone", "email", "address"]
        widgets = {
            "date_of_birth": forms.DateInput(attrs={"type": "date"}),
            "address": forms.Textarea(attrs={"rows": 3}),
        }
        help_texts = {"phone": "Digits, spaces and + ( ) - ."}

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

    def __init__(
        self,
        protocols: list[tuple[str, str]],
        areas: list[tuple[str, str]],
        *args: object,
        **kwargs: object,
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["protocol"].choices = protocols  # type: ignore[attr-defined]
        self.fields["areas"].choices = areas  # type: ignore[attr-defined]


class ConsentForm(forms.Form):
    signed_name = forms.CharField(label="Patient's full name, typed", max_length=200)
    signature = forms.CharField(
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
    notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
