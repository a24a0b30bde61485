"""Bearer-token authentication: a token becomes the access layer's `Caller`."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils import timezone
from ninja.security import HttpBearer

from mesoclinic.access import ALL_STAFF, CLINICAL, MANAGER, Caller, caller_from_token
from mesoclinic.api.models import ApiToken, hash_token

__all__ = ["ALL_STAFF", "CLINICAL", "MANAGER", "BearerAuth", "Caller", "caller"]


class BearerAuth(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> Caller | None:
        # A revoked token (logout, a password change, deactivation, an ended membership) is
        # as unknown as one that never existed.
        found = (
            ApiToken.objects.active()
            .select_related("user", "membership__clinic")
            .filter(key_hash=hash_token(token))
            .first()
        )
        if found is None or not found.user.is_active:
            return None
        if found.membership is not None and not found.membership.is_active:
            # Its tokens were revoked at the deactivation; this holds even for one it missed.
            return None
        # The token itself, for the endpoints that act on it (logout, the list of tokens).
        request.api_token = found  # type: ignore[attr-defined]
        # Record use at most once a minute, to keep reads from writing on every request.
        now = timezone.now()
        if found.last_used_at is None or (now - found.last_used_at).total_seconds() > 60:
            ApiToken.objects.filter(pk=found.pk).update(last_used_at=now)
        return caller_from_token(found.user, found.membership)


def caller(request: HttpRequest) -> Caller:
    auth = getattr(request, "auth", None)
    assert isinstance(auth, Caller)
    return auth
