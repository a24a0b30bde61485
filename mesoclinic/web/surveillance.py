"""The safety inbox in the web app: surveillance alerts for the clinic's managers.

Who may see it: managers only. An alert about a practitioner is a judgement on a colleague's
work and an alert about a lot lists patients with their contact details, so neither goes to
practitioners or the front desk; a practitioner learns of a recalled lot from the session gate,
which refuses it. Every change goes through safety/alerts.py, as the API's do.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from mesoclinic.access import access_alert, alerts_for, audit_list
from mesoclinic.accounts.models import AuditEvent, audit
from mesoclinic.courses.tracing import lot_exposures
from mesoclinic.lib import limits
from mesoclinic.safety import alerts as inbox
from mesoclinic.safety import surveil
from mesoclinic.safety.models import SafetyAlert, SurveillanceRun
from mesoclinic.web.context import MANAGER, caller, require
from mesoclinic.web.forms import put_errors
from mesoclinic.web.manage_forms import RecallForm

RECENTLY_CLOSED = 20


class CloseForm(forms.Form):
    note = forms.CharField(
        max_length=limits.NOTES,
        label="What was found and done",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Kept with the alert and in the audit trail.",
    )


@login_required
def alerts(request: HttpRequest) -> HttpResponse:
    found = require(request, MANAGER)
    clinic = found.clinic
    mine = alerts_for(caller(request)).select_related("lot__product", "practitioner")
    live = list(mine.exclude(status=SafetyAlert.Status.CLOSED))
    closed = list(
        mine.filter(status=SafetyAlert.Status.CLOSED)
        .select_related("handled_by")
        .order_by("-handled_at")[:RECENTLY_CLOSED]
    )
    # The two lists are read together: no two of their headlines read the same.
    rows = surveil.alert_rows(live + closed, clinic)
    return render(
        request,
        "web/surveillance/alerts.html",
        {
            "page": "safety",
            "live": rows[: len(live)],
            "closed": rows[len(live) :],
            "last_run": SurveillanceRun.objects.filter(clinic=clinic).first(),
            "interval_hours": surveil.setting("SURVEIL_INTERVAL_HOURS"),
        },
    )


@login_required
def alert_detail(request: HttpRequest, alert_id: int) -> HttpResponse:
    alert = access_alert(caller(request), alert_id)
    return _detail(request, alert, CloseForm(), RecallForm())


def _detail(
    request: HttpRequest, alert: SafetyAlert, close_form: CloseForm, recall_form: RecallForm
) -> HttpResponse:
    context: dict[str, Any] = {
        "page": "safety",
        "alert": alert,
        "close_form": close_form,
        "recall_form": recall_form,
        "rate": surveil.percent(alert.adverse_sessions / max(alert.sessions, 1)),
        "baseline": surveil.percent(alert.baseline_rate),
        "headline": surveil.alert_words(alert)["headline"],
    }
    patient_ids: list[int] = []
    if alert.lot is not None:
        context["patients"] = lot_exposures(alert.lot)
        patient_ids = [p["id"] for p in context["patients"]]
    else:
        context["sessions"] = inbox.practitioner_sessions(alert)
        context["totals"] = inbox.practitioner_totals(alert)
        patient_ids = sorted({row["patient"].pk for row in context["sessions"]})
    # The page names patients (and, for a lot, how to reach them): reading it is recorded.
    audit(
        clinic=alert.clinic,
        user=request.user,
        action=AuditEvent.Action.VIEW,
        obj=alert,
        via="web",
        patients=patient_ids,
    )
    audit_list(caller(request), "safety alert", patient_ids, alert=alert.pk)
    return render(request, "web/surveillance/alert.html", context)


@login_required
@require_POST
def acknowledge(request: HttpRequest, alert_id: int) -> HttpResponse:
    alert = access_alert(caller(request), alert_id)
    try:
        inbox.do_acknowledge_alert(alert, request.user, via="web")  # type: ignore[arg-type]
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, "Alert acknowledged.")
    return redirect("web:safety_alert", alert_id=alert.pk)


@login_required
@require_POST
def close(request: HttpRequest, alert_id: int) -> HttpResponse:
    alert = access_alert(caller(request), alert_id)
    form = CloseForm(request.POST)
    if form.is_valid():
        try:
            inbox.do_close_alert(alert, request.user, form.cleaned_data["note"], via="web")  # type: ignore[arg-type]
        except ValidationError as exc:
            put_errors(form, exc)
        else:
            messages.success(request, "Alert closed.")
            return redirect("web:safety_alerts")
    return _detail(request, alert, form, RecallForm())


@login_required
@require_POST
def recall(request: HttpRequest, alert_id: int) -> HttpResponse:
    alert = access_alert(caller(request), alert_id)
    form = RecallForm(request.POST)
    if form.is_valid():
        try:
            patients = inbox.do_recall_from_alert(
                alert,
                request.user,  # type: ignore[arg-type]
                form.cleaned_data["reason"],
                via="web",
            )
        except ValidationError as exc:
            if set(getattr(exc, "error_dict", {})) - set(form.fields):
                # The lot or the alert is in the wrong state: say so above the page.
                messages.error(request, " ".join(exc.messages))
                return redirect("web:safety_alert", alert_id=alert.pk)
            put_errors(form, exc)
        else:
            messages.success(
                request,
                f"Lot {alert.lot.lot_number} is recalled. "  # type: ignore[union-attr]
                f"{len(patients)} patient{'s' if len(patients) != 1 else ''} received it: "
                "they are listed below for follow-up.",
            )
            return redirect("web:safety_alert", alert_id=alert.pk)
    return _detail(request, alert, CloseForm(), form)


@login_required
@require_POST
def run_now(request: HttpRequest) -> HttpResponse:
    found = require(request, MANAGER)
    report = surveil.run(found.clinic, user=request.user, via="web")  # type: ignore[arg-type]
    messages.success(
        request,
        f"Surveillance read {report.sessions} sessions: {len(report.alarms)} signalling, "
        f"{len(report.raised)} new alert{'s' if len(report.raised) != 1 else ''}.",
    )
    return redirect("web:safety_alerts")
