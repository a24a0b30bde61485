"""The analytics endpoint, registered on the NinjaAPI of views.py by ApiConfig.ready.

GET /analytics?from=&to= answers the same figures as the manager's web page (/analytics/), from
the same outcomes.analytics.clinic_analytics, for managers only. A range that is back to front
or longer than ten years is a 422 naming the field.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.utils import timezone
from ninja import Field, Query, Schema

from mesoclinic.accounts.models import AuditEvent, audit
from mesoclinic.api.auth import MANAGER, caller
from mesoclinic.api.views import api
from mesoclinic.outcomes import analytics as figures


class RangeIn(Schema):
    start: dt.date | None = Field(
        None, alias="from", description="First day (local), inclusive; default a year ago."
    )
    end: dt.date | None = Field(None, alias="to", description="Last day (local); default today.")


class GroupOut(Schema):
    key: str = Field(description="Protocol key, product id or practitioner (user) id.")
    label: str
    courses: int = Field(description="Courses started in the range in this group.")
    assessed: int = Field(description="Of which improvement could be judged.")
    improved: int | None = Field(description="Null when fewer than min_group were assessed.")
    improved_share: float | None = Field(description="improved / assessed, 0-1; null as above.")
    hexsel_courses: int = Field(description="Courses with a Hexsel baseline and follow-up.")
    hexsel_mean_change: float | None = Field(
        description="Mean change of the Hexsel total (points; negative is better); null when "
        "fewer than min_group courses have one."
    )
    too_few: bool = Field(description="Fewer than min_group assessed courses: not comparable.")


class MilestoneOut(Schema):
    session: int
    reached: int
    assessed: int
    improved: int | None
    improved_share: float | None
    too_few: bool


class CompletionOut(Schema):
    started: int
    not_started: int
    completed: int
    in_progress: int
    lapsed: int
    stopped: int
    completion_rate: float | None
    dropout_rate: float | None
    lapse_after_cadences: int


class MaintenanceOut(Schema):
    opened: int
    in_window: int
    waiting: int
    missed: int
    adherence: float | None


class AnalyticsOut(Schema):
    start: dt.date = Field(serialization_alias="from")
    end: dt.date = Field(serialization_alias="to")
    as_of: dt.datetime
    notice: str
    min_group: int
    courses: int
    by_protocol: list[GroupOut]
    by_product: list[GroupOut]
    by_practitioner: list[GroupOut]
    milestones: list[MilestoneOut]
    completion: CompletionOut
    maintenance: MaintenanceOut


NOTICE = (
    "The clinic's own observed figures, with no comparison group: not evidence that a "
    "treatment works. Definitions: docs/analytics.md."
)


def _group(g: figures.Group) -> dict[str, Any]:
    return {
        "key": g.key,
        "label": g.label,
        "courses": g.courses,
        "assessed": g.assessed,
        "improved": g.improved if g.enough else None,
        "improved_share": g.improved_share if g.enough else None,
        "hexsel_courses": g.hexsel_courses,
        "hexsel_mean_change": g.hexsel_mean_change if g.hexsel_enough else None,
        "too_few": not g.enough,
    }


def as_json(result: figures.Analytics, tz: Any) -> dict[str, Any]:
    done, care = result.completion, result.maintenance
    return {
        "start": result.start,
        "end": result.end,
        "as_of": result.as_of.astimezone(tz),
        "notice": NOTICE,
        "min_group": figures.MIN_GROUP,
        "courses": result.courses,
        "by_protocol": [_group(g) for g in result.by_protocol],
        "by_product": [_group(g) for g in result.by_product],
        "by_practitioner": [_group(g) for g in result.by_practitioner],
        "milestones": [
            {
                "session": m.session,
                "reached": m.reached,
                "assessed": m.assessed,
                "improved": m.improved if m.enough else None,
                "improved_share": m.improved_share if m.enough else None,
                "too_few": not m.enough,
            }
            for m in result.milestones
        ],
        "completion": {
            "started": done.started,
            "not_started": done.not_started,
            "completed": done.completed,
            "in_progress": done.in_progress,
            "lapsed": done.lapsed,
            "stopped": done.stopped,
            "completion_rate": done.completion_rate,
            "dropout_rate": done.dropout_rate,
            "lapse_after_cadences": figures.LAPSE_CADENCES,
        },
        "maintenance": {
            "opened": care.opened,
            "in_window": care.in_window,
            "waiting": care.waiting,
            "missed": care.missed,
            "adherence": care.adherence,
        },
    }


@api.get("/analytics", response=AnalyticsOut, by_alias=True, tags=["analytics"])
def clinic_analytics(request: HttpRequest, range: Query[RangeIn]) -> dict[str, Any]:
    """The clinic's outcome, completion and maintenance figures for courses that started in
    the range (managers only)."""
    who = caller(request)
    who.require(MANAGER)
    clinic = who.clinic
    now = timezone.now()
    start, end = figures.default_range(timezone.localtime(now, clinic.tz).date())
    start, end = range.start or start, range.end or end
    problems = figures.check_range(start, end)
    if problems:
        raise ValidationError(problems)
    result = figures.clinic_analytics(clinic, start, end, now)
    audit(
        clinic=clinic,
        user=who.user,
        action=AuditEvent.Action.VIEW,
        object_type="analytics",
        via="api",
        start=start.isoformat(),
        end=end.isoformat(),
    )
    return as_json(result, clinic.tz)
