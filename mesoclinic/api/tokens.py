"""Signing in and out of the API, and the caller's own tokens.

POST /auth/token exchanges a username and password for a token, under the same limits on
guessing as the web login (accounts/throttle.py): a locked account or address gets 429 with
`Retry-After`, even with the right password. POST /auth/logout revokes the token it is sent
with; GET /auth/tokens lists the caller's live tokens (never their secret) and
DELETE /auth/tokens/{id} revokes one of them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib.auth import authenticate
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from ninja import Router, Schema, Status
from ninja.errors import AuthenticationError

from mesoclinic.accounts import throttle
from mesoclinic.accounts.models import Membership
from mesoclinic.api import problems
from mesoclinic.api import schemas as s
from mesoclinic.api.auth import caller
from mesoclinic.api.models import ApiToken, do_revoke_tokens

router = Router(tags=["auth"])


class Problem(Schema):
    type: str
    title: str
    status: int
    detail: str


class TokenInfo(Schema):
    id: int
    created_at: dt.datetime
    expires_at: dt.datetime
    last_used_at: dt.datetime | None
    clinic: int | None
    clinic_name: str | None
    current: bool


def _throttled(until: dt.datetime, username: str) -> HttpResponse:
    response = problems.problem(429, throttle.try_again_message(until, username))
    response["Retry-After"] = str(throttle.retry_after_seconds(until))
    return response


@router.post("/token", auth=None, response={200: s.TokenOut, 429: Problem})
def issue_token(request: HttpRequest, payload: s.TokenIn) -> Any:
    """Exchange a username and password for a bearer token, acting in one clinic.

    Five wrong passwords for an account, or twenty from one address, within 15 minutes lock
    it for 15 minutes (the numbers are settings): the answer is then 429 with Retry-After."""
    keys = throttle.keys_for(request, payload.username)
    until = throttle.locked_until(keys)
    if until is not None:
        return _throttled(until, payload.username)
    user = authenticate(request, username=payload.username, password=payload.password)
    if user is None:
        until = throttle.record_failure(
            keys,
            username=payload.username,
            ip=throttle.client_ip(request),
            path=request.path,
        )
        if until is not None:
            return _throttled(until, payload.username)
        raise AuthenticationError()
    throttle.record_success(payload.username)
    memberships = list(Membership.objects.filter(user=user).select_related("clinic"))
    membership = None
    if payload.clinic is not None:
        membership = next((m for m in memberships if m.clinic_id == payload.clinic), None)
        if membership is None:
            raise PermissionDenied("You are not a member of that clinic.")
    elif len(memberships) == 1:
        membership = memberships[0]
    elif len(memberships) > 1:
        raise ValidationError({"clinic": "You belong to several clinics: say which one."})
    token, raw = ApiToken.issue(user, membership)
    return {
        "token": raw,
        "expires_at": token.expires_at,
        "clinic": membership.clinic_id if membership else None,
        "role": membership.role if membership else None,
    }


def _current(request: HttpRequest) -> ApiToken:
    found = getattr(request, "api_token", None)
    assert isinstance(found, ApiToken)
    return found


@router.post("/logout", response={204: None})
def logout(request: HttpRequest) -> Status:
    """Revoke the token this request is sent with. It answers 401 from then on."""
    token = _current(request)
    do_revoke_tokens(
        ApiToken.objects.filter(pk=token.pk), reason="logged out", by=caller(request).user
    )
    return Status(204, None)


@router.get("/tokens", response=list[TokenInfo])
def list_tokens(request: HttpRequest) -> list[dict[str, Any]]:
    """The caller's live tokens, newest first: when each was made, when it expires and was
    last used, and the clinic it acts in. A token's secret is never shown again."""
    current = _current(request)
    tokens = (
        ApiToken.objects.active()
        .filter(user=caller(request).user)
        .select_related("membership__clinic")
        .order_by("-created_at", "-pk")
    )
    return [
        {
            "id": t.pk,
            "created_at": t.created_at,
            "expires_at": t.expires_at,
            "last_used_at": t.last_used_at,
            "clinic": t.membership.clinic_id if t.membership else None,
            "clinic_name": t.membership.clinic.name if t.membership else None,
            "current": t.pk == current.pk,
        }
        for t in tokens
    ]


@router.delete("/tokens/{token_id}", response={204: None, 404: Problem})
def revoke_token(request: HttpRequest, token_id: int) -> Status:
    """Revoke one of the caller's own tokens. Another user's token is not found."""
    mine = ApiToken.objects.active().filter(pk=token_id, user=caller(request).user)
    if not mine.exists():
        raise Http404("You have no live token with that id.")
    do_revoke_tokens(mine, reason="revoked by its holder", by=caller(request).user)
    return Status(204, None)
