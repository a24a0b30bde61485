"""Idempotency keys for the API's creating requests (docs/api.md, "Retrying safely").

A client that sends `POST /api/v1/...` with an `Idempotency-Key: <any unique string>` header
and retries it, because the connection dropped or the answer timed out, gets the first answer
again (status, body and headers such as Location) and the operation runs once: one patient,
one booking, one adverse event.

How it works, for each POST under /api/v1/ (except /auth/, which creates nothing to repeat)
that carries the header and a valid bearer token:

1. The request's fingerprint is a SHA-256 of its method, path, query string and body (for a
   photo upload: its fields and each file's bytes).
2. If the caller already has a live record for the key, its answer is replayed, or, when the
   fingerprint differs, the request is refused with 422 naming the header.
3. Otherwise one transaction claims the key by inserting the record (unique per user and key),
   runs the request and stores the answer in that record. The record therefore exists exactly
   when the operation committed. A parallel request with the same key blocks on the unique
   index (PostgreSQL) or on the write lock (SQLite) until the first commits, then replays its
   answer; if it waits longer than IDEMPOTENCY_WAIT_SECONDS it gets 409 "still being
   processed" with Retry-After.
4. A 5xx rolls the whole transaction back, claim included, so a retry runs the operation
   again. Answers that say nothing about the operation (401, 408, 429) are not kept either.

Keys expire after IDEMPOTENCY_KEY_TTL_HOURS (24 by default); each claim purges the caller's
expired records, and purge_expired() clears everyone's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import IntegrityError, OperationalError, connection, transaction
from django.http import HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.utils import timezone

from mesoclinic.api.models import ApiToken, IdempotencyRecord, hash_token
from mesoclinic.api.problems import problem

HEADER = "Idempotency-Key"
API_PREFIX = "/api/v1/"
# Getting a token creates nothing a retry could duplicate, and its answer (a secret) must not
# be stored.
EXEMPT_PREFIXES = ("/api/v1/auth/",)
MAX_KEY_LENGTH = 255
# Answers that do not come from running the operation, so a retry should run it.
NOT_KEPT = frozenset({401, 408, 429})
# Headers that belong to one delivery of an answer, not to the answer itself.
NOT_REPLAYED = frozenset({"set-cookie", "date", "content-length"})


def ttl() -> timedelta:
    return timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)


def purge_expired() -> int:
    """Deletes every expired record; returns how many."""
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=timezone.now() - ttl()).delete()
    return deleted


def key_problem(key: str) -> str | None:
    """Why a key cannot be used, or None."""
    if not key or len(key) > MAX_KEY_LENGTH:
        return f"must be 1 to {MAX_KEY_LENGTH} characters long."
    if not all(" " <= c <= "~" for c in key):
        return "may contain only printable ASCII characters."
    return None


class IdempotencyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        key = request.headers.get(HEADER)
        if (
            key is None
            or request.method != "POST"
            or not request.path.startswith(API_PREFIX)
            or request.path.startswith(EXEMPT_PREFIXES)
        ):
            return self.get_response(request)
        why = key_problem(key)
        if why is not None:
            return problem(
                422,
                f"The {HEADER} header {why}",
                errors=[{"field": HEADER, "message": why}],
            )
        user_id = _user_id(request)
        fingerprint = _fingerprint(request)
        if user_id is None or fingerprint is None:
            # No valid token: the API answers 401 and nothing runs. A body too large or
            # malformed to read: the API refuses it and nothing runs either.
            return self.get_response(request)
        cutoff = timezone.now() - ttl()
        found = IdempotencyRecord.objects.filter(
            user_id=user_id, key=key, created_at__gte=cutoff
        ).first()
        if found is not None:
            return _answer_again(found, fingerprint)
        claim = _Claim()
        try:
            with _sqlite_wait(settings.IDEMPOTENCY_WAIT_SECONDS), transaction.atomic():
                return self._run_once(request, user_id, key, fingerprint, cutoff, claim)
        except OperationalError:
            if claim.made:
                raise
            # SQLite's write lock or PostgreSQL's lock on the key was not released in time:
            # the first request is still running.
            return _in_progress()

    def _run_once(
        self,
        request: HttpRequest,
        user_id: int,
        key: str,
        fingerprint: str,
        cutoff: datetime,
        claim: _Claim,
    ) -> HttpResponse:
        IdempotencyRecord.objects.filter(user_id=user_id, created_at__lt=cutoff).delete()
        try:
            with transaction.atomic(), _lock_timeout(settings.IDEMPOTENCY_WAIT_SECONDS):
                record = IdempotencyRecord.objects.create(
                    user_id=user_id,
                    key=key,
                    fingerprint=fingerprint,
                    method=request.method or "POST",
                    path=request.get_full_path()[:2000],
                )
        except IntegrityError:
            # A parallel request with this key committed while this one waited on the key.
            return _answer_again(
                IdempotencyRecord.objects.get(user_id=user_id, key=key), fingerprint
            )
        claim.made = True
        response = self.get_response(request)
        if response.status_code >= 500:
            # Undo whatever the failed request did, and the claim, so a retry runs it afresh.
            transaction.set_rollback(True)
            return response
        if response.streaming or response.status_code in NOT_KEPT:
            record.delete()
            return response
        record.status = response.status_code
        record.headers = {
            name: value for name, value in response.items() if name.lower() not in NOT_REPLAYED
        }
        record.body = bytes(response.content)
        record.save(update_fields=["status", "headers", "body"])
        return response


class _Claim:
    """Whether this request holds its key, so that a database error after that point is not
    mistaken for waiting on another request."""

    made = False


def _answer_again(record: IdempotencyRecord, fingerprint: str) -> HttpResponse:
    if record.fingerprint != fingerprint:
        message = "was already used for a different request; send a new key with a new request."
        return problem(
            422,
            f"This {HEADER} {message}",
            errors=[{"field": HEADER, "message": message}],
        )
    response = HttpResponse(bytes(record.body), status=record.status)
    for name, value in record.headers.items():
        response[name] = value
    response["Idempotent-Replayed"] = "true"
    return response


def _in_progress() -> HttpResponse:
    message = "A request with this key is still being processed; retry it in a moment."
    response = problem(409, message, errors=[{"field": HEADER, "message": message}])
    response["Retry-After"] = "1"
    return response


def _user_id(request: HttpRequest) -> int | None:
    """The user of the request's bearer token, if it is valid. The API checks the token again
    (and answers 401 if it must); this only says whose keys the request uses."""
    scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        return None
    return (
        ApiToken.objects.filter(
            key_hash=hash_token(raw.strip()),
            expires_at__gt=timezone.now(),
            user__is_active=True,
        )
        .values_list("user_id", flat=True)
        .first()
    )


def _fingerprint(request: HttpRequest) -> str | None:
    digest = hashlib.sha256()
    for part in (request.method or "", request.path, request.META.get("QUERY_STRING", "")):
        digest.update(part.encode("utf-8") + b"\0")
    try:
        if request.content_type == "multipart/form-data":
            # A photo upload can exceed the in-memory body limit, so its fields and files are
            # hashed from what Django parsed, and each file is rewound for the endpoint.
            for name, values in sorted(request.POST.lists()):
                for value in values:
                    digest.update(f"{name}={value}".encode() + b"\0")
            for name, files in sorted(request.FILES.lists()):
                for upload in files:
                    digest.update(f"{name}:{upload.name}:{upload.size}".encode() + b"\0")
                    for chunk in upload.chunks():
                        digest.update(chunk)
                    upload.seek(0)
        else:
            digest.update(request.body)
    except (RequestDataTooBig, MultiPartParserError):
        return None
    return digest.hexdigest()


@contextmanager
def _sqlite_wait(seconds: float) -> Iterator[None]:
    """Bounds SQLite's wait for the write lock at BEGIN IMMEDIATE, which a parallel request
    with the same key holds until it commits. The connection's own busy timeout is put back
    afterwards."""
    if connection.vendor != "sqlite" or connection.in_atomic_block:
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout")
        previous = int(cursor.fetchone()[0])
        cursor.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA busy_timeout = {previous}")


@contextmanager
def _lock_timeout(seconds: float) -> Iterator[None]:
    """Bounds PostgreSQL's wait for a parallel request holding the same key. SET LOCAL lasts
    to the end of the enclosing savepoint or transaction, so the wait is reset after the
    insert. SQLite waits at BEGIN instead, on its busy timeout."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [f"{int(seconds * 1000)}ms"])
    yield
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL lock_timeout TO DEFAULT")
