"""The tablet handover (kiosk): staff hand their signed-in tablet to a patient for intake and
consent, and take it back with their PIN.

Pressing "Hand the tablet to the patient" on the chart marks the browser session with the
staff member and the patient (access.KIOSK_KEY). While it is marked:
- the caller is that patient (access.caller_from_request), so the portal's own intake views
  serve the patient's forms, fetched and audited through the access layer with "kiosk" as the
  channel, and a consent signed there is witnessed by the staff member;
- `KioskMiddleware` refuses every other address (staff pages, other patients, the portal's
  other sections, the admin, the API with the session cookie), so the staff session is not
  usable by the patient;
- taking the tablet back needs the staff member's PIN (accounts/pins.py): a few wrong tries
  lock it until they sign in with their password."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import Resolver404, resolve
from django.views.decorators.http import require_http_methods, require_POST

from mesoclinic.access import CLINICAL, KIOSK_KEY, READ, access_patient, kiosk_of
from mesoclinic.accounts import pins
from mesoclinic.accounts.models import AuditEvent, audit
from mesoclinic.api.problems import problem
from mesoclinic.lib import limits
from mesoclinic.patients.models import Patient
from mesoclinic.web.context import caller

# The only pages a handed-over browser reaches: the patient's intake forms and the way back.
FORMS = (
    "portal:intake",
    "portal:intake_details",
    "portal:intake_screening",
    "portal:intake_photos",
)
CONSENT = "portal:intake_consent"
WAY_BACK = ("web:kiosk_return", "web:kiosk_sign_out")

REFUSED = (
    "This tablet is in the patient's hands: it shows only their forms. "
    "To use anything else, hand it back to the staff member who enters their PIN."
)
CONSENT_NEEDS_CLINICAL = (
    "The consent is signed with a practitioner, who witnesses it. "
    "Hand the tablet back, and a practitioner will hand it to you for the consent."
)


def _patient(state: dict[str, Any]) -> Patient | None:
    found: Patient | None = (
        Patient.objects.filter(pk=state["patient_id"], clinic_id=state["clinic_id"])
        .select_related("clinic")
        .first()
    )
    return found


def _refusal(request: HttpRequest, state: dict[str, Any], reason: str) -> HttpResponse:
    if request.path.startswith("/api/"):
        return problem(403, reason)
    patient = _patient(state)
    return render(
        request,
        "web/kiosk_refused.html",
        {
            "reason": reason,
            "patient": patient,
            "clinic": patient.clinic if patient else None,
            "kiosk": state,
        },
        status=403,
    )


class KioskMiddleware:
    """In a browser session handed to a patient, refuse every page but theirs."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if KIOSK_KEY in request.session:
            state = kiosk_of(request)
            if state is None:
                # Whoever handed the tablet over is no longer the one signed in: it is over.
                request.session.pop(KIOSK_KEY, None)
            else:
                refused = self._refuse(request, state)
                if refused is not None:
                    return refused
        return self.get_response(request)

    def _refuse(self, request: HttpRequest, state: dict[str, Any]) -> HttpResponse | None:
        try:
            name = resolve(request.path_info).view_name
        except Resolver404:
            name = ""
        if name in FORMS or name in WAY_BACK:
            return None
        if name == CONSENT:
            return (
                None if state.get("clinical") else _refusal(request, state, CONSENT_NEEDS_CLINICAL)
            )
        return _refusal(request, state, REFUSED)


def context(request: HttpRequest) -> dict[str, Any]:
    """`kiosk` in every template: the handover this browser is in, if any."""
    state = kiosk_of(request)
    return {"kiosk": state} if state is not None else {}


