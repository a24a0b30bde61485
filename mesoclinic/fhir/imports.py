"""Importing patients from FHIR R4B, beside the CSV import (imports/).

The files are Bundles in JSON, or NDJSON with one resource a line (a bulk `$export`'s files,
mesoclinic's own or another system's), one file or several at once. Their Patient resources
become patients (name, birth date, gender, email and phone, address) and their
AllergyIntolerance resources about them become their allergies; resources of any other type
are counted and left out. The import is all or nothing: every entry is checked first, each
problem is reported in a sentence that names the entry (its place: the Bundle's entry number
or the file's line; and its fullUrl or id), and nothing is written unless there is none. A
patient is checked by the same registration form as a patient typed in or read from a CSV
file, and duplicates are found as the CSV import finds them: the same name and date of birth
twice in the files, or already on file.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from fhir.resources.R4B.allergyintolerance import AllergyIntolerance
from fhir.resources.R4B.patient import Patient as FhirPatient
from pydantic import ValidationError

from mesoclinic.access import MANAGE, audit_list, patients_for
from mesoclinic.accounts.models import AuditEvent, Clinic, audit_many
from mesoclinic.imports import logic
from mesoclinic.patients.models import Allergy, Patient
from mesoclinic.web.context import caller
from mesoclinic.web.forms import PatientForm
from mesoclinic.web.imports_forms import size_words

# As many entries as the CSV import takes rows, with room for each patient's allergies.
MAX_ENTRIES = 5 * logic.MAX_ROWS
_SEXES = {"female", "male", "other", "unknown"}


class BundleProblem(ValueError):
    """The file cannot be read as a Bundle at all; the message says why, in words."""


@dataclass(frozen=True)
class Problem:
    index: int  # the entry's place among every file's entries, to list problems in order
    name: str  # the entry's fullUrl, else its resource's Type/id
    problem: str
    where: str = ""  # the entry's place in words: "Entry 3", "Patient.ndjson, line 3"

    @property
    def sentence(self) -> str:
        where = (self.where or f"Entry {self.index}") + (f" ({self.name})" if self.name else "")
        return f"{where}: {self.problem}"


@dataclass(frozen=True)
class Entry:
    """One resource to import, with where it was read."""

    where: str
    data: dict[str, Any]  # the Bundle's entry: its resource, and its fullUrl if it had one


@dataclass
class Report:
    problems: list[Problem] = field(default_factory=list)
    patients: list[int] = field(default_factory=list)
    allergies: int = 0
    # Entries of types that are not imported, counted by type.
    left_out: dict[str, int] = field(default_factory=dict)

    @property
    def imported(self) -> bool:
        return not self.problems


@dataclass
class _NewPatient:
    index: int
    patient: Patient
    keys: set[str]  # the references an allergy may use for this patient


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith(".") else f"{text}."


def _pydantic_problems(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:3]:
        where = ".".join(str(p) for p in error["loc"] if p != "__root__")
        parts.append(f"{where or 'the resource'}: {error['msg']}")
    return _sentence("It is not a valid FHIR R4B resource (" + "; ".join(parts) + ")")


def _patient_data(resource: dict[str, Any]) -> dict[str, str]:
    """The registration form's fields from a Patient resource."""
    names = resource.get("name") or []
    name = next((n for n in names if n.get("use") == "official"), names[0] if names else {})
    given = " ".join(name.get("given") or [])
    family = name.get("family") or ""
    if not (given or family) and name.get("text"):
        given, _, family = str(name["text"]).rpartition(" ")
    telecom = resource.get("telecom") or []

    def first(system: str) -> str:
        return next((str(t.get("value", "")) for t in telecom if t.get("system") == system), "")

    address = ""
    if addresses := resource.get("address"):
        a = addresses[0]
        address = a.get("text") or ", ".join(
            part
            for part in [
                *(a.get("line") or []),
                " ".join(p for p in (a.get("postalCode"), a.get("city")) if p),
                a.get("state"),
                a.get("country"),
            ]
            if part
        )
    gender = resource.get("gender") or "unknown"
    return {
        "first_name": given,
        "last_name": family,
        "date_of_birth": str(resource.get("birthDate") or ""),
        "sex": gender if gender in _SEXES else "unknown",
        "email": first("email"),
        "phone": first("phone"),
        "address": address,
    }


def _form_data(values: dict[str, str]) -> dict[str, str]:
    """Every field of the registration form: the Bundle's values, the form's defaults for
    the rest (as the CSV import fills them)."""
    data: dict[str, str] = {}
    for name, f in PatientForm.base_fields.items():
        data[name] = values.get(name, "")
        if data[name] == "" and f.initial not in (None, ""):
            data[name] = str(f.initial() if callable(f.initial) else f.initial)
    return data


def _form_problem(form: PatientForm) -> str:
    parts = []
    for name, errors in form.errors.items():
        label = form.fields[name].label if name in form.fields else None
        for error in errors:
            parts.append(f"{label or name} — {error}" if name != "__all__" else str(error))
    return _sentence("It cannot be registered: " + "; ".join(str(p) for p in parts))


