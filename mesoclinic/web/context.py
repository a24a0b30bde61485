"""Who is signed in, in which clinic and role: the context every staff page starts from."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from mesoclinic.accounts.models import Membership

SESSION_KEY = "clinic_id"
Role = Membership.Role
ALL_STAFF = frozenset({Role.MANAGER, Role.PRACTITIONER, Role.FRONT_DESK})
CLINICAL = frozenset({Role.MANAGER, Role.PRACTITIONER})
MANAGER = frozenset({Role.MANAGER})


def membership(request: HttpRequest) -> Membership | None:
    """The membership the user acts in: the clinic chosen in this browser session, or their
    only (or first) clinic. Cached on the request."""
    if hasattr(request, "_membership"):
        cached: Membership | None = request._membership
        return cached
    found: Membership | None = None
    if request.user.is_authenticated:
        memberships = Membership.objects.select_related("clinic").filter(user=request.user)
        chosen = request.session.get(SESSION_KEY)
        found = next((m for m in memberships if m.clinic_id == chosen), None) or memberships.first()
    request._membership = found  # type: ignore[attr-defined]
    return found


def require(request: HttpRequest, roles: frozenset[str]) -> Membership:
    """The caller's membership, or 403 if they have none or their role may not do this."""
    found = membership(request)
    if found is None:
        raise PermissionDenied("This account is not a member of a clinic.")
    if found.role not in roles:
        raise PermissionDenied("Your role may not do this.")
    return found


def staff(request: HttpRequest) -> dict[str, Any]:
    """Template context: the membership, the clinic and what the role may see."""
    found = membership(request)
    if found is None:
        return {"membership": None}
    return {
        "membership": found,
        "clinic": found.clinic,
        "is_manager": found.role == Role.MANAGER,
        "is_clinical": found.role in CLINICAL,
    }
