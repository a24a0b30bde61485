"""The web session's idle timeout.

A signed-in session lasts SESSION_COOKIE_AGE (SESSION_IDLE_TIMEOUT_MINUTES) from its last
save. Saving it on every request (SESSION_SAVE_EVERY_REQUEST) would make every page view a
database write, and on SQLite every write takes the one write lock, so reads would queue behind
each other. Instead this middleware touches a signed-in session at most once a minute, which
saves it and moves its expiry on: a user is signed out after between the timeout less a minute
and the timeout without a request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth import SESSION_KEY
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponseBase
from django.utils import timezone

SEEN_KEY = "_idle_seen"
REFRESH_SECONDS = 60


class SessionIdleMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        session = getattr(request, "session", None)
        # After the view, so the request that signs in is stamped too; a signed-out session
        # (or none) is left alone.
        if session is not None and session.get(SESSION_KEY) is not None:
            now = int(timezone.now().timestamp())
            seen = session.get(SEEN_KEY)
            if not isinstance(seen, int) or now - seen >= REFRESH_SECONDS:
                session[SEEN_KEY] = now
        return response


@receiver(user_logged_in, dispatch_uid="accounts.stamp_session_on_login")
def _stamp_on_login(sender: Any, request: HttpRequest | None, **kwargs: Any) -> None:
    """Signing in saves the session anyway; stamping it then spares the next page a write."""
    session = getattr(request, "session", None)
    if session is not None:
        session[SEEN_KEY] = int(timezone.now().timestamp())
