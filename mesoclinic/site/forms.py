"""The public site's forms: a visitor's question, and booking a consultation."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.utils import timezone

from mesoclinic.accounts.models import Clinic, phone_validator
from mesoclinic.lib import formats, limits
from mesoclinic.site.booking import Slot

# The trap field's box: out of the tab order and never filled in by the browser, since the
# field is hidden from people (and from screen readers) and must stay empty.
TRAP = forms.TextInput(attrs={"tabindex": "-1", "autocomplete": "off"})


class QuestionForm(forms.Form):
    text = forms.CharField(
        label="Your question",
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Please do not include details of your health: the answer may be published "
        "on this site, without your name.",
    )
    name = forms.CharField(label="Your name (optional)", max_length=100, required=False)
    email = forms.EmailField(
        label="Your email (optional)",
        required=False,
        help_text="Only if you would like the clinic to reply to you.",
    )
    # A field people do not see (hidden by the style sheet, and labelled so): a program that
    # fills in every field fills this one too, and its question is dropped.
    website = forms.CharField(
        label="Leave this empty", required=False, max_length=limits.ADDRESS, widget=TRAP
    )

    def clean_text(self) -> str:
        text = str(self.cleaned_data["text"]).strip()
        if len(text) < 5:
            raise forms.ValidationError("Write your question in a few words.")
        return text

    @property
    def is_spam(self) -> bool:
        return bool(self.cleaned_data.get("website"))


class BookingForm(forms.Form):
    slot = forms.ChoiceField(label="Time", widget=forms.RadioSelect)
    first_name = forms.CharField(
        label="First name",
        max_length=100,
        widget=forms.TextInput(attrs={"autocomplete": "given-name"}),
    )
    last_name = forms.CharField(
        label="Last name",
        max_length=100,
        widget=forms.TextInput(attrs={"autocomplete": "family-name"}),
    )
    date_of_birth = forms.DateField(label="Date of birth")
    phone = forms.CharField(
        label="Phone",
        max_length=30,
        validators=[phone_validator],
        widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "tel"}),
    )
    email = forms.EmailField(
        label="Email",
        help_text="Your confirmation is sent here.",
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    # The same trap as the question form's: people leave it empty.
    website = forms.CharField(
        label="Leave this empty", required=False, max_length=limits.ADDRESS, widget=TRAP
    )

    def __init__(self, *args: Any, clinic: Clinic, slots: list[Slot], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clinic = clinic
        self.fields["slot"].choices = [  # type: ignore[attr-defined]
            (s.value, formats.datetime_text(s.starts_at, clinic)) for s in slots
        ]
        self.fields["date_of_birth"] = formats.ClinicDateField(clinic, label="Date of birth")

    def clean_first_name(self) -> str:
        return str(self.cleaned_data["first_name"]).strip()

    def clean_last_name(self) -> str:
        return str(self.cleaned_data["last_name"]).strip()

    def clean_date_of_birth(self) -> dt.date:
        born: dt.date = self.cleaned_data["date_of_birth"]
        today = timezone.now().astimezone(self.clinic.tz).date()
        if born > today:
            raise forms.ValidationError("A date of birth cannot be in the future.")
        if born.year < today.year - 120:
            raise forms.ValidationError("Check the year of your date of birth.")
        return born

    @property
    def is_spam(self) -> bool:
        return bool(self.cleaned_data.get("website"))

    def chosen_slot(self) -> Slot:
        slot = Slot.parse(self.cleaned_data["slot"], self.clinic.tz)
        assert slot is not None  # The choices are made from slots.
        return slot
