"""Correcting a measurement's value or an allergy test reading's result, with a reason. The
value as charted stays on record and in view beside the correction (courses.Amendment)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from mesoclinic.access import access_allergy_test, access_measurement
from mesoclinic.courses import actions as course_actions
from mesoclinic.courses.models import AllergyReading, Amendment
from mesoclinic.outcomes import actions as outcome_actions
from mesoclinic.web import forms
from mesoclinic.web.chart import chart_url
from mesoclinic.web.context import CLINICAL, caller, reading
from mesoclinic.web.forms import put_errors


def _result_words(code: str) -> str:
    return str(dict(AllergyReading.Result.choices).get(code, code))


def _history(rows: Any, words: Callable[[str], str]) -> list[Amendment]:
    """The record's amendments, oldest first, each with its before and after in words."""
    out = list(rows.select_related("amended_by"))
    for a in out:
        a.original_label = words(a.original)
        a.amended_label = words(a.amended)
    return out


@login_required
def amend_measurement(request: HttpRequest, measurement_id: int) -> HttpResponse:
    """Correct a measurement's value; progress and analytics read the corrected value."""
    measurement = access_measurement(
        caller(request), measurement_id, CLINICAL, view=reading(request)
    )
    unit = measurement.unit
    form = forms.AmendMeasurementForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            outcome_actions.do_amend_measurement(
                measurement,
                value=form.cleaned_data["value"],
                reason=form.cleaned_data["reason"],
                user=request.user,
                via="web",
            )
        except ValidationError as exc:
            put_errors(form, exc)
        else:
            messages.success(request, f"{measurement.get_kind_display()} corrected.")
            return redirect("web:course_progress", course_id=measurement.course_id)
    return render(
        request,
        "web/amend/measurement.html",
        {
            "page": "patients",
            "measurement": measurement,
            "course": measurement.course,
            "patient": measurement.course.patient,
            "amendments": _history(measurement.amendments.all(), lambda v: f"{v} {unit}".strip()),
            "form": form,
        },
        status=400 if form.errors else 200,
    )


def _reading_of(test_id: int, reading_id: int, request: HttpRequest) -> AllergyReading:
    """The reading, found among the readings of a test the caller may correct."""
    test = access_allergy_test(caller(request), test_id, CLINICAL, view=reading(request))
    found = test.readings.filter(pk=reading_id).first()
    if found is None:
        raise Http404("No such reading.")
    found.test = test
    return found


@login_required
def amend_allergy_reading(request: HttpRequest, test_id: int, reading_id: int) -> HttpResponse:
    """Correct an allergy test reading's result; the session gate reads the corrected one."""
    found = _reading_of(test_id, reading_id, request)
    course = found.test.course
    form = forms.AmendReadingForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            course_actions.do_amend_allergy_reading(
                found,
                result=form.cleaned_data["result"],
                reason=form.cleaned_data["reason"],
                user=request.user,
                via="web",
            )
        except ValidationError as exc:
            put_errors(form, exc)
        else:
            messages.success(
                request, f"Allergy test reading corrected: {found.get_result_display()}."
            )
            return redirect(chart_url(course))
    return render(
        request,
        "web/amend/reading.html",
        {
            "page": "patients",
            "reading": found,
            "course": course,
            "patient": course.patient,
            "amendments": _history(found.amendments.all(), _result_words),
            "form": form,
        },
        status=400 if form.errors else 200,
    )
