"""Recording measurements. Each do_* function validates (outcomes.logic), writes in one
transaction and audits every row it creates."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent, audit, audit_many
from mesoclinic.courses.models import Amendment, Course, Session
from mesoclinic.outcomes import logic
from mesoclinic.outcomes.models import Measurement


def course_facts(course: Course, now: dt.datetime | None = None) -> logic.CourseFacts:
    tz = course.clinic.tz
    sessions_at = tuple(course.sessions.values_list("performed_at", flat=True))
    return logic.CourseFacts(
        areas=tuple(course.areas),
        created_on=course_start(course, sessions_at),
        tz=tz,
        sessions_at=sessions_at,
        now=now or timezone.now(),
    )


def course_start(course: Course, sessions_at: tuple[dt.datetime, ...] = ()) -> dt.date:
    """The first day a measurement may belong to the course: the earliest of the day it was
    entered, its planned first session, its first allergy test and its first session. A course
    entered after the fact (back-charted) starts on its first real day, so its baseline can
    be dated on or before session 1."""
    tz = course.clinic.tz
    days = [course.created_at.astimezone(tz).date(), course.first_session_on]
    days += [at.astimezone(tz).date() for at in sessions_at]
    first_test = course.allergy_tests.order_by("given_at").values_list("given_at", flat=True)
    days += [at.astimezone(tz).date() for at in first_test[:1]]
    return min(days)


def _session_of(course: Course, session: Session | int | None) -> Session | None:
    if session is None:
        return None
    session_id = session.pk if isinstance(session, Session) else session
    found = Session.objects.filter(pk=session_id, course=course).first()
    if found is None:
        raise ValidationError({"session": "is not a session of this course."})
    return found


def do_record_measurements(
    course: Course,
    readings: list[tuple[str, logic.Raw]],
    *,
    taken_at: dt.datetime,
    user: Any,
    session: Session | int | None = None,
    notes: str = "",
    via: str = "api",
) -> list[Measurement]:
    """Record the measurements of one visit, all of them or none.

    1. Check every reading and the time (logic.check_all): one wrong field refuses the lot,
       with every wrong field named (each under its prefix in `readings`).
    2. A session, if given, must be one of this course's; its time is the measurement's.
    3. Save every row and one audit row per measurement, in one transaction.
    """
    found_session = _session_of(course, session)
    if found_session is not None and taken_at != found_session.performed_at:
        # Taken at the session: the chart places it by the session's own time.
        taken_at = found_session.performed_at
    try:
        clean = logic.check_all(readings, taken_at, course_facts(course))
    except logic.Invalid as e:
        raise ValidationError(e.problems) from None
    with transaction.atomic():
        rows = Measurement.objects.bulk_create(
            Measurement(
                clinic_id=course.clinic_id,
                course=course,
                session=found_session,
                kind=c.kind,
                site=c.site,
                area=c.area,
                value=c.value,
                unit=c.unit,
                items=c.items,
                loinc=c.loinc,
                taken_at=taken_at,
                notes=notes.strip(),
                recorded_by=user if getattr(user, "pk", None) else None,
            )
            for c in clean
        )
        audit_many(
            clinic=course.clinic,
            user=user,
            action=AuditEvent.Action.CREATE,
            via=via,
            entries=[
                (
                    m,
                    course.patient_id,
                    {
                        "course": course.pk,
                        "kind": m.kind,
                        "value": str(m.value),
                        **({"site": m.site} if m.site else {}),
                        **({"session": found_session.pk} if found_session else {}),
                    },
                )
                for m in rows
            ],
        )
    return rows


def do_record_measurement(
    course: Course,
    reading: logic.Raw,
    *,
    taken_at: dt.datetime,
    user: Any,
    session: Session | int | None = None,
    notes: str = "",
    via: str = "api",
) -> Measurement:
    """One measurement: the same checks, with field names unprefixed."""
    [row] = do_record_measurements(
        course,
        [("", reading)],
        taken_at=taken_at,
        user=user,
        session=session,
        notes=notes,
        via=via,
    )
    return row


def has_baseline(course: Course, by: dt.datetime) -> bool:
    """Whether session 1 at `by` passes the baseline gate (the rule is in courses.rules)."""
    return course.measurements.filter(taken_at__lte=by).exists()


def do_amend_measurement(
    measurement: Measurement, *, value: str, reason: str, user: Any, via: str = "api"
) -> Amendment:
    """Correct a measurement's value with a reason. The measurement holds the corrected value,
    so progress, the outcome tables and analytics read it; the value as first charted stays
    on the row (charted_value) and each amendment keeps the value before and after, who, when
    and why. Audited."""
    try:
        new = logic.check_value(measurement.kind, value)
    except logic.Invalid as e:
        raise ValidationError(e.problems) from None
    if not reason.strip():
        raise ValidationError({"reason": "say why the record is corrected."})
    course = measurement.course
    with transaction.atomic():
        locked = Measurement.objects.select_for_update().get(pk=measurement.pk)
        before = locked.value
        if before == new:
            raise ValidationError({"value": "this is the value already on record."})
        amendment = Amendment.objects.create(
            clinic_id=locked.clinic_id,
            measurement=locked,
            field="value",
            original=str(before),
            amended=str(new),
            reason=reason.strip(),
            amended_by=user,
        )
        if locked.charted_value is None:
            locked.charted_value = before
        locked.value = new
        locked.save(update_fields=["value", "charted_value"])
        audit(
            clinic=course.clinic,
            user=user,
            action=AuditEvent.Action.UPDATE,
            obj=locked,
            patient_id=course.patient_id,
            via=via,
            amended="value",
            original=str(before),
            value=str(new),
            reason=reason.strip(),
        )
    measurement.value, measurement.charted_value = locked.value, locked.charted_value
    return amendment
