"""GET /api/v1/staff and GET /api/v1/staff/{membership_id}/licences: the manager's view of
their clinic's staff (role, whether active, last sign-in, current licences) and one member's
licences with the history of renewals. Managers only; another clinic's member is a 404."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.http import HttpRequest
from ninja import Router, Schema

from mesoclinic.access import access_member, licences_for, members_for
from mesoclinic.accounts.licences import local_today
from mesoclinic.accounts.models import PractitionerLicence
from mesoclinic.api.auth import MANAGER, caller

router = Router(tags=["staff"])


class LicenceOut(Schema):
    id: int
    kind: str
    number: str
    jurisdiction: str
    expires_on: dt.date
    expired: bool
    current: bool
    renewed_by: int | None


class MemberOut(Schema):
    id: int
    user: int
    username: str
    name: str
    email: str
    role: str
    active: bool
    deactivated_at: dt.datetime | None
    last_login: dt.datetime | None
    licences: list[LicenceOut]


def _licence(licence: PractitionerLicence, today: dt.date) -> dict[str, Any]:
    return {
        "id": licence.pk,
        "kind": licence.kind,
        "number": licence.number,
        "jurisdiction": licence.jurisdiction,
        "expires_on": licence.expires_on,
        "expired": licence.expires_on < today,
        "current": licence.is_current,
        "renewed_by": licence.superseded_by_id,
    }


@router.get("", response=list[MemberOut])
def staff(request: HttpRequest) -> list[dict[str, Any]]:
    """Every member of the caller's clinic, deactivated ones too, each with their current
    licences (a renewed licence is in the member's licence history)."""
    who = caller(request)
    members = members_for(who, MANAGER).select_related("user").order_by("pk")
    today = local_today(who.clinic)
    by_user: dict[int, list[dict[str, Any]]] = {}
    for lic in licences_for(who, MANAGER).filter(superseded_by__isnull=True):
        by_user.setdefault(lic.user_id, []).append(_licence(lic, today))
    return [
        {
            "id": m.pk,
            "user": m.user_id,
            "username": m.user.get_username(),
            "name": m.user.display_name,
            "email": m.user.email,
            "role": m.role,
            "active": m.is_active,
            "deactivated_at": m.deactivated_at,
            "last_login": m.user.last_login,
            "licences": by_user.get(m.user_id, []),
        }
        for m in members
    ]


@router.get("/{membership_id}/licences", response=list[LicenceOut])
def member_licences(request: HttpRequest, membership_id: int) -> list[dict[str, Any]]:
    """One member's licences, latest expiry first: the current ones and those they renewed."""
    who = caller(request)
    found = access_member(who, membership_id, MANAGER)
    today = local_today(found.clinic)
    licences = licences_for(who, MANAGER).filter(user_id=found.user_id).order_by("-expires_on")
    return [_licence(lic, today) for lic in licences]
