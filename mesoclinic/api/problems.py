"""Errors as RFC 9457 problem details (`application/problem+json`)."""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError

from mesoclinic.api.schemas import MAX_ID
from mesoclinic.courses.models import SessionRefused
from mesoclinic.outcomes.uploads import UploadTooLarge
from mesoclinic.patients.screening import AnswerError
from mesoclinic.protocols.loader import ProtocolError
from mesoclinic.scheduling.actions import BookingRefused

TITLES = {
    400: "Bad request",
    401: "Not signed in",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Refused",
    413: "Content too large",
    422: "Invalid input",
    429: "Too many requests",
}


def problem(status: int, detail: str, *, type_: str = "about:blank", **extra: Any) -> HttpResponse:
    body = {"type": type_, "title": TITLES.get(status, "Error"), "status": status, "detail": detail}
    body.update(extra)
    return HttpResponse(
        json.dumps(body, default=str), status=status, content_type="application/problem+json"
    )


def _errors_from_django(exc: DjangoValidationError) -> list[dict[str, str]]:
    if hasattr(exc, "error_dict"):
        return [
            {
                "field": "" if field == "__all__" else field,
                "message": " ".join(m for e in errs for m in e.messages),
            }
            for field, errs in exc.error_dict.items()
        ]
    return [{"field": "", "message": m} for m in exc.messages]


def _too_large(value: str) -> bool:
    try:
        return abs(int(value.strip())) > MAX_ID
    except ValueError:
        return False


def _parameters(request: HttpRequest) -> list[tuple[str, str]]:
    """The path's and the query's parameters, by name."""
    match = request.resolver_match
    path = [(k, str(v)) for k, v in (match.kwargs if match else {}).items()]
    query = [(k, v) for k, values in request.GET.lists() for v in values]
    return path + query


def _summary(errors: list[dict[str, str]]) -> str:
    return "; ".join(
        f"{e['field']}: {e['message']}" if e["field"] else e["message"] for e in errors
    )


def upload_too_large(exc: UploadTooLarge) -> HttpResponse:
    """413 for a file stopped while it streamed in (outcomes.uploads), naming its field."""
    errors = [{"field": exc.field, "message": exc.message}]
    return problem(413, _summary(errors), errors=errors)


def install(api: NinjaAPI) -> None:
    @api.exception_handler(NinjaValidationError)
    def invalid(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
        errors = []
        for e in exc.errors:
            loc = [
                str(p)
                for p in e.get("loc", [])
                if p not in ("body", "payload", "query", "path", "form", "file")
            ]
            message = str(e.get("msg", "is invalid")).removeprefix("Value error, ")
            if e.get("type") == "timezone_aware":
                # Say what to send, in the words the session check uses for the same mistake.
                message = "must include a time zone offset, e.g. Z or +01:00."
            errors.append({"field": ".".join(loc), "message": message})
        return problem(422, _summary(errors), errors=errors)

    @api.exception_handler(DjangoValidationError)
    def invalid_model(request: HttpRequest, exc: DjangoValidationError) -> HttpResponse:
        if isinstance(exc, SessionRefused):
            return refused(request, exc)
        if isinstance(exc, BookingRefused):
            return booking_refused(exc)
        errors = _errors_from_django(exc)
        return problem(422, _summary(errors), errors=errors)

    @api.exception_handler(SessionRefused)
    def refused(request: HttpRequest, exc: SessionRefused) -> HttpResponse:
        reasons = [r.as_dict() for r in exc.refusals]
        return problem(
            409,
            f"The {exc.subject} may not go ahead: " + " ".join(r.message for r in exc.refusals),
            type_="/api/v1/problems/session-refused",
            reasons=reasons,
        )

    def booking_refused(exc: BookingRefused) -> HttpResponse:
        """A booking the calendar cannot take: 409 when it conflicts with the calendar (a
        busy practitioner, a holiday, a broken cadence), 422 when the request itself is
        malformed."""
        status = 422 if set(exc.codes) == {"invalid"} else 409
        return problem(
            status,
            str(exc),
            type_="/api/v1/problems/booking-refused",
            reasons=[r.as_dict() for r in exc.refusals],
        )

    @api.exception_handler(ProtocolError)
    def bad_protocol(request: HttpRequest, exc: ProtocolError) -> HttpResponse:
        errors = [{"field": f"document.{f}", "message": m} for f, m in exc.problems]
        return problem(422, str(exc), errors=errors)

    @api.exception_handler(AnswerError)
    def bad_answers(request: HttpRequest, exc: AnswerError) -> HttpResponse:
        errors = [{"field": f"answers.{k}", "message": m} for k, m in exc.problems]
        return problem(422, _summary(errors), errors=errors)

    @api.exception_handler(UploadTooLarge)
    def too_large(request: HttpRequest, exc: UploadTooLarge) -> HttpResponse:
        return upload_too_large(exc)

    @api.exception_handler(AuthenticationError)
    def unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
        response = problem(401, "Send a valid token: Authorization: Bearer <token>.")
        response["WWW-Authenticate"] = "Bearer"
        return response

    @api.exception_handler(HttpError)
    def http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
        return problem(exc.status_code, str(exc))

    @api.exception_handler(PermissionDenied)
    def forbidden(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
        return problem(403, str(exc) or "Your role may not do this.")

    @api.exception_handler(Http404)
    def not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
        return problem(404, str(exc) or "Not found.")

    @api.exception_handler(OverflowError)
    def overflow(request: HttpRequest, exc: OverflowError) -> HttpResponse:
        """A number too large for the database (SQLite stores at most 2^63 - 1) that reached
        a query. The schemas bound every id they know of; this names whichever parameter
        still carried one, so the answer is a 422 and never a 500."""
        errors = [
            {"field": name, "message": f"is out of range; the largest id is {MAX_ID}."}
            for name, value in _parameters(request)
            if _too_large(value)
        ] or [{"field": "", "message": f"A number is larger than {MAX_ID}."}]
        return problem(422, _summary(errors), errors=errors)

    @api.exception_handler(ObjectDoesNotExist)
    def missing(request: HttpRequest, exc: ObjectDoesNotExist) -> HttpResponse:
        return problem(404, "Not found.")
