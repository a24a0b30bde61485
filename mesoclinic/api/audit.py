"""GET /api/v1/audit: the manager's view of their clinic's audit trail, with the filters of
the web audit viewer (web/audit.py). Reading it is itself audited."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.paginator import Paginator
from django.http import HttpRequest
from ninja import Query, Router, Schema
from pydantic import Field

from mesoclinic.access import audit_list
from mesoclinic.accounts.auditlog import AuditFilter, events
from mesoclinic.accounts.models import AuditEvent, audit
from mesoclinic.api.auth import MANAGER, caller

router = Router(tags=["audit"])
PAGE_SIZE = 100
MAX_ID = 2**63 - 1


class AuditQuery(Schema):
    patient: int | None = Field(None, ge=1, le=MAX_ID, description="Patient id.")
    user: int | None = Field(None, ge=1, le=MAX_ID, description="The id of the user who acted.")
    action: AuditEvent.Action | None = None
    since: dt.date | None = Field(None, description="First day, in the clinic's time zone.")
    until: dt.date | None = Field(None, description="Last day, in the clinic's time zone.")
    page: int = Field(1, ge=1, le=1_000_000)


class AuditRow(Schema):
    id: int
    at: dt.datetime
    user: int | None
    username: str | None
    action: str
    object_type: str
    object_id: str
    patient: int | None
    via: str
    detail: dict[str, Any]


class AuditPage(Schema):
    count: int
    page: int
    pages: int
    events: list[AuditRow]


@router.get("", response=AuditPage)
def audit_trail(request: HttpRequest, q: Query[AuditQuery]) -> dict[str, Any]:
    """Who read or changed what in the caller's clinic, newest first, 100 rows a page."""
    who = caller(request)
    who.require(MANAGER)
    f = AuditFilter(
        patient_ids=frozenset({q.patient}) if q.patient else None,
        user_id=q.user,
        action=q.action.value if q.action else None,
        since=q.since,
        until=q.until,
    )
    pages = Paginator(events(who.clinic, f), PAGE_SIZE)
    page = pages.get_page(q.page)
    audit(
        clinic=who.clinic,
        user=who.user,
        action=AuditEvent.Action.VIEW,
        object_type="accounts.AuditEvent",
        filters=f.as_detail(),
        page=page.number,
    )
    audit_list(who, "audit trail", [e.patient_id for e in page.object_list])
    return {
        "count": pages.count,
        "page": page.number,
        "pages": pages.num_pages,
        "events": [
            {
                "id": e.pk,
                "at": e.at,
                "user": e.user_id,
                "username": e.user.username if e.user else None,
                "action": e.action,
                "object_type": e.object_type,
                "object_id": e.object_id,
                "patient": e.patient_id,
                "via": e.via,
                "detail": e.detail,
            }
            for e in page.object_list
        ],
    }
