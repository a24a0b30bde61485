"""Keeps every answer under /api/ in problem+json, including those Django gives before the
API sees the request (an unknown path, a wrong method), refuses NUL characters, which
PostgreSQL cannot store in text, and refuses a JSON body that is not an object."""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import unquote_to_bytes

from django.http import HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError

from mesoclinic.api.problems import problem, upload_too_large
from mesoclinic.outcomes.uploads import UploadTooLarge, limit_uploads

API_PREFIX = "/api/"


class ApiProblemMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(API_PREFIX):
            return self.get_response(request)
        query = unquote_to_bytes(request.META.get("QUERY_STRING", ""))
        try:
            has_nul = b"\x00" in query or self._body_has_nul(request)
        except UploadTooLarge as exc:
            return upload_too_large(exc)
        if has_nul:
            return problem(
                422,
                "Text may not contain NUL characters.",
                errors=[{"field": "", "message": "contains a NUL character"}],
            )
        if refusal := self._not_an_object(request):
            return refusal
        response = self.get_response(request)
        content_type = response.get("Content-Type", "")
        if "json" in content_type:
            return response
        if response.status_code == 404:
            return problem(404, f"No API endpoint at {request.path}.")
        if response.status_code == 405:
            allowed = response.get("Allow", "")
            answer = problem(405, f"{request.method} is not allowed here; use {allowed}.")
            if allowed:
                answer["Allow"] = allowed
            return answer
        return response

    @staticmethod
    def _not_an_object(request: HttpRequest) -> HttpResponse | None:
        """Every JSON body the API takes is an object. django-ninja reads any other value (a
        list, a number, null) as an object with no fields, so an endpoint whose fields all have
        defaults would act on `[]` as if it had been sent `{}`; an endpoint that takes no body
        would ignore whatever came. A body that is not JSON at all is refused here too, for the
        same reason."""
        if request.content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
            return None
        if not request.body.strip():
            return None
        try:
            value = json.loads(request.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            message = f"is not valid JSON ({exc})."
            return problem(
                400,
                f"The request body {message}",
                errors=[{"field": "body", "message": message}],
            )
        except RecursionError:
            message = "is nested too deeply."
            return problem(
                400,
                f"The request body {message}",
                errors=[{"field": "body", "message": message}],
            )
        if isinstance(value, dict):
            return None
        message = "must be a JSON object, e.g. {}."
        return problem(
            422, f"The request body {message}", errors=[{"field": "body", "message": message}]
        )

    @staticmethod
    def _body_has_nul(request: HttpRequest) -> bool:
        """A multipart body (a photo upload) is binary, so only its text fields are checked;
        reading it whole as request.body would also refuse any file over
        DATA_UPLOAD_MAX_MEMORY_SIZE."""
        if request.content_type == "multipart/form-data":
            # Reading the text fields reads the files too: bound them first (the API's one
            # multipart endpoint takes one photo).
            limit_uploads(request, raise_error=True)
            try:
                return any("\x00" in v for _, values in request.POST.lists() for v in values)
            except MultiPartParserError:
                # Django leaves POST and FILES empty, so the endpoint names what is missing.
                return False
        return b"\x00" in request.body or b"\\u0000" in request.body