def _same_person(p: Patient) -> tuple[str, str, dt.date]:
    return (logic.normalise(p.first_name), logic.normalise(p.last_name), p.date_of_birth)


def _allergy(resource: dict[str, Any]) -> Allergy | None:
    """An Allergy (without its patient) from an AllergyIntolerance; None for one entered in
    error, which is no allergy."""
    status = resource.get("verificationStatus") or {}
    if any(c.get("code") == "entered-in-error" for c in status.get("coding") or []):
        return None
    code = resource.get("code") or {}
    codings = code.get("coding") or [{}]
    substance = code.get("text") or codings[0].get("display") or codings[0].get("code") or ""
    reaction = ""
    for r in resource.get("reaction") or []:
        for m in r.get("manifestation") or []:
            reaction = reaction or m.get("text") or ((m.get("coding") or [{}])[0].get("display"))
    return Allergy(substance=str(substance)[:200], reaction=str(reaction or "")[:200])


def _bundle_entries(name: str, found: dict[str, Any]) -> list[Entry]:
    entries = found.get("entry") or []
    if not isinstance(entries, list) or not entries:
        raise BundleProblem(f"{name}: this Bundle has no entries.")
    return [Entry(f"{name}, entry {n}", e) for n, e in enumerate(entries, start=1)]


def _ndjson_entries(name: str, text: str) -> list[Entry]:
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            resource = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BundleProblem(
                f"{name}, line {n}: this line is not JSON ({exc.msg}). Each line of an NDJSON "
                "file holds one resource."
            ) from exc
        if not isinstance(resource, dict) or not resource.get("resourceType"):
            raise BundleProblem(f"{name}, line {n}: this line is not a FHIR resource.")
        out.append(Entry(f"{name}, line {n}", {"resource": resource}))
    if not out:
        raise BundleProblem(f"{name}: this file holds no resources.")
    return out


