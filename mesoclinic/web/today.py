"""What the Today page shows: a few queries over the clinic, no per-row queries."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Max, Q
from django.utils import timezone

from mesoclinic.accounts.models import Clinic
from mesoclinic.courses import logic
from mesoclinic.courses.models import AllergyTest, Course, FollowUp, Session
from mesoclinic.formulary.models import Lot
from mesoclinic.ops.health import worker_state
from mesoclinic.protocols.models import ClinicProtocol
from mesoclinic.protocols.schema import Protocol
from mesoclinic.reminders.models import ChangeRequest
from mesoclinic.safety.models import SafetyAlert
from mesoclinic.safety.surveil import alert_words
from mesoclinic.scheduling.models import Appointment
from mesoclinic.scheduling.planning import cadence_flags

NEAR_EXPIRY_DAYS = 30


@dataclass(frozen=True)
class Due:
    course: Course
    kind: str  # "session" or "maintenance"
    earliest: dt.datetime | dt.date
    latest: dt.datetime | dt.date
    overdue: bool


def _specs(clinic: Clinic) -> dict[int, Protocol]:
    """Each protocol version the clinic's open courses use, validated once."""
    return {p.pk: p.spec for p in ClinicProtocol.objects.filter(clinic=clinic)}


def due_courses(
    clinic: Clinic, now: dt.datetime, specs: dict[int, Protocol] | None = None
) -> list[Due]:
    """Courses whose next session window has opened (or passed), and completed courses whose
    maintenance window has opened, most overdue first."""
    tz = clinic.tz
    today = now.astimezone(tz).date()
    specs = specs if specs is not None else _specs(clinic)
    courses = (
        Course.objects.filter(
            clinic=clinic,
            status__in=[Course.Status.ACTIVE, Course.Status.COMPLETED, Course.Status.MAINTENANCE],
        )
        .select_related("patient")
        # Only what the window and the row need: a busy clinic has hundreds of open courses.
        .only(
            "status",
            "cadence_days",
            "protocol_id",
            "patient__first_name",
            "patient__last_name",
            # Each row offers a call to the patient.
            "patient__phone",
        )
        .annotate(last_at=Max("sessions__performed_at"))
    )
    out: list[Due] = []
    for course in courses:
        if course.last_at is None:
            continue
        spec = specs[course.protocol_id]
        if course.status == Course.Status.ACTIVE:
            w = logic.next_window(
                course.last_at, course.cadence_days, spec.cadence.tolerance_days.v, tz
            )
            if w.earliest <= now:
                out.append(Due(course, "session", w.earliest, w.latest, now > w.latest))
        else:
            window = logic.maintenance_window(course.last_at.astimezone(tz).date(), spec)
            start, end = dt.date.fromisoformat(window["from"]), dt.date.fromisoformat(window["to"])
            if start <= today:
                out.append(Due(course, "maintenance", start, end, today > end))
    return sorted(out, key=lambda d: (not d.overdue, str(d.latest)))


def own_first(groups: dict[str, list[Any]], name: str | None) -> dict[str, list[Any]]:
    """The groups by practitioner's name, with the caller's own group first."""
    if name is None or name not in groups:
        return groups
    return {name: groups[name], **{k: v for k, v in groups.items() if k != name}}


