"""Safety surveillance in the JSON API: the alerts inbox, acknowledging, closing, recalling the
lot an alert names, and running surveillance now. Managers only, as in the web app
(web/surveillance.py says why).

Registered on the NinjaAPI of views.py by ApiConfig.ready. A bad input is 422 naming the field;
acting on an alert in the wrong state (already closed, lot already recalled) is 409. The list of
patients who received a lot is GET /lots/{id}/patients (views.py), which this module reuses.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpRequest
from ninja import Schema
from ninja.errors import HttpError
from pydantic import Field

from mesoclinic.access import access_alert, alerts_for
from mesoclinic.api.auth import MANAGER, caller
from mesoclinic.api.views import api
from mesoclinic.safety import alerts as inbox
from mesoclinic.safety import surveil
from mesoclinic.safety.models import SafetyAlert

# A refusal about the alert's or the lot's state, not about the input.
STATE_FIELDS = {"status", "lot", "alert"}


class CloseIn(Schema):
    note: str = Field(min_length=1, max_length=5000)


class RecallFromAlertIn(Schema):
    reason: str = Field(min_length=1, max_length=5000)


class SurveilIn(Schema):
    dry_run: bool = False


def alert_out(a: SafetyAlert) -> dict[str, Any]:
    tz = a.clinic.tz
    return {
        "id": a.pk,
        "method": a.method,
        "subject": a.subject,
        "subject_key": a.subject_key,
        "lot": a.lot_id,
        "lot_number": a.lot.lot_number if a.lot else None,
        "product": a.lot.product.name if a.lot else None,
        "lot_recalled": a.lot.recalled if a.lot else None,
        "practitioner": a.practitioner_id,
        "practitioner_name": a.practitioner.display_name if a.practitioner else None,
        "raised_at": a.raised_at.astimezone(tz),
        "sessions": a.sessions,
        "adverse_sessions": a.adverse_sessions,
        "baseline_rate": a.baseline_rate,
        "statistic": a.statistic,
        "threshold": a.threshold,
        "message": a.message,
        "status": a.status,
        "handled_by": a.handled_by_id,
        "handled_at": a.handled_at.astimezone(tz) if a.handled_at else None,
        "note": a.note,
    }


def _act(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run an inbox action; a refusal about the state of things is 409, about input 422."""
    try:
        return fn(*args, **kwargs)
    except ValidationError as exc:
        fields = set(getattr(exc, "error_dict", {}) or {})
        if fields and fields <= STATE_FIELDS:
            raise HttpError(409, " ".join(exc.messages)) from exc
        raise


@api.get("/safety/alerts", tags=["safety"])
def list_alerts(request: HttpRequest, status: str = "live") -> list[dict[str, Any]]:
    """The clinic's alerts: `status` is live (open and acknowledged, the default), open,
    acknowledged, closed or all."""
    who = caller(request)
    who.require(MANAGER)
    qs = alerts_for(who, MANAGER).select_related("clinic", "lot__product", "practitioner")
    if status == "live":
        qs = qs.exclude(status=SafetyAlert.Status.CLOSED)
    elif status in SafetyAlert.Status.values:
        qs = qs.filter(status=status)
    elif status != "all":
        raise ValidationError({"status": "must be one of live, open, acknowledged, closed or all."})
    return [alert_out(a) for a in qs[:500]]


@api.get("/safety/alerts/{alert_id}", tags=["safety"])
def get_alert(request: HttpRequest, alert_id: int) -> dict[str, Any]:
    return alert_out(access_alert(caller(request), alert_id))


@api.post("/safety/alerts/{alert_id}/acknowledge", tags=["safety"])
def acknowledge_alert(request: HttpRequest, alert_id: int) -> dict[str, Any]:
    alert = access_alert(caller(request), alert_id)
    done = _act(inbox.do_acknowledge_alert, alert, caller(request).user, via="api")
    return alert_out(done)


@api.post("/safety/alerts/{alert_id}/close", tags=["safety"])
def close_alert(request: HttpRequest, alert_id: int, payload: CloseIn) -> dict[str, Any]:
    alert = access_alert(caller(request), alert_id)
    done = _act(inbox.do_close_alert, alert, caller(request).user, payload.note, via="api")
    return alert_out(done)


@api.post("/safety/alerts/{alert_id}/recall", tags=["safety"])
def recall_from_alert(
    request: HttpRequest, alert_id: int, payload: RecallFromAlertIn
) -> dict[str, Any]:
    """Recall the lot the alert names; answers the alert and every patient who received the
    lot, with contact details, for follow-up."""
    alert = access_alert(caller(request), alert_id)
    patients = _act(
        inbox.do_recall_from_alert, alert, caller(request).user, payload.reason, via="api"
    )
    alert.refresh_from_db()
    return {"alert": alert_out(alert), "patients": patients}


@api.post("/safety/surveil", tags=["safety"])
def run_surveillance(request: HttpRequest, payload: SurveilIn) -> dict[str, Any]:
    """Run surveillance of the caller's clinic now; with `dry_run`, record and send nothing."""
    who = caller(request)
    who.require(MANAGER)
    report = surveil.run(who.clinic, dry_run=payload.dry_run, user=who.user, via="api")
    names = surveil.subject_names(who.clinic, report.alarms)
    return {
        "run": report.run.pk if report.run else None,
        "sessions": report.sessions,
        "adverse_sessions": report.adverse_sessions,
        "baseline_rate": report.baseline_rate,
        "statistics": len(report.signals),
        "signals": [
            {
                "method": s.method,
                "subject": s.key,
                "sessions": s.sessions,
                "adverse_sessions": s.adverse_sessions,
                "statistic": s.statistic,
                "threshold": s.threshold,
                "crossed_at": s.crossed_at,
                "message": surveil.describe(s, names, report.baseline_rate),
            }
            for s in report.alarms
        ],
        "raised": [a.pk for a in report.raised],
        "updated": [a.pk for a in report.updated],
        "seconds": round(report.seconds, 4),
    }
