"""Measurements and progress in the web: record a visit's measurements, a course's progress
page with its chart, and the progress report as PDF. Recording goes through the same action
as the API (outcomes.actions); the chart's course card gets its rows from `course_row`."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_safe

from mesoclinic.access import access_course
from mesoclinic.accounts.models import AuditEvent, audit
from mesoclinic.courses.models import Course, Session
from mesoclinic.outcomes import actions, logic, progress, scales
from mesoclinic.outcomes.models import Measurement
from mesoclinic.protocols.vocab import Area
from mesoclinic.web.chart import chart_url
from mesoclinic.web.context import ALL_STAFF, CLINICAL, caller, reading
from mesoclinic.web.forms import put_errors


def _score_input(label: str, low: int, high: int, help_text: str = "") -> forms.CharField:
    # A text field: outcomes.logic names the reason for a bad value, the same words as the API.
    return forms.CharField(
        label=label,
        required=False,
        help_text=help_text,
        widget=forms.NumberInput(attrs={"min": low, "max": high, "step": 1}),
    )


def _measure_input(label: str, unit: str) -> forms.CharField:
    return forms.CharField(
        label=f"{label} ({unit})",
        required=False,
        widget=forms.NumberInput(attrs={"min": 0, "step": "0.1"}),
    )


class VisitMeasurementsForm(forms.Form):
    """One visit's measurements, recorded together or not at all."""

    taken_at = forms.DateTimeField(
        label="Taken at", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    session = forms.TypedChoiceField(
        label="At session", required=False, coerce=int, empty_value=None
    )
    area = forms.ChoiceField(label="Area scored", required=False)
    notes = forms.CharField(
        label="Notes", required=False, widget=forms.Textarea(attrs={"rows": 2}), max_length=2000
    )

    def __init__(self, course: Course, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.course = course
        labels = dict(Area.choices)
        area = self.fields["area"]
        session = self.fields["session"]
        assert isinstance(area, forms.ChoiceField) and isinstance(session, forms.ChoiceField)
        area.choices = [(a, labels.get(a, a)) for a in course.areas]
        tz = course.clinic.tz
        session.choices = [("", "None (a baseline or a review)")] + [
            (s.pk, f"Session {s.number}, {s.performed_at.astimezone(tz):%a %d %b %Y}")
            for s in course.sessions.order_by("performed_at")
        ]
        for key, label in scales.HEXSEL_ITEMS:
            self.fields[f"hexsel_{key}"] = _score_input(f"Hexsel: {label}", 0, 3, "0–3")
        grades = "; ".join(f"{k} {v.lower()}" for k, v in scales.NURNBERGER_MULLER_GRADES.items())
        self.fields["nm"] = _score_input("Nürnberger–Müller grade", 0, 3, grades)
        for site in scales.SITES:
            self.fields[f"circ_{site.key}"] = _measure_input(f"Circumference: {site.label}", "cm")
        self.fields["weight"] = _measure_input("Weight", "kg")
        gais = "; ".join(f"{k} {v.lower()}" for k, v in scales.GAIS_GRADES.items())
        self.fields["gais"] = _score_input("GAIS (at a review, after session 1)", 1, 5, gais)
        self.fields["satisfaction"] = _score_input(
            "Patient satisfaction",
            scales.SATISFACTION_MIN,
            scales.SATISFACTION_MAX,
            "0–10, the patient's own answer (a plain rating; SPEC names no instrument).",
        )

    def readings(self) -> list[tuple[str, logic.Raw]]:
        """The readings entered, each with its field prefix (see `field_of`)."""
        d = self.cleaned_data
        out: list[tuple[str, logic.Raw]] = []
        items = {k: d.get(f"hexsel_{k}", "") for k, _ in scales.HEXSEL_ITEMS}
        if any(str(v).strip() for v in items.values()):
            out.append(("hexsel.", logic.Raw(scales.HEXSEL, items=items, area=d.get("area", ""))))
        if str(d.get("nm", "")).strip():
            out.append(
                ("nm.", logic.Raw(scales.NURNBERGER_MULLER, d["nm"], area=d.get("area", "")))
            )
        for site in scales.SITES:
            value = d.get(f"circ_{site.key}", "")
            if str(value).strip():
                out.append(
                    (f"circ_{site.key}.", logic.Raw(scales.CIRCUMFERENCE, value, site=site.key))
                )
        for name, kind in (
            ("weight", scales.WEIGHT),
            ("gais", scales.GAIS),
            ("satisfaction", scales.SATISFACTION),
        ):
            if str(d.get(name, "")).strip():
                out.append((f"{name}.", logic.Raw(kind, d[name])))
        return out


def field_of(problem: str) -> str | None:
    """The form field an action's problem key belongs to: 'hexsel.items.depth' is
    hexsel_depth, 'circ_waist.value' is circ_waist, 'nm.area' is area."""
    if problem in ("taken_at", "session", "area"):
        return problem
    head, _, rest = problem.partition(".")
    if head == "hexsel" and rest.startswith("items."):
        return f"hexsel_{rest.removeprefix('items.')}"
    if rest == "area":
        return "area"
    if head in ("nm", "weight", "gais", "satisfaction") or head.startswith("circ_"):
        return head
    return None


@login_required
def record_measurements(request: HttpRequest, course_id: int) -> HttpResponse:
    course = access_course(caller(request), course_id, CLINICAL, view=reading(request))
    now_local = timezone.now().astimezone(course.clinic.tz).strftime("%Y-%m-%dT%H:%M")
    form = VisitMeasurementsForm(
        course, request.POST if request.method == "POST" else None, initial={"taken_at": now_local}
    )
    if request.method == "POST" and form.is_valid():
        try:
            rows = actions.do_record_measurements(
                course,
                form.readings(),
                taken_at=form.cleaned_data["taken_at"],
                session=form.cleaned_data["session"],
                notes=form.cleaned_data["notes"],
                user=request.user,
                via="web",
            )
        except ValidationError as exc:
            put_errors(form, exc, field_of)
        else:
            what = ", ".join(sorted({r.get_kind_display() for r in rows}))
            messages.success(request, f"Recorded {len(rows)} measurement(s): {what}.")
            return redirect(chart_url(course))
    return render(
        request,
        "web/outcomes/record.html",
        {
            "page": "patients",
            "course": course,
            "patient": course.patient,
            "form": form,
            "hexsel_fields": [form[f"hexsel_{k}"] for k, _ in scales.HEXSEL_ITEMS],
            "circ_fields": [form[f"circ_{s.key}"] for s in scales.SITES],
            "baseline_needed": course.clinic.baseline_required and not course.sessions.exists(),
        },
        status=400 if form.errors else 200,
    )


def panels(course: Course, found: logic.Progress, prefix: str = "") -> list[dict[str, Any]]:
    """Each series with its SVG, its change in words and its data table rows."""
    out = []
    for n, s in enumerate(found.series):
        out.append(
            {
                "series": s,
                "svg": mark_safe(progress.svg(s, found, f"{prefix}c{course.pk}-s{n}")),  # noqa: S308
                "change": logic.describe_change(s),
                "change_percent": s.change_percent,
                "caption": progress.trajectory_caption(s.trajectory)
                if s.trajectory
                else progress.no_trajectory_caption(s, found),
            }
        )
    return out


def course_row(
    course: Course,
    measurements: list[Measurement] | None = None,
    sessions: list[Session] | None = None,
) -> dict[str, Any]:
    """The keys the chart's course card reads (templates/web/outcomes/_course_outcomes.html).
    `measurements` (by time taken) and `sessions` (by time), when given, are the course's
    records already read: the chart reads them once for all of a patient's courses."""
    if measurements is None:
        measurements = list(course.measurements.order_by("taken_at", "id"))
    found = progress.course_progress(course, measurements, sessions)
    return {
        "outcomes": {
            "progress": found,
            "panels": panels(course, found, "chart-"),
            "latest": measurements[::-1][:8],
            "count": len(measurements),
        }
    }


def _with_site_labels(measurements: Any) -> list[Measurement]:
    out = list(measurements)
    for m in out:
        site = scales.SITE_BY_KEY.get(m.site)
        m.site_label = site.label if site else m.site
    return out


@login_required
@require_safe
def course_progress(request: HttpRequest, course_id: int) -> HttpResponse:
    course = access_course(caller(request), course_id, ALL_STAFF)
    audit(
        clinic=course.clinic,
        user=request.user,
        action=AuditEvent.Action.VIEW,
        obj=course,
        patient_id=course.patient_id,
        via="web",
        page="progress",
    )
    found = progress.course_progress(course)
    return render(
        request,
        "web/outcomes/progress.html",
        {
            "page": "patients",
            "course": course,
            "patient": course.patient,
            "progress": found,
            "panels": panels(course, found),
            "measurements": _with_site_labels(
                course.measurements.select_related("session", "recorded_by")
            ),
        },
    )


@login_required
@require_safe
def progress_pdf(request: HttpRequest, course_id: int) -> HttpResponse:
    from mesoclinic.web import documents

    course = access_course(caller(request), course_id, ALL_STAFF)
    return documents._pdf(
        request,
        documents.progress_content(course),
        f"course-{course.pk}-progress.pdf",
        clinic=course.clinic,
        obj=course,
        patient_id=course.patient_id,
        document="progress_report",
    )
