"""The sign-in and password-reset pages, throttled (accounts/throttle.py).

Django's own views do the work; these wrappers hand them the throttled forms and add
`Retry-After` when a lock refused the attempt."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponseBase

from mesoclinic.accounts import throttle
from mesoclinic.accounts.forms import (
    LOCKED_ATTR,
    ThrottledAdminAuthenticationForm,
    ThrottledAuthenticationForm,
    ThrottledPasswordResetForm,
)


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


login = _with_retry_after(
    auth_views.LoginView.as_view(authentication_form=ThrottledAuthenticationForm)
)
password_reset = _with_retry_after(PasswordResetView.as_view())

# The admin's login page runs the same throttle through the admin's own form.
admin.site.login_form = ThrottledAdminAuthenticationForm
admin_login = _with_retry_after(admin.site.login)
