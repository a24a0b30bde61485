"""Template tags for the course's visits on the chart: "Session 3 of 15" for each session
visit, read in three queries for all of a course's visits (scheduling.planning)."""

from __future__ import annotations

from collections.abc import Iterable

from django import template

from mesoclinic.scheduling import planning
from mesoclinic.scheduling.models import Appointment

register = template.Library()


@register.simple_tag
def session_labels(visits: Iterable[Appointment]) -> dict[int, str]:
    return planning.session_labels(list(visits))


@register.filter
def label_of(labels: dict[int, str], appointment: Appointment) -> str:
    return labels.get(appointment.pk, "")
