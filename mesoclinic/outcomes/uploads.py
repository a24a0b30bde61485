"""Photo uploads bounded while they stream in, before anything reads them whole.

Django's own handlers keep an upload in memory or in a temporary file and only then let a view
look at its size, so a 200 MB "photo" would be received and written out in full before the
15 MB check refused it. `PhotoUploadLimit` goes first among the request's upload handlers and
counts each file's bytes as they arrive, whatever the request's Content-Length says (or if it
says nothing): the chunk that takes a file past PHOTO_MAX_BYTES stops the parsing at once, and
nothing after it is read.

It must be in place before anything touches request.POST or request.FILES. For a web form the
CSRF check reads request.POST, so `bounded_photo_uploads` exempts the view from the middleware's
check and runs the same check itself once the handler is in place (Django's documented way).
For the API, `bounded_api_upload` wraps the django-ninja operation, which reads the files only
after its authentication; the API's middleware, which reads the text fields of every multipart
body before that, puts the same limit in place first.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, cast

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import HttpRequest, HttpResponseBase
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from mesoclinic.outcomes.photos import too_large


class UploadTooLarge(Exception):
    """A file that passed PHOTO_MAX_BYTES while it was arriving. The API answers it with 413
    (api/problems.py); the message follows the field's name."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class PhotoUploadLimit(FileUploadHandler):
    """Counts each file's bytes and stops the upload once one passes PHOTO_MAX_BYTES, or once
    all of them together pass `max_files` times that (the web form sends up to four views).

    With `raise_error`, it raises UploadTooLarge out of the parsing (for the API, whose
    framework turns the exception into a problem); without, it records the refusal in
    `refused` and stops the parsing quietly, so that a form still has the fields that came
    before the file (the CSRF token and the area come first in the photo form)."""

    def __init__(
        self, request: HttpRequest | None = None, *, raise_error: bool = False, max_files: int = 1
    ) -> None:
        super().__init__(request)
        self.limit: int = settings.PHOTO_MAX_BYTES
        self.total_limit = self.limit * max_files
        self.raise_error = raise_error
        self.refused: dict[str, str] = {}
        self.earlier = 0  # the bytes of the files before this one
        self.received = 0  # the bytes of this file so far

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self.earlier += self.received
        self.received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received = start + len(raw_data)
        if self.received > self.limit:
            self._refuse(too_large(None, self.limit))
        if self.earlier + self.received > self.total_limit:
            most = self.total_limit / (1024 * 1024)
            self._refuse(f"takes the photos sent together past their limit of {most:.1f} MB.")
        return raw_data

    def _refuse(self, message: str) -> None:
        field = self.field_name or "image"
        if self.raise_error:
            raise UploadTooLarge(field, message)
        self.refused[field] = message
        # connection_reset: do not read the rest of the body to throw it away either.
        raise StopUpload(connection_reset=True)

    def file_complete(self, file_size: int) -> None:
        # The next handler (memory or temporary file) makes the file; this one only counts.
        return None


def limit_uploads(
    request: HttpRequest, *, raise_error: bool = False, max_files: int = 1
) -> PhotoUploadLimit:
    """Put the limit first among the request's upload handlers, once. Django refuses (with
    AttributeError) if the upload has already been read without it: a loud mistake, on purpose."""
    for handler in request.upload_handlers:
        if isinstance(handler, PhotoUploadLimit):
            return handler
    limit = PhotoUploadLimit(request, raise_error=raise_error, max_files=max_files)
    handlers = request.upload_handlers
    # An ImmutableList once the upload is read, whose insert raises, as said above.
    cast(list[FileUploadHandler], handlers).insert(0, limit)
    return limit


def refused_uploads(request: HttpRequest) -> dict[str, str]:
    """The files of this request that the limit stopped, by field name, with the reason."""
    for handler in request.upload_handlers:
        if isinstance(handler, PhotoUploadLimit):
            return dict(handler.refused)
    return {}


View = Callable[..., HttpResponseBase]


def bounded_photo_uploads(view: View) -> View:
    """For a web view that takes photos: the limit goes first among the upload handlers,
    then the CSRF check runs (it reads request.POST, which parses the upload)."""
    protected = csrf_protect(view)

    @csrf_exempt
    @wraps(view)
    def bounded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        # One area's four views at most: front, back, left and right.
        limit_uploads(request, max_files=4)
        return protected(request, *args, **kwargs)

    return bounded


def bounded_api_upload(run: View) -> View:
    """For a django-ninja operation that takes a photo (ninja.decorators.decorate_view): the
    limit goes first among the upload handlers, raising UploadTooLarge past the limit."""

    @wraps(run)
    def bounded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        limit_uploads(request, raise_error=True)
        return run(request, *args, **kwargs)

    return bounded