def read_file(name: str, data: bytes) -> list[Entry]:
    """The entries of one file: a Bundle in JSON, or NDJSON with a resource a line.
    BundleProblem when it is neither."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BundleProblem(f"{name}: this file is not text in UTF-8 ({exc.reason}).") from exc
    try:
        found = json.loads(text)
    except json.JSONDecodeError:
        if text.lstrip().startswith("{") and "\n" in text.strip():
            return _ndjson_entries(name, text)
        raise BundleProblem(
            f"{name}: this file is neither a FHIR Bundle in JSON nor NDJSON."
        ) from None
    if isinstance(found, dict) and found.get("resourceType") == "Bundle":
        return _bundle_entries(name, found)
    if isinstance(found, dict) and found.get("resourceType"):
        return [Entry(f"{name}, line 1", {"resource": found})]
    raise BundleProblem(
        f"{name}: this file is not a FHIR Bundle: its resourceType should be Bundle."
    )


def read_files(files: list[tuple[str, bytes]]) -> list[Entry]:
    """Every file's entries, in turn; BundleProblem for a file that cannot be read, or for
    more entries than one import takes."""
    entries = [entry for name, data in files for entry in read_file(name, data)]
    if len(entries) > MAX_ENTRIES:
        raise BundleProblem(
            f"These files hold {len(entries):,} entries; at most {MAX_ENTRIES:,} can be imported "
            "at once. Split them into smaller files."
        )
    return entries


def check(
    clinic: Clinic, entries: list[Entry]
) -> tuple[Report, list[_NewPatient], list[tuple[int, str, Allergy]]]:
    """Every entry checked; nothing written."""
    report = Report()
    ready: list[_NewPatient] = []
    allergies: list[tuple[int, str, Allergy]] = []  # (index, patient reference, allergy)
    seen: dict[tuple[str, str, dt.date], int] = {}
    form: PatientForm | None = None

    def problem(index: int, name: str, words: str) -> None:
        report.problems.append(Problem(index, name, words, entries[index].where))

    for index, read in enumerate(entries):
        entry = read.data
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            problem(index, "", "It holds no resource.")
            continue
        kind = str(resource.get("resourceType") or "")
        rid = resource.get("id")
        name = str(entry.get("fullUrl") or (f"{kind}/{rid}" if rid else ""))
        if kind not in ("Patient", "AllergyIntolerance"):
            report.left_out[kind or "unknown"] = report.left_out.get(kind or "unknown", 0) + 1
            continue
        model = FhirPatient if kind == "Patient" else AllergyIntolerance
        try:
            model.model_validate({k: v for k, v in resource.items() if k != "resourceType"})
        except ValidationError as exc:
            problem(index, name, _pydantic_problems(exc))
            continue
        if kind == "AllergyIntolerance":
            target = str((resource.get("patient") or {}).get("reference") or "")
            allergy = _allergy(resource)
            if allergy is None:
                report.left_out["AllergyIntolerance entered in error"] = (
                    report.left_out.get("AllergyIntolerance entered in error", 0) + 1
                )
                continue
            if not allergy.substance:
                problem(index, name, "It does not say what the patient is allergic to.")
                continue
            allergies.append((index, target, allergy))
            continue
        form = PatientForm(_form_data(_patient_data(resource)), instance=Patient(clinic=clinic))
        if not form.is_valid():
            problem(index, name, _form_problem(form))
            continue
        patient = form.instance
        key = _same_person(patient)
        if key in seen:
            problem(
                index,
                name,
                f"{patient} born {patient.date_of_birth:%Y-%m-%d} is already at "
                f"{entries[seen[key]].where}.",
            )
            continue
        seen[key] = index
        keys = {k for k in (entry.get("fullUrl"), f"Patient/{rid}" if rid else None) if k}
        ready.append(_NewPatient(index, patient, keys))
    born = {n.patient.date_of_birth for n in ready}
    on_file = {
        (logic.normalise(first), logic.normalise(last), day)
        for first, last, day in Patient.objects.filter(
            clinic=clinic, date_of_birth__in=born
        ).values_list("first_name", "last_name", "date_of_birth")
    }
    for new in ready:
        if _same_person(new.patient) in on_file:
            problem(
                new.index,
                next(iter(sorted(new.keys)), ""),
                "A patient with this name and date of birth is already on file.",
            )
    by_key = {key: new for new in ready for key in new.keys}
    for index, target, _ in allergies:
        if target not in by_key:
            problem(
                index, "", f"Its patient ({target or 'none given'}) is not a patient imported here."
            )
    report.problems.sort(key=lambda p: p.index)
    return report, ready, allergies


def do_import(
    clinic: Clinic, files: list[tuple[str, bytes]], *, user: Any, via: str = "web"
) -> Report:
    """Import the files' patients and their allergies, or nothing (one transaction). Each file
    is named and its content given. Raises BundleProblem for a file that cannot be read."""
    entries = read_files(files)
    with transaction.atomic():
        report, ready, allergies = check(clinic, entries)
        if report.problems:
            return report
        patients = [new.patient for new in ready]
        # bulk_create skips save(): fill the columns search reads first (as the CSV import).
        for patient in patients:
            patient.refresh_search_columns()
        made = Patient.objects.bulk_create(patients, batch_size=500)
        by_key = {key: p for new, p in zip(ready, made, strict=True) for key in new.keys}
        rows = []
        for _, target, allergy in allergies:
            allergy.patient = by_key[target]
            allergy.recorded_by = user
            rows.append(allergy)
        Allergy.objects.bulk_create(rows, batch_size=500)
        audit_many(
            clinic=clinic,
            user=user,
            action=AuditEvent.Action.CREATE,
            via=via,
            entries=[(p, p.pk, {"import": "fhir"}) for p in made],
        )
        report.patients = [p.pk for p in made]
        report.allergies = len(rows)
    return report


# The page.


class _Files(forms.ClearableFileInput):
    allow_multiple_selected = True


class _FilesField(forms.FileField):
    """One file or several."""

    def clean(self, data: Any, initial: Any = None) -> list[Any]:
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(d, initial) for d in data] if data else [single(None, initial)]
        return [single(data, initial)]


class BundleForm(forms.Form):
    upload = _FilesField(
        label="FHIR files",
        help_text="A Bundle in JSON, or the NDJSON files of a bulk export (Patient.ndjson and "
        "AllergyIntolerance.ndjson), from another system or from mesoclinic. Choose several "
        "files at once if you have them.",
        widget=_Files(),
        error_messages={"required": "Choose the files to import.", "empty": "This file is empty."},
    )


@login_required
def page(request: HttpRequest) -> HttpResponse:
    """Managers only, as the CSV import is."""
    who = caller(request)
    found = who.require(MANAGE)
    form = BundleForm(request.POST, request.FILES) if request.method == "POST" else BundleForm()
    report: Report | None = None
    created: list[Patient] = []
    if request.method == "POST" and form.is_valid():
        uploads = form.cleaned_data["upload"]
        size = sum(u.size or 0 for u in uploads)
        limit = int(settings.IMPORT_MAX_BYTES)
        if size > limit:
            form.add_error(
                "upload",
                f"These files come to {size_words(size)}; at most {size_words(limit)} can be "
                "imported at once. Split them into smaller files.",
            )
        else:
            try:
                files = [(str(u.name), u.read()) for u in uploads]
                report = do_import(found.clinic, files, user=request.user)
            except BundleProblem as exc:
                form.add_error("upload", str(exc))
            else:
                created = list(patients_for(who, MANAGE).filter(pk__in=report.patients[:50]))
                # The page names the patients it lists, as the CSV import's result does.
                audit_list(who, "FHIR import result", [p.pk for p in created])
    status = 422 if report is not None and report.problems else 200
    return render(
        request,
        "web/imports/fhir.html",
        {"page": "import", "form": form, "report": report, "created": created},
        status=status,
    )