@login_required
@require_POST
def start(request: HttpRequest, patient_id: int) -> HttpResponse:
    """Staff (any role) hand their tablet to the patient, for the intake forms (and, for a
    practitioner or manager, who witnesses it, the consent)."""
    who = caller(request)
    member = who.require(READ)
    patient = access_patient(who, patient_id, READ)
    if not pins.has_pin(request.user):
        messages.error(
            request,
            "Set a tablet PIN on your account page first: the PIN is what gives you the "
            "tablet back.",
        )
        return redirect("web:chart", patient.pk)
    if pins.is_locked(request.user):
        messages.error(
            request,
            "Your tablet PIN is locked after wrong tries. Sign out and sign in again with "
            "your password to unlock it.",
        )
        return redirect("web:chart", patient.pk)
    request.session[KIOSK_KEY] = {
        "staff_id": request.user.pk,
        "patient_id": patient.pk,
        "clinic_id": patient.clinic_id,
        "clinical": member.role in CLINICAL,
    }
    audit(
        clinic=patient.clinic,
        user=request.user,
        action=AuditEvent.Action.HANDOVER,
        obj=patient,
        patient_id=patient.pk,
        via="web",
    )
    return redirect("portal:intake")


class PinForm(forms.Form):
    pin = forms.CharField(
        label="Staff PIN",
        max_length=12,
        widget=forms.PasswordInput(attrs={"inputmode": "numeric", "autocomplete": "off"}),
    )


@login_required
@require_http_methods(["GET", "POST"])
def take_back(request: HttpRequest) -> HttpResponse:
    """The staff member types their PIN to take the tablet back."""
    state = kiosk_of(request)
    if state is None:
        return redirect("web:today")
    patient = _patient(state)
    form = PinForm(request.POST or None)
    if request.method == "POST" and form.is_valid() and patient is not None:
        found = pins.do_check_pin(
            request.user, form.cleaned_data["pin"], clinic=patient.clinic, patient_id=patient.pk
        )
        if found.outcome is pins.Outcome.RIGHT:
            request.session.pop(KIOSK_KEY, None)
            # A new session key: nothing seen while the tablet was handed over carries on.
            request.session.cycle_key()
            messages.success(request, "You have the tablet back.")
            return redirect("web:chart", patient.pk)
        if found.outcome is pins.Outcome.LOCKED:
            logout(request)
            return render(request, "web/kiosk_locked.html", {"clinic": patient.clinic}, status=403)
        form.add_error(
            "pin",
            f"That PIN is not right. {found.tries_left} "
            f"{'try is' if found.tries_left == 1 else 'tries are'} left before the tablet locks.",
        )
    locked = pins.is_locked(request.user)
    return render(
        request,
        "web/kiosk_return.html",
        {
            "form": form,
            "patient": patient,
            "clinic": patient.clinic if patient else None,
            "kiosk": state,
            "locked": locked,
            "page": "kiosk_return",
        },
        status=400 if form.errors else (403 if locked else 200),
    )


@login_required
@require_POST
def sign_out(request: HttpRequest) -> HttpResponse:
    """End the session of a tablet handed over (the way out without the PIN: the staff member
    then signs in with their password)."""
    state = kiosk_of(request)
    if state is None:
        return redirect("web:today")
    patient = _patient(state)
    audit(
        clinic=patient.clinic if patient else None,
        user=request.user,
        action=AuditEvent.Action.UPDATE,
        obj=patient,
        patient_id=patient.pk if patient else None,
        via="kiosk",
        kiosk="signed out without the PIN",
    )
    logout(request)
    return redirect("login")


class SetPinForm(forms.Form):
    password = forms.CharField(
        label="Your password",
        max_length=limits.PASSWORD,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )
    pin = forms.RegexField(
        label="New PIN",
        regex=r"^[0-9]{4,8}$",
        max_length=8,
        error_messages={"invalid": "Enter 4 to 8 digits."},
        widget=forms.PasswordInput(attrs={"inputmode": "numeric", "autocomplete": "off"}),
        help_text="4 to 8 digits. You type it to take a tablet back from a patient.",
    )
    pin_again = forms.CharField(
        label="The new PIN again",
        max_length=8,
        widget=forms.PasswordInput(attrs={"inputmode": "numeric", "autocomplete": "off"}),
    )

    def __init__(self, user: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_password(self) -> str:
        password: str = self.cleaned_data["password"]
        if not self.user.check_password(password):
            raise forms.ValidationError("That is not your password.")
        return password

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        if data.get("pin") and data.get("pin_again") != data["pin"]:
            self.add_error("pin_again", "The two PINs differ. Type the same PIN twice.")
        return data
