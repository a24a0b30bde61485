"""The portal's forms: a patient's sign-in (the staff's throttled form, asking for an email
address), registration, setting a password, and the online intake (the staff's forms in the
patient's words)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.contrib.auth import password_validation
from django.contrib.auth.forms import SetPasswordForm

from mesoclinic.accounts import throttle
from mesoclinic.accounts.forms import LOCKED_ATTR, ThrottledAuthenticationForm
from mesoclinic.lib import limits
from mesoclinic.patients.records import EDITABLE
from mesoclinic.web.forms import PatientForm
from mesoclinic.web.patient_forms import ScreeningWithAllergiesForm


class PatientLoginForm(ThrottledAuthenticationForm):
    """The staff's sign-in form and its limits on guessing, with the patient's words: their
    email address is their username. A staff account signs in on the staff's page instead."""

    error_messages = {
        **ThrottledAuthenticationForm.error_messages,
        "invalid_login": "The email address or password is not right.",
        "staff": "This is a staff account: sign in on the staff sign-in page.",
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["username"].label = "Email address"
        self.fields["username"].widget.attrs.update({"autocomplete": "email", "type": "email"})

    def clean_username(self) -> str:
        return str(self.cleaned_data.get("username") or "").strip().lower()

    def confirm_login_allowed(self, user: Any) -> None:
        super().confirm_login_allowed(user)
        if user.memberships.exists():
            raise forms.ValidationError(self.error_messages["staff"], code="staff")


class RegisterForm(forms.Form):
    first_name = forms.CharField(label="First name", max_length=100)
    last_name = forms.CharField(label="Last name", max_length=100)
    date_of_birth = forms.DateField(
        label="Date of birth",
        widget=forms.DateInput(attrs={"type": "date", "autocomplete": "bday"}),
        help_text="We use it, with your name and email, to find your record if you have been "
        "to the clinic before.",
    )
    email = forms.EmailField(
        label="Email address",
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
        help_text="We send a link to this address; your account works once you open it.",
    )

    def __init__(self, *args: Any, request: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request = request

    def clean_date_of_birth(self) -> dt.date:
        born: dt.date = self.cleaned_data["date_of_birth"]
        if born > dt.date.today():
            raise forms.ValidationError("A date of birth cannot be in the future.")
        if born.year < 1900:
            raise forms.ValidationError("Check the year of your date of birth.")
        return born

    def clean_email(self) -> str:
        return str(self.cleaned_data["email"]).strip().lower()

    def clean(self) -> dict[str, Any]:
        """Each registration sends an email, so it is counted like a password reset, per
        address and per email (accounts/throttle.py): nobody can flood an inbox from here."""
        cleaned: dict[str, Any] = super().clean() or {}
        email = str(cleaned.get("email") or "")
        if self.request is not None and email:
            refuse_flooding(self.request, email)
        return cleaned


class SignInLinkForm(forms.Form):
    email = forms.EmailField(
        label="Email address",
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )

    def __init__(self, *args: Any, request: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request = request

    def clean(self) -> dict[str, Any]:
        """Counted like a password reset (each request may send an email)."""
        cleaned: dict[str, Any] = super().clean() or {}
        email = str(cleaned.get("email") or "")
        if self.request is not None and email:
            refuse_flooding(self.request, email)
        return cleaned


def refuse_flooding(request: Any, email: str) -> None:
    """Count one email-sending request against the address and the client, as the password
    reset does (accounts/throttle.py); refuse it once either has reached its limit."""
    keys = [throttle.Key.reset(email), throttle.Key.address(throttle.client_ip(request))]
    until = throttle.locked_until(keys)
    if until is not None:
        setattr(request, LOCKED_ATTR, until)
        raise forms.ValidationError(throttle.try_again_message(until), code="throttled")
    throttle.record_failure(keys, username=email, ip=throttle.client_ip(request), path=request.path)


def _password_field(label: str, help_text: str) -> forms.CharField:
    """A field of SetPasswordForm's pair, with the product's length limit."""
    return forms.CharField(
        label=label,
        strip=False,
        max_length=limits.PASSWORD,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=help_text,
    )


class PatientPasswordForm(SetPasswordForm):
    """A new password, checked by the same validators as the staff's."""

    new_password1 = _password_field(
        "New password", password_validation.password_validators_help_text_html()
    )
    new_password2 = _password_field(
        "New password confirmation", "Enter the same password as before, for verification."
    )


# The online intake: the staff's forms in the patient's words.


class DetailsForm(PatientForm):
    """Demographics and contact details. The email address is the patient's sign-in, so it
    is changed by the clinic, not here."""

    class Meta(PatientForm.Meta):
        fields = [name for name in EDITABLE if name != "email"]
        labels = {
            "sex": "Sex",
            "phone": "Phone",
            "emergency_name": "Emergency contact: name",
            "emergency_relation": "Emergency contact: relation to you",
            "emergency_phone": "Emergency contact: phone",
            "guardian_name": "Parent or guardian: name",
            "guardian_relation": "Parent or guardian: relation to you",
            "guardian_phone": "Parent or guardian: phone",
            "guardian_email": "Parent or guardian: email",
        }
        help_texts = {
            "phone": "Digits, spaces and + ( ) - .",
            "guardian_name": "Needed while you are under 18.",
        }


MEDICATIONS = "medications"
_EXTRA = ("allergy_ingredients", "allergy_other", "allergy_reaction", MEDICATIONS)


class IntakeScreeningForm(ScreeningWithAllergiesForm):
    """The staff's screening questionnaire (and what the patient is allergic to), with the
    medicines they take now."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.asks_allergens:
            self.fields["allergy_ingredients"].label = "Allergic to these ingredients"
            self.fields[
                "allergy_other"
            ].help_text = "One a line, when it is none of the ingredients above."
            self.fields["allergy_reaction"].label = "What happened when you reacted"
        self.fields[MEDICATIONS] = forms.CharField(
            label="Medicines you take now",
            required=False,
            max_length=limits.NOTES,
            widget=forms.Textarea(attrs={"rows": 3}),
            help_text="One a line, with the dose if you know it (for example: Metformin "
            "500 mg). Leave it empty if you take none.",
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if "allergy_ingredients" in self.errors:
            self.errors["allergy_ingredients"] = self.error_class(
                ["You answered yes: choose what you are allergic to, or name it below."]
            )
        return cleaned

    def answers(self) -> dict[str, bool]:
        return {k: v for k, v in self.cleaned_data.items() if k not in _EXTRA}

    def medications(self) -> list[str]:
        text = str(self.cleaned_data.get(MEDICATIONS) or "")
        return [line.strip()[:200] for line in text.splitlines() if line.strip()]

    @property
    def question_fields(self) -> list[Any]:
        return [self[name] for name in self.fields if name not in _EXTRA]


class PhotoConsentForm(forms.Form):
    """The patient's yes or no to each use of their photos, in the clinic's standard words."""

    clinical = forms.TypedChoiceField(
        label="Clinical photos",
        choices=[("yes", "Yes, I agree"), ("no", "No, I do not agree")],
        coerce=lambda v: v == "yes",
        widget=forms.RadioSelect,
    )
    marketing = forms.TypedChoiceField(
        label="Photos in the clinic's marketing",
        choices=[("yes", "Yes, I agree"), ("no", "No, I do not agree")],
        coerce=lambda v: v == "yes",
        widget=forms.RadioSelect,
    )


class SignConsentForm(forms.Form):
    read_to_end = forms.BooleanField(
        label="I have read the whole text above.",
        error_messages={"required": "Read the text to its end, then tick this box."},
    )
    signed_name = forms.CharField(
        label="Your full name, typed as your signature",
        max_length=200,
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
    )

    def clean_signed_name(self) -> str:
        name = str(self.cleaned_data["signed_name"]).strip()
        if not name:
            raise forms.ValidationError("Type your full name to sign.")
        return name
