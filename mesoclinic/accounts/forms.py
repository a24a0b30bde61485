"""The sign-in and password-reset forms, with the limits on guessing (accounts/throttle.py).

The same forms serve the staff login and the admin's, so both refuse a locked account or
address in the same words, and record failures the same way."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm, UsernameField
from django.http import HttpRequest

from mesoclinic.accounts import throttle
from mesoclinic.lib import limits

# The username column's length (accounts.User, from Django's AbstractUser).
USERNAME_MAX_LENGTH = 150

# Where a view finds the end of a lock the form met, to send it as Retry-After.
LOCKED_ATTR = "login_locked_until"


def _mark_locked(request: HttpRequest | None, until: dt.datetime) -> None:
    if request is not None:
        setattr(request, LOCKED_ATTR, until)


class ThrottledLoginMixin:
    """Refuse a locked account or address before the password is checked; count a wrong
    password; forget the account's failures after a right one."""

    request: HttpRequest | None
    cleaned_data: dict[str, Any]

    def clean(self) -> dict[str, Any]:
        username = str(self.cleaned_data.get("username") or "")
        request = self.request
        if request is None or not username:
            return super().clean()  # type: ignore[misc]
        keys = throttle.keys_for(request, username)
        until = throttle.locked_until(keys)
        if until is not None:
            _mark_locked(request, until)
            raise forms.ValidationError(
                throttle.try_again_message(until, username), code="throttled"
            )
        try:
            cleaned: dict[str, Any] = super().clean()  # type: ignore[misc]
        except forms.ValidationError as exc:
            if getattr(exc, "code", None) == "invalid_login":
                until = throttle.record_failure(
                    keys,
                    username=username,
                    ip=throttle.client_ip(request),
                    path=request.path,
                )
                if until is not None:
                    _mark_locked(request, until)
                    raise forms.ValidationError(
                        throttle.try_again_message(until, username), code="throttled"
                    ) from exc
            raise
        throttle.record_success(username)
        return cleaned


class ThrottledAuthenticationForm(ThrottledLoginMixin, AuthenticationForm):
    # Bounded like every other text a person sends (lib/limits.py): Django sets the username's
    # limit only when the form is made, and leaves the password without one, so a megabyte
    # "password" would be hashed in full.
    username = UsernameField(
        max_length=USERNAME_MAX_LENGTH, widget=forms.TextInput(attrs={"autofocus": True})
    )
    password = forms.CharField(
        label="Password",
        strip=False,
        max_length=limits.PASSWORD,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )


class ThrottledAdminAuthenticationForm(ThrottledAuthenticationForm, AdminAuthenticationForm):
    pass


class ThrottledPasswordResetForm(PasswordResetForm):
    """Every reset request counts against the address and the email: each sends a message,
    so an unlimited form would let anyone flood a patient's or a colleague's inbox and probe
    for accounts."""

    def __init__(self, *args: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request = request

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        email = str(cleaned.get("email") or "")
        request = self.request
        if request is None or not email:
            return cleaned
        keys = [throttle.Key.reset(email), throttle.Key.address(throttle.client_ip(request))]
        until = throttle.locked_until(keys)
        if until is not None:
            _mark_locked(request, until)
            raise forms.ValidationError(throttle.try_again_message(until), code="throttled")
        # This request is served; the one after the limit is refused.
        throttle.record_failure(
            keys, username=email, ip=throttle.client_ip(request), path=request.path
        )
        return cleaned
