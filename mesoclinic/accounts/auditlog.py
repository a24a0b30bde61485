"""Reading the audit trail back: one clinic's rows, filtered the way the managers' audit
viewer (web/audit.py) and GET /api/v1/audit filter them, newest first."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import QuerySet

from mesoclinic.accounts.models import AuditEvent, Clinic


@dataclass(frozen=True)
class AuditFilter:
    """Each field narrows the rows; None leaves that side open. Dates are the clinic's local
    days, both ends included."""

    patient_ids: frozenset[int] | None = None
    user_id: int | None = None
    action: str | None = None
    since: dt.date | None = None
    until: dt.date | None = None

    def as_detail(self) -> dict[str, object]:
        """The filter in an audit row's detail, so an export records what it held."""
        return {
            "patients": sorted(self.patient_ids) if self.patient_ids is not None else None,
            "user": self.user_id,
            "action": self.action,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
        }


def _start_of(day: dt.date, clinic: Clinic) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=clinic.tz)


def events(clinic: Clinic, f: AuditFilter) -> QuerySet[AuditEvent]:
    """The clinic's audit rows that pass `f`, newest first. Rows of other clinics, and rows
    with no clinic, are never among them."""
    rows = AuditEvent.objects.filter(clinic=clinic).select_related("user")
    if f.patient_ids is not None:
        rows = rows.filter(patient_id__in=f.patient_ids)
    if f.user_id is not None:
        rows = rows.filter(user_id=f.user_id)
    if f.action:
        rows = rows.filter(action=f.action)
    if f.since is not None:
        rows = rows.filter(at__gte=_start_of(f.since, clinic))
    if f.until is not None:
        rows = rows.filter(at__lt=_start_of(f.until + dt.timedelta(days=1), clinic))
    return rows.order_by("-at", "-pk")


def safe_cell(value: object) -> str:
    """A CSV cell a spreadsheet will not run as a formula (OWASP's CSV injection advice)."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in {"=", "+", "-", "@", "\t", "\r"} else text
