"""The middleware that makes the product fit to serve on the internet: an access log, health
endpoints that answer before anything else, and the security and caching headers."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject, empty

from mesoclinic.ops import health

access_log = logging.getLogger("mesoclinic.access")

# No inline script and no inline style: every script and stylesheet is a file under /static/.
# An injected <script> or onclick= therefore does not run. Images may be data: and blob: URLs,
# which the signature pad and the photo comparison draw. No page may be framed by another site,
# and forms post only to this site, whose answer may send the browser on to the card provider's
# payment page (content_security_policy).
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

Middleware = Callable[[HttpRequest], HttpResponse]


def content_security_policy() -> str:
    """The policy, with the card provider's payment page among the places a form may lead: a
    browser holds a form's redirect to the form-action list too."""
    origin = settings.STRIPE_CHECKOUT_ORIGIN
    if not origin:
        return CONTENT_SECURITY_POLICY
    return CONTENT_SECURITY_POLICY.replace("form-action 'self'", f"form-action 'self' {origin}")


def _user_id(request: HttpRequest) -> int | None:
    """The signed-in user, from the session or from an API token, without a query of its own
    when the request never looked (a static file, a health check)."""
    auth = getattr(request, "auth", None)
    user: Any = getattr(auth, "user", None)
    if user is not None:
        return int(user.pk)
    user = getattr(request, "user", None)
    if isinstance(user, SimpleLazyObject):
        # The real user sits in _wrapped once something has read it; until then, reading it
        # here would cost a session and a user query that the request itself never needed.
        wrapped = getattr(user, "_wrapped", empty)
        user = None if wrapped is empty else wrapped
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return int(user.pk)


# The URL parameters that are secrets: the signed links in reminder and infection-watch emails,
# calendar feed addresses and password-reset links each work for whoever holds them.
SECRET_PARAMETERS = ("token", "uidb64")


def loggable_path(request: HttpRequest) -> str:
    """The path without its query string, which can hold a search for a patient's name, and
    with any secret in the path itself replaced."""
    path = request.path
    match = getattr(request, "resolver_match", None)
    if match is not None:
        for name in SECRET_PARAMETERS:
            value = match.kwargs.get(name)
            if value:
                path = path.replace(str(value), "[redacted]")
    return path


class AccessLogMiddleware:
    """One line per request: method, path, status, duration and user id (see loggable_path)."""

    def __init__(self, get_response: Middleware):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        user_id = _user_id(request)
        path = loggable_path(request)
        access_log.info(
            "%s %s %s %.1fms user=%s",
            request.method,
            path,
            response.status_code,
            duration_ms,
            user_id if user_id is not None else "-",
            extra={
                "method": request.method,
                "path": path,
                "status": response.status_code,
                "duration_ms": duration_ms,
                "user_id": user_id,
            },
        )
        return response


class HealthMiddleware:
    """Answers /healthz and /readyz before the host check, the HTTPS redirect and the session,
    so a load balancer or a monitor on the machine can ask by IP address over plain HTTP."""

    def __init__(self, get_response: Middleware):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method in {"GET", "HEAD"}:
            if request.path == "/healthz":
                return health.healthz(request)
            if request.path == "/readyz":
                return health.readyz(request)
        return self.get_response(request)


class SecurityHeadersMiddleware:
    """The Content-Security-Policy on every answer, and `Cache-Control: no-store` on every
    answer Django makes: pages, API answers, PDFs, CSV exports and calendar feeds may each carry
    patient data, and a shared or back-button cache must not keep them. Static files are served
    by whitenoise before this middleware, so they keep their long cache lifetimes.

    (Referrer-Policy and X-Content-Type-Options come from Django's SecurityMiddleware, set in
    settings.py.)"""

    def __init__(self, get_response: Middleware):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", content_security_policy())
        if "no-store" not in response.get("Cache-Control", ""):
            response["Cache-Control"] = "no-store"
        return response
