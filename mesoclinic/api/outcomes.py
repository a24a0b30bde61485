"""Measurements and progress in the JSON API, registered on the NinjaAPI of views.py by
ApiConfig.ready.

Staff: every role reads; managers and practitioners record. A patient who signs in (a user
linked to Patient.user, with no clinic membership) reads their own courses' measurements and
progress and records their own satisfaction, nothing else; another patient's course is a 404.
Every read is audited as a view of the chart, every write as a creation.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from ninja import Field, Schema, Status

from mesoclinic.access import OWN, PATIENT, access_course, audit_view
from mesoclinic.api.auth import CLINICAL, caller
from mesoclinic.api.schemas import Id, Key, When
from mesoclinic.api.views import api
from mesoclinic.courses.models import Course
from mesoclinic.lib import limits
from mesoclinic.outcomes import actions, logic, progress, scales
from mesoclinic.outcomes.models import Measurement

# A value is a number, or a number or word as text (a score written "2", a band "mild").
Value = int | float | Annotated[str, Field(max_length=limits.KEY)] | None


class MeasurementIn(Schema):
    kind: str = Field(max_length=limits.KEY, description=f"One of: {', '.join(logic.KINDS)}.")
    value: Value = Field(
        None, description="The score, cm or kg; omitted for a Hexsel score (the item total)."
    )
    items: dict[Key, Value] | None = Field(
        None,
        max_length=50,
        description="Hexsel: each item 0–3: " + ", ".join(k for k, _ in scales.HEXSEL_ITEMS) + ".",
    )
    site: str = Field(
        "",
        max_length=limits.KEY,
        description="Circumference site: " + ", ".join(s.key for s in scales.SITES),
    )
    area: str = Field(
        "",
        max_length=limits.KEY,
        description="The area a Hexsel or Nürnberger–Müller score is for.",
    )
    taken_at: When
    session: Id | None = Field(None, description="The session of this course it was taken at.")
    notes: str = Field("", max_length=limits.NOTES)


class VisitMeasurementIn(Schema):
    """One measurement of a visit; the visit gives the time, the session and the notes."""

    kind: str = Field(max_length=limits.KEY)
    value: Value = None
    items: dict[Key, Value] | None = Field(None, max_length=50)
    site: str = Field("", max_length=limits.KEY)
    area: str = Field("", max_length=limits.KEY)


class VisitIn(Schema):
    taken_at: When
    session: Id | None = None
    notes: str = Field("", max_length=limits.NOTES)
    measurements: list[VisitMeasurementIn] = Field(min_length=1, max_length=30)


class MeasurementOut(Schema):
    id: int
    course: int
    session: int | None
    kind: str
    site: str
    area: str
    value: float
    unit: str
    items: dict[str, int]
    band: str | None = Field(None, description="Hexsel only: none, mild, moderate or severe.")
    loinc: str
    taken_at: dt.datetime
    notes: str


def _out(m: Measurement) -> dict[str, Any]:
    tz = m.course.clinic.tz
    return {
        "id": m.pk,
        "course": m.course_id,
        "session": m.session_id,
        "kind": m.kind,
        "site": m.site,
        "area": m.area,
        "value": float(m.value),
        "unit": m.unit,
        "items": m.items,
        "band": scales.hexsel_band(int(m.value)) if m.kind == scales.HEXSEL else None,
        "loinc": m.loinc,
        "taken_at": m.taken_at.astimezone(tz),
        "notes": m.notes,
    }


# A patient reads their own measurements and progress, and records their own satisfaction.
OWN_READ = OWN
OWN_RECORD = CLINICAL | {PATIENT}


def _audit_read(request: HttpRequest, course: Course, what: str) -> None:
    audit_view(caller(request), course, patient_id=course.patient_id, read=what)


def _may_record(request: HttpRequest, kinds: list[str]) -> None:
    """Managers and practitioners record anything; a patient only their own satisfaction."""
    who = caller(request)
    if who.membership is None:
        if any(k != scales.SATISFACTION for k in kinds):
            raise PermissionDenied("A patient may record only their own satisfaction.")
        return
    who.require(CLINICAL)


def _raw(r: VisitMeasurementIn | MeasurementIn) -> logic.Raw:
    return logic.Raw(r.kind, r.value, site=r.site, area=r.area, items=r.items)


@api.get("/courses/{course_id}/measurements", response=list[MeasurementOut], tags=["outcomes"])
def list_measurements(request: HttpRequest, course_id: int) -> list[dict[str, Any]]:
    course = access_course(caller(request), course_id, OWN_READ)
    _audit_read(request, course, "measurements")
    return [_out(m) for m in course.measurements.select_related("course__clinic")]


@api.post("/courses/{course_id}/measurements", response={201: MeasurementOut}, tags=["outcomes"])
def record_measurement(
    request: HttpRequest, course_id: int, payload: MeasurementIn
) -> Status[dict[str, Any]]:
    """One measurement. A bad value is a 422 naming the field: value, items.<item>, site,
    area, kind or taken_at."""
    course = access_course(caller(request), course_id, OWN_RECORD)
    _may_record(request, [payload.kind])
    m = actions.do_record_measurement(
        course,
        _raw(payload),
        taken_at=payload.taken_at,
        session=payload.session,
        notes=payload.notes,
        user=caller(request).user,
    )
    return Status(201, _out(m))


@api.post("/courses/{course_id}/visits", response={201: list[MeasurementOut]}, tags=["outcomes"])
def record_visit(
    request: HttpRequest, course_id: int, payload: VisitIn
) -> Status[list[dict[str, Any]]]:
    """A visit's measurements, all or none; fields are named measurements.<n>.<field>."""
    course = access_course(caller(request), course_id, OWN_RECORD)
    _may_record(request, [r.kind for r in payload.measurements])
    rows = actions.do_record_measurements(
        course,
        [(f"measurements.{n}.", _raw(r)) for n, r in enumerate(payload.measurements)],
        taken_at=payload.taken_at,
        session=payload.session,
        notes=payload.notes,
        user=caller(request).user,
    )
    return Status(201, [_out(m) for m in rows])


@api.get("/courses/{course_id}/progress", response=dict, tags=["outcomes"])
def course_progress(request: HttpRequest, course_id: int) -> dict[str, Any]:
    """The series the progress chart draws (x: sessions done, 0 = baseline), each with its
    change from baseline and, for the Hexsel score, the protocol's expected trajectory and
    its sources."""
    course = access_course(caller(request), course_id, OWN_READ)
    _audit_read(request, course, "progress")
    return {"course": course.pk, **progress.course_progress(course).as_dict()}
