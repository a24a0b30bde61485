"""Template tags for the course's visits on the chart: "Session 3 of 15" for each session
visit, from the visits and sessions the chart has already read (no query)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import template

from mesoclinic.scheduling import planning
from mesoclinic.scheduling.models import Appointment

register = template.Library()


@register.simple_tag
def session_labels(row: Mapping[str, Any]) -> dict[int, str]:
    """The labels of a chart row's course (its `visits`, `sessions` and `course`)."""
    return planning.number_sessions(
        row.get("visits") or [], row.get("sessions") or [], row["course"].planned_sessions
    )


@register.filter
def label_of(labels: dict[int, str], appointment: Appointment) -> str:
    return labels.get(appointment.pk, "")
