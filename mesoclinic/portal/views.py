"""The portal's ways in: the staff's invitation from the chart, a patient's registration,
the single-use links those send, signing in and out, and setting a password.

A page for patients answers only a patient's own login (`patient_caller`): anyone else
signed in, staff included, is refused (403); a staff account is never treated as a patient."""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_http_methods, require_POST

from mesoclinic.access import OWN, PATIENT, Caller, access_patient, caller_from_request
from mesoclinic.accounts import throttle
from mesoclinic.accounts.forms import LOCKED_ATTR
from mesoclinic.accounts.models import AuditEvent, Clinic, audit
from mesoclinic.portal import actions
from mesoclinic.portal.forms import (
    PatientLoginForm,
    PatientPasswordForm,
    RegisterForm,
    SignInLinkForm,
)
from mesoclinic.web.context import ALL_STAFF


def patient_caller(request: HttpRequest) -> Caller:
    """The caller of a patient's page: a patient's own login, else 403. The clinic's time zone
    is made the request's, so times show as the clinic tells them."""
    found = caller_from_request(request)
    if found.role != PATIENT or found.patient is None:
        raise PermissionDenied("This page is for patients signed in to the clinic's portal.")
    timezone.activate(found.patient.clinic.tz)
    return found


def patient_page(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Sign in first (on the portal's own sign-in page), then only a patient may pass."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.is_authenticated:
            query = urlencode({"next": request.get_full_path()})
            return HttpResponseRedirect(f"{reverse('portal:login')}?{query}")
        patient_caller(request)
        return view(request, *args, **kwargs)

    return wrapped


# Staff: the invitation, from the chart.


@login_required
@require_POST
def invite(request: HttpRequest, patient_id: int) -> HttpResponse:
    """Staff (any role) send a patient a sign-in link for the portal."""
    patient = access_patient(caller_from_request(request), patient_id, ALL_STAFF)
    try:
        actions.do_invite_patient(patient, user=request.user)  # type: ignore[arg-type]
    except actions.InviteError as exc:
        messages.error(request, str(exc))
    except (OSError, smtplib.SMTPException):
        messages.error(
            request,
            "The invitation was made but the email could not be sent. Try again in a moment.",
        )
    else:
        messages.success(
            request, f"A sign-in link for the patient portal was sent to {patient.email}."
        )
    return redirect("web:chart", patient.pk)


# Patients: signing in, registering, the links.


class LoginView(auth_views.LoginView):
    template_name = "portal/login.html"
    authentication_form = PatientLoginForm
    redirect_authenticated_user = False

    def get_default_redirect_url(self) -> str:
        return str(reverse("portal:home"))


def _with_retry_after(view: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        response = view(request, *args, **kwargs)
        until = getattr(request, LOCKED_ATTR, None)
        if until is not None:
            response["Retry-After"] = str(throttle.retry_after_seconds(until))
        return response

    return wrapped


login = _with_retry_after(LoginView.as_view())


@_with_retry_after
@require_http_methods(["GET", "POST"])
def register(request: HttpRequest, clinic_id: int | None = None) -> HttpResponse:
    if clinic_id is not None:
        clinic = get_object_or_404(Clinic, pk=clinic_id)
    else:
        clinics = list(Clinic.objects.order_by("name")[:200])
        if len(clinics) != 1:
            # Several clinics on one server: the patient chooses theirs (each clinic's own site
            # links straight to its registration page).
            return render(request, "portal/register_choose.html", {"clinics": clinics})
        clinic = clinics[0]
    form = RegisterForm(request.POST or None, request=request)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            actions.do_request_registration(
                clinic,
                first_name=data["first_name"],
                last_name=data["last_name"],
                date_of_birth=data["date_of_birth"],
                email=data["email"],
            )
        except (OSError, smtplib.SMTPException):
            form.add_error(None, "We could not send the email just now. Try again in a moment.")
        else:
            return render(
                request,
                "portal/register_sent.html",
                {"clinic": clinic, "email": data["email"], "page": "register"},
            )
    status = 429 if getattr(request, LOCKED_ATTR, None) else (400 if form.errors else 200)
    return render(
        request,
        "portal/register.html",
        {"clinic": clinic, "form": form, "page": "register"},
        status=status,
    )


@_with_retry_after
@require_http_methods(["GET", "POST"])
def sign_in_link(request: HttpRequest) -> HttpResponse:
    """A patient without a password (or who forgot it) asks for a sign-in link by email."""
    form = SignInLinkForm(request.POST or None, request=request)
    if request.method == "POST" and form.is_valid():
        try:
            actions.do_send_sign_in_link(form.cleaned_data["email"])
        except (OSError, smtplib.SMTPException):
            form.add_error(None, "We could not send the email just now. Try again in a moment.")
        else:
            return render(
                request, "portal/sign_in_link_sent.html", {"email": form.cleaned_data["email"]}
            )
    status = 429 if getattr(request, LOCKED_ATTR, None) else (400 if form.errors else 200)
    return render(request, "portal/sign_in_link.html", {"form": form}, status=status)


@require_http_methods(["GET", "POST"])
def use_link(request: HttpRequest, token: str) -> HttpResponse:
    """A link from an email. Opening it shows a button; the link is used only when the button
    is pressed, so a mail program that opens links to check them does not use it up."""
    if request.method == "GET":
        link = actions.find_link(token)
        if link is None:
            return render(request, "portal/link_closed.html", status=410)
        return render(request, "portal/link.html", {"link": link, "clinic": link.clinic})
    used = actions.do_use_link(token)
    if used is None:
        return render(request, "portal/link_closed.html", status=410)
    auth_login(request, used.user, backend="django.contrib.auth.backends.ModelBackend")
    return redirect("portal:password")


@patient_page
@require_http_methods(["GET", "POST"])
def password(request: HttpRequest) -> HttpResponse:
    """Set (or change) the password. Optional: a patient can always ask the clinic for a new
    link, or reset the password by email."""
    found = patient_caller(request)
    patient = access_patient(
        found,
        found.patient.pk,  # type: ignore[union-attr]
        OWN,
        view=request.method == "GET",
    )
    form = PatientPasswordForm(request.user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        form.save()
        update_session_auth_hash(request, form.user)
        audit(
            clinic=patient.clinic,
            user=request.user,
            action=AuditEvent.Action.UPDATE,
            obj=request.user,  # type: ignore[arg-type]
            patient_id=patient.pk,
            via="web",
            portal="password set",
        )
        messages.success(request, "Your password is set. Sign in with your email and it.")
        return redirect("portal:home")
    return render(
        request,
        "portal/password.html",
        {"form": form, "patient": patient, "clinic": patient.clinic, "page": "password"},
        status=400 if form.errors else 200,
    )
