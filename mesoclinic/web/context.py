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


def memberships(request: HttpRequest) -> list[Membership]:
    """Every clinic the signed-in user belongs to, by clinic name. Cached on the request."""
    if not hasattr(request, "_memberships"):
        request._memberships = (  # type: ignore[attr-defined]
            list(
                Membership.objects.select_related("clinic")
                .filter(user=request.user)
                .order_by("clinic__name", "clinic_id")
            )
            if request.user.is_authenticated
            else []
        )
    found: list[Membership] = request._memberships  # type: ignore[attr-defined]
    return found


def membership(request: HttpRequest) -> Membership | None:
    """The membership the user acts in: the clinic chosen in this browser session, or their
    only (or first) clinic."""
    mine = memberships(request)
    chosen = request.session.get(SESSION_KEY) if mine else None
    return next((m for m in mine if m.clinic_id == chosen), None) or (mine[0] if mine else None)


def choose_clinic(request: HttpRequest, clinic_id: int) -> Membership | None:
    """Act in `clinic_id` from now on in this browser session, if the user is a member of it;
    answer the membership, or None if they are not."""
    found = next((m for m in memberships(request) if m.clinic_id == clinic_id), None)
    if found is not None:
        request.session[SESSION_KEY] = clinic_id
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
        "memberships": memberships(request),
        "clinic": found.clinic,
        "is_manager": found.role == Role.MANAGER,
        "is_clinical": found.role in CLINICAL,
    }
