"""The patient's record beyond the chart: editing the details with their history, medications,
allergies (from the ingredient picker), the screening with its allergy follow-up, and merging
a duplicate. Objects come from the access layer; changes from patients/records.py."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from mesoclinic.access import (
    MANAGE,
    access_allergy,
    access_medication,
    access_patient,
    audit_list,
    audit_view,
    patients_for,
)
from mesoclinic.patients import records
from mesoclinic.patients.actions import do_screen_patient
from mesoclinic.patients.models import Allergy, Patient, ScreeningForm
from mesoclinic.patients.screening import AnswerError
from mesoclinic.web import forms, patient_forms
from mesoclinic.web.context import ALL_STAFF, CLINICAL, caller, reading


def merged_notice(request: HttpRequest, patient: Patient) -> HttpResponse | None:
    """A record merged into another sends its pages to the kept record, saying so."""
    if patient.merged_into_id is None:
        return None
    messages.info(
        request,
        f"Record #{patient.pk} was merged into record #{patient.merged_into_id} "
        f"on {timezone.localtime(patient.merged_at, patient.clinic.tz):%Y-%m-%d}; "
        "this is the record that was kept.",
    )
    return redirect("web:chart", patient_id=patient.merged_into_id)


def chart_context(patient: Patient, allergies: list[Allergy]) -> dict[str, Any]:
    """What the chart's record card shows (templates/web/patients/_record.html), with the
    patient's `allergies` the chart has read."""
    return {
        "record_last_edit": records.last_edit(patient),
        "record_medications": [m for m in patient.medications.all() if m.stopped_on is None],
        # Those that count: not marked as entered in error.
        "record_allergies": [a for a in allergies if a.entered_in_error_at is None],
        "record_minor": patient.is_minor_on(timezone.localdate(timezone.now(), patient.clinic.tz)),
    }


def _chosen(request: HttpRequest, name: str) -> set[int]:
    """The ingredients already ticked in a posted form, for the picker to show them ticked."""
    return {int(v) for v in request.POST.getlist(name) if v.isdigit()}


def _today(patient: Patient) -> Any:
    return timezone.localdate(timezone.now(), patient.clinic.tz)


@login_required
def edit_patient(request: HttpRequest, patient_id: int) -> HttpResponse:
    patient = access_patient(caller(request), patient_id, ALL_STAFF, view=reading(request))
    if (moved := merged_notice(request, patient)) is not None:
        return moved
    form = forms.PatientForm(request.POST or None, instance=patient)
    if request.method == "POST" and form.is_valid():
        values = {n: form.cleaned_data[n] for n in records.EDITABLE if n in form.cleaned_data}
        try:
            change = records.do_edit_patient(patient, values, user=request.user, via="web")
        except ValidationError as exc:
            forms.put_errors(form, exc)  # type: ignore[arg-type]
        else:
            if change is None:
                messages.info(request, "Nothing was changed.")
            else:
                messages.success(request, "The patient's details are saved.")
            return redirect("web:chart", patient_id=patient.pk)
    return render(
        request,
        "web/patients/edit.html",
        {"page": "patients", "patient": patient, "form": form},
    )


@login_required
def history(request: HttpRequest, patient_id: int) -> HttpResponse:
    patient = access_patient(caller(request), patient_id, ALL_STAFF, view=True)
    changes = patient.changes.select_related("changed_by").order_by("-changed_at", "-id")
    return render(
        request,
        "web/patients/history.html",
        {
            "page": "patients",
            "patient": patient,
            "changes": changes,
            "merged_from": patient.merged_from.order_by("pk"),
        },
    )


@login_required
def medications(request: HttpRequest, patient_id: int) -> HttpResponse:
    patient = access_patient(caller(request), patient_id, CLINICAL, view=reading(request))
    if (moved := merged_notice(request, patient)) is not None:
        return moved
    form = patient_forms.MedicationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            medication = records.do_add_medication(
                patient, **form.cleaned_data, user=request.user, via="web"
            )
        except ValidationError as exc:
            forms.put_errors(form, exc)
        else:
            messages.success(request, f"Recorded {medication}.")
            return redirect("web:patient_medications", patient_id=patient.pk)
    return render(
        request,
        "web/patients/medications.html",
        {
            "page": "patients",
            "patient": patient,
            "form": form,
            "medications": patient.medications.select_related("recorded_by", "stopped_by"),
            "today": _today(patient).isoformat(),
        },
    )


@login_required
@require_POST
def stop_medication(request: HttpRequest, medication_id: int) -> HttpResponse:
    medication = access_medication(caller(request), medication_id, CLINICAL)
    form = patient_forms.StopMedicationForm(request.POST)
    if form.is_valid():
        try:
            records.do_stop_medication(
                medication, stopped_on=form.cleaned_data["stopped_on"], user=request.user
            )
        except ValidationError as exc:
            forms.put_errors(form, exc)
    if form.errors:
        for errors in form.errors.values():
            messages.error(request, f"{medication}: {' '.join(str(e) for e in errors)}")
    else:
        messages.success(request, f"Stopped {medication}.")
    return redirect("web:patient_medications", patient_id=medication.patient_id)


