"""What the Today page shows: a few queries over the clinic, no per-row queries.

Today's cost stays flat as the clinic grows: each work list (follow-ups, due patients, broken
cadences, allergy tests to read, lots) shows its most pressing `ROWS` rows and counts the rest,
which its own page lists in full (`work_list`). The day's visits and sessions are shown whole:
they grow with the day, not with the clinic."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Q, QuerySet, Window
from django.utils import timezone

from mesoclinic.accounts.models import Clinic
from mesoclinic.courses import logic
from mesoclinic.courses.models import AllergyTest, Course, FollowUp, Session
from mesoclinic.formulary import stock
from mesoclinic.formulary.models import Lot
from mesoclinic.ops.health import worker_state
from mesoclinic.protocols.models import ClinicProtocol
from mesoclinic.protocols.schema import Protocol
from mesoclinic.reminders.models import ChangeRequest
from mesoclinic.safety.models import SafetyAlert
from mesoclinic.safety.surveil import alert_rows
from mesoclinic.scheduling.models import Appointment
from mesoclinic.scheduling.planning import CourseTimes, cadence_flags, course_times

NEAR_EXPIRY_DAYS = 30
# The rows each work list shows on Today; the rest are on the list's own page.
ROWS = 8


@dataclass(frozen=True)
class WorkList:
    """One of Today's lists: the rows shown, and how many there are in all."""

    rows: list[Any]
    total: int

    @property
    def more(self) -> int:
        return self.total - len(self.rows)


def _bounded(rows: list[Any], limit: int | None) -> WorkList:
    return WorkList(rows if limit is None else rows[:limit], len(rows))


def _first(found: QuerySet[Any], limit: int | None) -> WorkList:
    """The first `limit` rows of `found` (all of them for None) and how many there are, in
    one query: each row carries the count of the whole list (a window over it)."""
    if limit is None:
        rows = list(found)
        return WorkList(rows, len(rows))
    rows = list(found.annotate(list_total=Window(Count("pk")))[:limit])
    return WorkList(rows, rows[0].list_total if rows else 0)


@dataclass(frozen=True)
class Due:
    course: Course
    kind: str  # "session" or "maintenance"
    earliest: dt.datetime | dt.date
    latest: dt.datetime | dt.date
    overdue: bool


def due_courses(
    clinic: Clinic,
    now: dt.datetime,
    specs: dict[int, Protocol] | None = None,
    limit: int | None = None,
    times: list[CourseTimes] | None = None,
) -> WorkList:
    """Courses whose next session window has opened (or passed), and completed courses whose
    maintenance window has opened, most overdue first. Every open course is judged from plain
    values (`times`, as Today reads them for the cadence list too); only the `limit` rows
    shown are read as objects, with their patients."""
    tz = clinic.tz
    today = now.astimezone(tz).date()
    specs = specs if specs is not None else ClinicProtocol.specs_of(clinic)
    found: list[tuple[int, str, dt.datetime | dt.date, dt.datetime | dt.date, bool]] = []
    for t in times if times is not None else course_times(clinic):
        spec = specs[t.protocol_id]
        if t.status == Course.Status.ACTIVE:
            w = logic.next_window(t.last_at, t.cadence_days, spec.cadence.tolerance_days.v, tz)
            if w.earliest <= now:
                found.append((t.pk, "session", w.earliest, w.latest, now > w.latest))
        else:
            window = logic.maintenance_window(t.last_at.astimezone(tz).date(), spec)
            start, end = dt.date.fromisoformat(window["from"]), dt.date.fromisoformat(window["to"])
            if start <= today:
                found.append((t.pk, "maintenance", start, end, today > end))
    found.sort(key=lambda row: (not row[4], str(row[3])))
    shown = found if limit is None else found[:limit]
    loaded = (
        Course.objects.select_related("patient")
        # Only what the row needs: the patient's name, and their phone for the call button.
        .only("patient__first_name", "patient__last_name", "patient__phone")
        .in_bulk([row[0] for row in shown])
    )
    rows = [Due(loaded[pk], kind, start, end, late) for pk, kind, start, end, late in shown]
    return WorkList(rows, len(found))


def own_first(groups: dict[str, list[Any]], name: str | None) -> dict[str, list[Any]]:
    """The groups by practitioner's name, with the caller's own group first."""
    if name is None or name not in groups:
        return groups
    return {name: groups[name], **{k: v for k, v in groups.items() if k != name}}


def follow_ups(clinic: Clinic, limit: int | None = ROWS) -> WorkList:
    """Open follow-ups, urgent first, then the longest open."""
    found = (
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
        .order_by("-priority", "opened_at", "id")
    )
    return _first(found, limit)


def allergy_tests(clinic: Clinic, specs: dict[int, Protocol], limit: int | None = ROWS) -> WorkList:
    """Allergy tests given and not yet read, the longest waiting first, each with the time it
    becomes readable (from `specs`: not each row's protocol document, nor the course's JSON)."""
    found = (
        AllergyTest.objects.filter(course__clinic=clinic, readings__isnull=True)
        .exclude(course__status=Course.Status.STOPPED)
        .select_related("course__patient")
        .only(
            "given_at",
            "course__protocol_id",
            "course__patient__first_name",
            "course__patient__last_name",
        )
        .order_by("given_at", "id")
    )
    tests = _first(found, limit)
    rows = [
        {
            "test": t,
            "readable_from": t.given_at
            + dt.timedelta(hours=specs[t.course.protocol_id].allergy_test.wait_hours.v),
        }
        for t in tests.rows
    ]
    return WorkList(rows, tests.total)


