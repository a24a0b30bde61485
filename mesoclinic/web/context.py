"""Who is signed in, in which clinic and role: the context every staff page starts from."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from mesoclinic.access import (
    ALL_STAFF,
    CLINICAL,
    MANAGER,
    MONEY,
    SESSION_KEY,
    Caller,
    caller_from_request,
    membership,
    memberships,
)
from mesoclinic.accounts.models import Membership

Role = Membership.Role
__all__ = [
    "ALL_STAFF",
    "CLINICAL",
    "MANAGER",
    "Caller",
    "caller",
    "choose_clinic",
    "membership",
    "memberships",
    "reading",
    "require",
    "staff",
]


def choose_clinic(request: HttpRequest, clinic_id: int) -> Membership | None:
    """Act in `clinic_id` from now on in this browser session, if the user is a member of it;
    answer the membership, or None if they are not."""
    found = next((m for m in memberships(request) if m.clinic_id == clinic_id), None)
    if found is not None:
        request.session[SESSION_KEY] = clinic_id
        # The caller built earlier in this request acted in the clinic chosen before.
        if hasattr(request, "_access_caller"):
            del request._access_caller
    return found


def require(request: HttpRequest, roles: frozenset[str]) -> Membership:
    """The caller's membership, or 403 if they have none or their role may not do this. The
    access layer decides; this is its shape for a view that needs only the membership."""
    return caller(request).require(roles)


def caller(request: HttpRequest) -> Caller:
    """The access layer's caller for this browser request."""
    return caller_from_request(request)


def reading(request: HttpRequest) -> bool:
    """Whether the request only shows a page (so the records on it are read, and audited as a
    view) rather than posting a change (audited by the change itself)."""
    return request.method in ("GET", "HEAD")


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
        "handles_money": found.role in MONEY,
    }
