"""The sign-in and password-reset pages, throttled (accounts/throttle.py).

Django's own views do the work; these wrappers hand them the throttled forms and add
`Retry-After` when a lock refused the attempt."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponseBase
from django.urls import reverse

from mesoclinic.accounts import throttle
from mesoclinic.accounts.forms import (
    LOCKED_ATTR,
    ThrottledAdminAuthenticationForm,
    ThrottledAuthenticationForm,
    ThrottledPasswordResetForm,
)
from mesoclinic.accounts.models import Membership


def _with_retry_after(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        response = view(request, *args, **kwargs)
        until = getattr(request, LOCKED_ATTR, None)
        if until is not None:
            response["Retry-After"] = str(throttle.retry_after_seconds(until))
        return response

    wrapped.__name__ = getattr(view, "__name__", "view")
    wrapped.__doc__ = view.__doc__
    return wrapped


class PasswordResetView(auth_views.PasswordResetView):
    form_class = ThrottledPasswordResetForm

    def get_form_kwargs(self) -> dict[str, Any]:
        return {**super().get_form_kwargs(), "request": self.request}


class LoginView(auth_views.LoginView):
    """Django's sign-in, which leads a new clinic's manager (or a superuser with no clinic yet)
    to the setup guide instead of Today, until the clinic is set up."""

    authentication_form = ThrottledAuthenticationForm

    def get_success_url(self) -> str:
        user = self.request.user
        if not self.get_redirect_url() and is_patient_login(user):
            # A patient who signs in on the staff's page goes to their portal.
            return "/my/"
        if not self.get_redirect_url() and needs_setup(user):
            return str(reverse("web:manage_setup"))
        return str(super().get_success_url())


def is_patient_login(user: Any) -> bool:
    """A patient's own login (a User with a patient record and no clinic membership). Read
    through the reverse relation so that accounts need not import patients."""
    return (
        not Membership.objects.filter(user=user).exists()
        and type(user).objects.filter(pk=user.pk, patient__isnull=False).exists()
    )


def needs_setup(user: Any) -> bool:
    """A superuser who belongs to no clinic, or the manager of one clinic still being set up
    (staff of several clinics choose theirs first, on Today)."""
    found = list(Membership.objects.filter(user=user).select_related("clinic")[:2])
    if not found:
        return bool(user.is_superuser)
    return (
        len(found) == 1
        and found[0].role == Membership.Role.MANAGER
        and found[0].clinic.setup_pending
    )


login = _with_retry_after(LoginView.as_view())
password_reset = _with_retry_after(PasswordResetView.as_view())

# The admin's login page runs the same throttle through the admin's own form.
admin.site.login_form = ThrottledAdminAuthenticationForm
admin_login = _with_retry_after(admin.site.login)
