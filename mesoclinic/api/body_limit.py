"""Refuses a request body larger than its path allows, from its Content-Length, before anything
reads it.

Django would otherwise read the body first and then answer a too-large one with a 400 HTML page
(RequestDataTooBig), and a photo upload of any size would be spooled to disk in full before the
photo code could look at it. Two limits apply:

- a photo upload (the API's and the web page's) may carry `PHOTO_MAX_BYTES` per image, plus
  room for the multipart envelope and its few text fields;
- every other body may carry `API_MAX_BODY_BYTES`.

A body sent in chunks has no Content-Length. waitress (`mesoclinic serve`) reads such a body
whole, up to its `max_request_body_size`, which `mesoclinic serve` sets from these limits, and
then passes its length on; another WSGI server that passes no length gives Django nothing to
read, since Django reads only as many bytes as Content-Length says. Either way the body is
bounded.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from mesoclinic.api.problems import problem

# Room for the multipart boundaries, part headers and the short text fields (area, view,
# taken_at, session and the CSRF token) that come with the images of one upload.
MULTIPART_ENVELOPE_BYTES = 64 * 1024

# The photo upload paths, with how many images one request may carry: the API takes one image
# per request, the web page up to one per standard view (front, back, left, right).
PHOTO_UPLOADS: list[tuple[re.Pattern[str], int]] = [
    (re.compile(r"^/api/v1/courses/\d+/photos/?$"), 1),
    (re.compile(r"^/courses/\d+/photos/$"), 4),
]

# The CSV import's upload (web/imports.py) carries one file of up to IMPORT_MAX_BYTES.
IMPORT_UPLOAD = re.compile(r"^/manage/import/$")


def limit_for(path: str, method: str) -> int:
    """The largest body, in bytes, a request to this path may carry."""
    if method == "POST":
        if IMPORT_UPLOAD.match(path):
            return int(settings.IMPORT_MAX_BYTES) + MULTIPART_ENVELOPE_BYTES
        for pattern, images in PHOTO_UPLOADS:
            if pattern.match(path):
                return images * int(settings.PHOTO_MAX_BYTES) + MULTIPART_ENVELOPE_BYTES
    return int(settings.API_MAX_BODY_BYTES)


def largest_body() -> int:
    """The largest body any path accepts: what the WSGI server itself refuses above."""
    images = max(n for _, n in PHOTO_UPLOADS)
    photos = images * int(settings.PHOTO_MAX_BYTES) + MULTIPART_ENVELOPE_BYTES
    imports = int(settings.IMPORT_MAX_BYTES) + MULTIPART_ENVELOPE_BYTES
    return max(int(settings.API_MAX_BODY_BYTES), photos, imports)


def _size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    if size >= 1024:
        return f"{size // 1024} KB"
    return f"{size} bytes"


class BodySizeLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        raw = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(raw)
        except ValueError:
            # Django treats an unreadable length as no body at all, so nothing is read.
            length = 0
        limit = limit_for(request.path, request.method or "GET")
        if length <= limit:
            return self.get_response(request)
        detail = f"The request body is {_size(length)}; at most {_size(limit)} may be sent here."
        if request.path.startswith("/api/"):
            field = "image" if limit > int(settings.API_MAX_BODY_BYTES) else "body"
            response = problem(
                413, detail, errors=[{"field": field, "message": detail}], limit=limit
            )
        else:
            response = HttpResponse(detail, status=413, content_type="text/plain; charset=utf-8")
        return response