@login_required
def allergies(request: HttpRequest, patient_id: int) -> HttpResponse:
    patient = access_patient(caller(request), patient_id, CLINICAL, view=reading(request))
    if (moved := merged_notice(request, patient)) is not None:
        return moved
    choices = records.ingredients_for(patient.clinic)
    form = patient_forms.AllergyForm(choices, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            allergy = records.do_record_allergy(patient, form.entry(), user=request.user, via="web")
        except ValidationError as exc:
            forms.put_errors(form, exc)
        else:
            messages.success(request, f"Recorded the allergy to {allergy.what}.")
            return redirect("web:patient_allergies", patient_id=patient.pk)
    return render(
        request,
        "web/patients/allergies.html",
        {
            "page": "patients",
            "patient": patient,
            "form": form,
            "allergies": patient.allergies.select_related(
                "ingredient", "recorded_by", "entered_in_error_by"
            ),
            "chosen_ingredients": _chosen(request, "ingredient"),
        },
    )


@login_required
@require_POST
def allergy_in_error(request: HttpRequest, allergy_id: int) -> HttpResponse:
    allergy = access_allergy(caller(request), allergy_id, CLINICAL)
    form = patient_forms.AllergyErrorForm(request.POST)
    if form.is_valid():
        try:
            records.do_mark_allergy_in_error(
                allergy, reason=form.cleaned_data["reason"], user=request.user
            )
        except ValidationError as exc:
            forms.put_errors(form, exc)
    if form.errors:
        for errors in form.errors.values():
            messages.error(
                request, f"The allergy to {allergy.what}: {' '.join(str(e) for e in errors)}"
            )
    else:
        messages.success(request, f"The allergy to {allergy.what} is marked as entered in error.")
    return redirect("web:patient_allergies", patient_id=allergy.patient_id)


@login_required
def ingredient_picker(request: HttpRequest) -> HttpResponse:
    """The picker's list as the user types: the ingredients matching the words, and those
    already chosen (htmx sends them along), as radio buttons or check boxes."""
    found = caller(request).require(ALL_STAFF)
    name = request.GET.get("name", "ingredient")
    if name not in ("ingredient", "allergy_ingredients"):
        name = "ingredient"
    chosen = {int(v) for v in request.GET.getlist(name) if v.isdigit()}  # already ticked
    query = request.GET.get("q", "").replace("\x00", "")[:100]
    matches = records.find_ingredients(found.clinic, query, limit=30)
    kept = [i for i in records.ingredients_for(found.clinic).filter(pk__in=chosen)]
    shown = kept + [i for i in matches if i.pk not in chosen]
    return render(
        request,
        "web/patients/_ingredient_choices.html",
        {
            "name": name,
            "multiple": name == "allergy_ingredients",
            "choices": shown,
            "chosen": chosen,
            "query": query,
        },
    )


@login_required
def screen(request: HttpRequest, patient_id: int) -> HttpResponse:
    patient = access_patient(caller(request), patient_id, CLINICAL, view=reading(request))
    if (moved := merged_notice(request, patient)) is not None:
        return moved
    questionnaire = ScreeningForm.current(patient.clinic)
    form = patient_forms.ScreeningWithAllergiesForm(
        questionnaire.questions, records.ingredients_for(patient.clinic), request.POST or None
    )
    if request.method == "POST" and form.is_valid():
        try:
            screening = do_screen_patient(
                patient, form.answers(), request.user, via="web", allergies=form.allergies()
            )
        except AnswerError as exc:
            for key, message in exc.problems:
                form.add_error(key if key in form.fields else None, message)
        except ValidationError as exc:
            forms.put_errors(form, exc, lambda k: "allergy_ingredients")
        else:
            messages.success(request, f"Screening recorded: {screening.get_result_display()}.")
            return redirect("web:chart", patient_id=patient.pk)
    return render(
        request,
        "web/screen.html",
        {
            "page": "patients",
            "patient": patient,
            "form": form,
            "version": questionnaire.version,
            "chosen_ingredients": _chosen(request, "allergy_ingredients"),
        },
    )


@login_required
def merge(request: HttpRequest, patient_id: int) -> HttpResponse:
    """A manager merges a duplicate into this record: first which record, then for each value
    that differs which one to keep."""
    who = caller(request)
    keep = access_patient(who, patient_id, MANAGE, view=reading(request))
    if (moved := merged_notice(request, keep)) is not None:
        return moved
    data = request.POST if request.method == "POST" else None
    pick = patient_forms.ChooseOtherForm(data or request.GET or None)
    other = None
    if pick.is_bound and pick.is_valid():
        other = patients_for(who, MANAGE).filter(pk=pick.cleaned_data["other"]).first()
        if other is None or other.pk == keep.pk or other.merged_into_id:
            pick.add_error("other", "No other record of this clinic has that number.")
            other = None
    form = patient_forms.MergeForm(keep, other, data) if other is not None else None
    confirmed = data is not None and "confirm" in data
    if other is not None and form is not None and confirmed and form.is_valid():
        try:
            records.do_merge_patients(
                keep, other, take_from_other=form.take_from_other(), user=request.user
            )
        except ValidationError as exc:
            forms.put_errors(pick, exc)
        else:
            messages.success(request, f"Record #{other.pk} is merged into this one.")
            return redirect("web:chart", patient_id=keep.pk)
    duplicates = records.find_duplicates(
        keep.clinic,
        first_name=keep.first_name,
        last_name=keep.last_name,
        date_of_birth=keep.date_of_birth,
        phone=keep.phone,
        email=keep.email,
        exclude=keep.pk,
    )
    if other is not None:
        audit_view(who, other, patient_id=other.pk, page="merge")
    audit_list(who, "possible duplicates", [d.patient.pk for d in duplicates])
    return render(
        request,
        "web/patients/merge.html",
        {
            "page": "patients",
            "patient": keep,
            "other": other,
            "pick": pick,
            "form": form,
            "duplicates": duplicates,
            "moves": _rows_to_move(other) if other is not None else [],
        },
    )


def _rows_to_move(other: Patient) -> list[tuple[str, int]]:
    """How many rows of each kind the merge will move, for the page to say before it is done."""
    out = []
    for model, name in records.patient_links():
        count = model._default_manager.filter(**{name: other}).count()
        if count:
            out.append((str(model._meta.verbose_name_plural), count))
    return out