def lots(clinic: Clinic, today: dt.date, limit: int | None = ROWS) -> WorkList:
    """Lots recalled, expired or expiring within NEAR_EXPIRY_DAYS: recalled first, then by
    expiry."""
    found = (
        Lot.objects.filter(product__clinic=clinic)
        .filter(Q(recalled=True) | Q(expires_on__lte=today + dt.timedelta(days=NEAR_EXPIRY_DAYS)))
        .select_related("product")
        .order_by("-recalled", "expires_on", "id")
    )
    chosen = _first(found, limit)
    rows = [{"lot": lot, "expired": lot.expires_on < today} for lot in chosen.rows]
    return WorkList(rows, chosen.total)


def build(
    clinic: Clinic, now: dt.datetime | None = None, me: Any = None, manager: bool = False
) -> dict[str, Any]:
    """Today's page. `me`, the person looking, sees their own visits and sessions first; a
    `manager` also sees the safety alerts."""
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
    specs = ClinicProtocol.specs_of(clinic)
    times = course_times(clinic)
    my_name = me.display_name if me is not None else None
    return {
        "now": now,
        "my_name": my_name,
        "my_visits": visits_by_practitioner.get(my_name, []) if my_name else [],
        "my_sessions": by_practitioner.get(my_name, []) if my_name else [],
        "sessions_by_practitioner": own_first(by_practitioner, my_name),
        "visits_by_practitioner": own_first(visits_by_practitioner, my_name),
        "cadence_flags": _bounded(cadence_flags(clinic, now, specs, times), ROWS),
        "change_requests": list(
            ChangeRequest.objects.filter(clinic=clinic, handled_at__isnull=True)
            .select_related("appointment__patient")
            .order_by("planned_for")
        ),
        "due": due_courses(clinic, now, specs, ROWS, times),
        "follow_ups": follow_ups(clinic),
        "allergy_tests": allergy_tests(clinic, specs),
        "lots": lots(clinic, now.astimezone(tz).date()),
        # Open multi-dose vials near or past their beyond-use time, and products to reorder.
        "stock_alerts": stock.alerts(clinic.pk, now),
        # Reminders and infection-watch prompts go out only while the worker runs; staff are
        # told when it has stopped, so they can phone patients and call whoever runs the server.
        "worker": worker_state(now),
        # Surveillance alerts not yet closed, for managers only, each headline different from
        # the others (surveil.alert_rows).
        "safety_alerts": alert_rows(
            list(
                SafetyAlert.objects.filter(clinic=clinic)
                .exclude(status=SafetyAlert.Status.CLOSED)
                .select_related("lot__product", "practitioner")
                .order_by("-raised_at", "-id")
            ),
            clinic,
        )
        if manager
        else [],
        # Each follow-up closes from Today with how it ended.
        "follow_up_resolutions": FollowUp.Resolution.choices,
    }


# Each work list's own page, by the name in its address: its title and how to build it whole.
WORK_LISTS: dict[str, str] = {
    "follow-ups": "Follow-ups",
    "due": "Due or overdue",
    "cadence": "Cadence broken",
    "allergy-tests": "Allergy tests to read",
    "lots": "Lots recalled or near expiry",
}


def work_list(clinic: Clinic, name: str, now: dt.datetime | None = None) -> WorkList:
    """Every row of one of Today's lists (`name` is a key of WORK_LISTS)."""
    now = now or timezone.now()
    if name == "follow-ups":
        return follow_ups(clinic, limit=None)
    if name == "lots":
        return lots(clinic, now.astimezone(clinic.tz).date(), limit=None)
    specs = ClinicProtocol.specs_of(clinic)
    if name == "allergy-tests":
        return allergy_tests(clinic, specs, limit=None)
    if name == "due":
        return due_courses(clinic, now, specs)
    if name == "cadence":
        return _bounded(cadence_flags(clinic, now, specs), None)
    raise KeyError(name)


def patients_shown(context: dict[str, Any]) -> list[int]:
    """Every patient whose name the Today page shows, for the audit trail."""
    ids: list[int] = []
    for rows in context["sessions_by_practitioner"].values():
        ids += [s.course.patient_id for s in rows]
    for visits in context["visits_by_practitioner"].values():
        ids += [a.patient_id for a in visits]
    ids += [c.appointment.patient_id for c in context["change_requests"]]
    ids += list_patients("cadence", context["cadence_flags"])
    ids += list_patients("due", context["due"])
    ids += list_patients("follow-ups", context["follow_ups"])
    ids += list_patients("allergy-tests", context["allergy_tests"])
    return ids


def list_patients(name: str, found: WorkList) -> list[int]:
    """Every patient whose name a work list shows, for the audit trail."""
    if name in ("cadence", "due"):
        return [row.course.patient_id for row in found.rows]
    if name == "follow-ups":
        return [f.session.course.patient_id for f in found.rows]
    if name == "allergy-tests":
        return [t["test"].course.patient_id for t in found.rows]
    return []
