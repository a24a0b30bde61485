"""How long a visit is booked for: a course's visit takes its protocol's length; a
consultation, and any visit booked without a course, takes the clinic's length for its kind
(the visit types page), or 30 minutes until the clinic sets one."""

from __future__ import annotations

import datetime as dt

from mesoclinic.accounts.models import Clinic
from mesoclinic.courses.models import Course
from mesoclinic.scheduling import logic
from mesoclinic.scheduling.models import Appointment, VisitType

DEFAULT_MINUTES = 30


def clinic_lengths(clinic: Clinic) -> dict[str, int]:
    """Every kind of visit with the clinic's length for it, in minutes."""
    saved = dict(VisitType.objects.filter(clinic=clinic).values_list("kind", "minutes"))
    return {kind: saved.get(kind, DEFAULT_MINUTES) for kind in Appointment.Kind.values}


def visit_length(clinic: Clinic, kind: str, course: Course | None) -> dt.timedelta:
    """The protocol's length for a course's visit of a kind it describes, else the clinic's."""
    if course is not None and kind in logic.PROTOCOL_KINDS:
        return logic.duration(kind, course.spec, len(course.areas or []))
    return dt.timedelta(minutes=clinic_lengths(clinic)[kind])
