"""Shows every time in the clinic's own time zone: the zone of the clinic the signed-in user
acts in is activated for the request, so templates and forms use it."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from mesoclinic.web.context import membership


class ClinicTimezoneMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        found = membership(request) if not request.path.startswith("/api/") else None
        if found is not None:
            timezone.activate(found.clinic.tz)
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
