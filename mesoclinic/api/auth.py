"""Bearer-token authentication and the clinic/role context every endpoint checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.utils import timezone
from ninja.security import HttpBearer

from mesoclinic.accounts.models import Clinic, Membership
from mesoclinic.api.models import ApiToken, hash_token

Role = Membership.Role
ALL_STAFF = frozenset({Role.MANAGER, Role.PRACTITIONER, Role.FRONT_DESK})
CLINICAL = frozenset({Role.MANAGER, Role.PRACTITIONER})
MANAGER = frozenset({Role.MANAGER})


@dataclass(frozen=True)
class Caller:
    user: Any
    membership: Membership | None

    @property
    def clinic(self) -> Clinic:
        if self.membership is None:
            raise PermissionDenied("This account is not a member of a clinic.")
        return self.membership.clinic

    def require(self, roles: frozenset[str]) -> Membership:
        if self.membership is None:
            raise PermissionDenied("This account is not a member of a clinic.")
        if self.membership.role not in roles:
            allowed = ", ".join(sorted(roles))
            raise PermissionDenied(
                f"Your role ({self.membership.role}) may not do this; it needs: {allowed}."
            )
        return self.membership


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
        # The token itself, for the endpoints that act on it (logout, the list of tokens).
        request.api_token = found  # type: ignore[attr-defined]
        # Record use at most once a minute, to keep reads from writing on every request.
        now = timezone.now()
        if found.last_used_at is None or (now - found.last_used_at).total_seconds() > 60:
            ApiToken.objects.filter(pk=found.pk).update(last_used_at=now)
        return Caller(user=found.user, membership=found.membership)


def caller(request: HttpRequest) -> Caller:
    auth = getattr(request, "auth", None)
    assert isinstance(auth, Caller)
    return auth