def build(clinic: Clinic, now: dt.datetime | None = None, me: Any = None) -> dict[str, Any]:
    """Today's page. `me`, the person looking, sees their own visits and sessions first."""
    now = now or timezone.now()
    tz = clinic.tz
    start = dt.datetime.combine(now.astimezone(tz).date(), dt.time(0), tzinfo=tz)
    sessions = (
        Session.objects.filter(
            course__clinic=clinic,
            performed_at__gte=start,
            performed_at__lt=start + dt.timedelta(days=1),
        )
        .select_related("course__patient", "practitioner")
        .annotate(n_injections=Count("injections"))
        .order_by("practitioner__last_name", "performed_at")
    )
    by_practitioner: dict[str, list[Session]] = {}
    for s in sessions:
        name = s.practitioner.display_name
        by_practitioner.setdefault(name, []).append(s)
    # Cancelled and missed visits stay on the list, marked, so the front desk can rebook them.
    visits = (
        Appointment.objects.filter(
            clinic=clinic, starts_at__gte=start, starts_at__lt=start + dt.timedelta(days=1)
        )
        .select_related("patient", "practitioner", "room")
        .order_by("practitioner__last_name", "practitioner_id", "starts_at")
    )
    visits_by_practitioner: dict[str, list[Appointment]] = {}
    for a in visits:
        visits_by_practitioner.setdefault(a.practitioner.display_name, []).append(a)
    waiting_tests = (
        AllergyTest.objects.filter(course__clinic=clinic, readings__isnull=True)
        .exclude(course__status=Course.Status.STOPPED)
        .select_related("course__patient")
        # The wait comes from `specs`: not each row's protocol document, nor the course's JSON.
        .only(
            "given_at",
            "course__protocol_id",
            "course__patient__first_name",
            "course__patient__last_name",
        )
        .order_by("given_at")
    )
    specs = _specs(clinic)
    tests = [
        {
            "test": t,
            "readable_from": t.given_at
            + dt.timedelta(hours=specs[t.course.protocol_id].allergy_test.wait_hours.v),
        }
        for t in waiting_tests
    ]
    follow_ups = (
        FollowUp.objects.filter(clinic=clinic, status=FollowUp.Status.OPEN)
        .select_related("session__course__patient")
        # Only what the card shows: not the session's or the course's JSON fields.
        .only(
            "priority",
            "reason",
            "opened_at",
            "session__course__patient__first_name",
            "session__course__patient__last_name",
            "session__course__patient__phone",
        )
        .order_by("-priority", "opened_at")
    )
    today = now.astimezone(tz).date()
    lots = (
        Lot.objects.filter(product__clinic=clinic)
        .filter(Q(recalled=True) | Q(expires_on__lte=today + dt.timedelta(days=NEAR_EXPIRY_DAYS)))
        .select_related("product")
        .order_by("-recalled", "expires_on")
    )
    my_name = me.display_name if me is not None else None
    return {
        "now": now,
        "my_name": my_name,
        "my_visits": visits_by_practitioner.get(my_name, []) if my_name else [],
        "my_sessions": by_practitioner.get(my_name, []) if my_name else [],
        "sessions_by_practitioner": own_first(by_practitioner, my_name),
        "visits_by_practitioner": own_first(visits_by_practitioner, my_name),
        "cadence_flags": cadence_flags(clinic, now, specs),
        "change_requests": list(
            ChangeRequest.objects.filter(clinic=clinic, handled_at__isnull=True)
            .select_related("appointment__patient")
            .order_by("planned_for")
        ),
        "due": due_courses(clinic, now, specs),
        "follow_ups": list(follow_ups),
        "allergy_tests": tests,
        "lots": [{"lot": lot, "expired": lot.expires_on < today} for lot in lots],
        # Reminders and infection-watch prompts go out only while the worker runs; staff are
        # told when it has stopped, so they can phone patients and call whoever runs the server.
        "worker": worker_state(now),
        # Surveillance alerts not yet closed; the card is shown to managers only.
        "safety_alerts": [
            {"alert": a, **alert_words(a)}
            for a in SafetyAlert.objects.filter(clinic=clinic)
            .exclude(status=SafetyAlert.Status.CLOSED)
            .select_related("lot__product", "practitioner")
            .order_by("-raised_at", "-id")
        ],
        # Each follow-up closes from Today with how it ended.
        "follow_up_resolutions": FollowUp.Resolution.choices,
    }


def patients_shown(context: dict[str, Any]) -> list[int]:
    """Every patient whose name the Today page shows, for the audit trail."""
    ids: list[int] = []
    for rows in context["sessions_by_practitioner"].values():
        ids += [s.course.patient_id for s in rows]
    for visits in context["visits_by_practitioner"].values():
        ids += [a.patient_id for a in visits]
    ids += [f.course.patient_id for f in context["cadence_flags"]]
    ids += [c.appointment.patient_id for c in context["change_requests"]]
    ids += [d.course.patient_id for d in context["due"]]
    ids += [f.session.course.patient_id for f in context["follow_ups"]]
    ids += [t["test"].course.patient_id for t in context["allergy_tests"]]
    return ids
