"""Everything about a patient as one FHIR R4B Bundle (the spirit of `Patient/$everything`),
and the two ways it leaves the clinic through the web app:

- the patient's own copy: one ZIP with the Bundle, the PDFs (each consent, each course's
  plan, each session's aftercare, each measured course's progress report) and the clinical
  photos, from the portal (`/my/copy.zip`) and from the chart (`/patients/<id>/copy.zip`);
- after an outbreak: the records of the patients exposed to a lot as one Bundle
  (`/manage/lots/<id>/exposed.json`), for the regulator.

Both go through the access layer and are audited as EXPORTs of each patient's record. The
ZIP is written to a temporary file and streamed from it, so a record with many photos never
sits in memory whole.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from collections.abc import Iterable
from typing import IO, Any

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_safe

from mesoclinic.access import (
    CLINICAL,
    MANAGE,
    OWN,
    Caller,
    access_lot,
    access_patient,
    audit_list,
    clinical_consent_covers,
    patients_for,
    photos_for,
)
from mesoclinic.accounts.models import AuditEvent, Membership, PractitionerLicence, audit
from mesoclinic.courses.models import AllergyReading, Course, Session, SessionInjection, SideEffect
from mesoclinic.courses.tracing import lot_exposures
from mesoclinic.fhir import mapping
from mesoclinic.outcomes import photo_actions
from mesoclinic.outcomes.models import Measurement, Photo
from mesoclinic.patients.models import Allergy, Consent, Patient, Screening, ScreeningForm
from mesoclinic.portal.views import patient_caller, patient_page
from mesoclinic.safety.models import AdverseEvent
from mesoclinic.scheduling.models import Appointment
from mesoclinic.web import documents
from mesoclinic.web.context import caller

# Where a resource's fullUrl points when no request names the server (a file, a test).
DEFAULT_BASE = f"{mapping.BASE}/R4B/"
FHIR_JSON = "application/fhir+json; charset=utf-8"
CHUNK = 1024 * 1024


# The Bundle.


def _practitioners(patient: Patient) -> list[dict[str, Any]]:
    """The clinic's members who treated the patient: who performed a session or holds a
    visit with them."""
    users = set(
        Session.objects.filter(course__patient=patient).values_list("practitioner_id", flat=True)
    ) | set(Appointment.objects.filter(patient=patient).values_list("practitioner_id", flat=True))
    members = Membership.objects.filter(
        clinic_id=patient.clinic_id, user_id__in=users
    ).select_related("user")
    licences: dict[int, list[PractitionerLicence]] = {}
    for licence in PractitionerLicence.objects.filter(
        clinic_id=patient.clinic_id, user_id__in=users, superseded_by__isnull=True
    ).order_by("expires_on"):
        licences.setdefault(licence.user_id, []).append(licence)
    return [mapping.practitioner(m, licences.get(m.user_id, [])) for m in members.order_by("pk")]


def patient_resources(patient: Patient) -> list[dict[str, Any]]:
    """Every resource about the patient, built by the mapping functions, the patient and
    their clinic first."""
    out: list[dict[str, Any]] = [
        mapping.patient(patient),
        mapping.organization(patient.clinic),
        *_practitioners(patient),
    ]
    out += [mapping.allergy(a) for a in Allergy.objects.filter(patient=patient).order_by("pk")]
    out += [
        mapping.test_reaction(r)
        for r in AllergyReading.objects.filter(test__course__patient=patient)
        .exclude(result=AllergyReading.Result.NONE)
        .select_related("test__course")
        .prefetch_related("test__course__products")
        .order_by("pk")
    ]
    out += [
        mapping.consent(c)
        for c in Consent.objects.filter(patient=patient).select_related("patient").order_by("pk")
    ]
    # The screenings, each after the version of the form it answered.
    screenings = list(
        Screening.objects.filter(patient=patient).select_related("form", "patient").order_by("pk")
    )
    latest = (
        ScreeningForm.objects.filter(clinic_id=patient.clinic_id)
        .order_by("-version")
        .values_list("pk", flat=True)
        .first()
    )
    forms = {s.form_id: s.form for s in screenings}
    for form_id in sorted(forms):
        form = forms[form_id]
        form.clinic = patient.clinic
        out.append(mapping.questionnaire(form, current=form_id == latest))
    out += [mapping.questionnaire_response(s) for s in screenings]
    out += [
        mapping.care_plan(course)
        for course in Course.objects.filter(patient=patient)
        .select_related("protocol")
        .prefetch_related("sessions")
        .order_by("pk")
    ]
    out += [
        mapping.appointment(a) for a in Appointment.objects.filter(patient=patient).order_by("pk")
    ]
    sessions = (
        Session.objects.filter(course__patient=patient)
        .select_related("course")
        .prefetch_related("injections")
        .order_by("pk")
    )
    out += [mapping.procedure(s, sorted({i.area for i in s.injections.all()})) for s in sessions]
    out += [
        mapping.medication_administration(i)
        for i in SessionInjection.objects.filter(session__course__patient=patient)
        .select_related("session__course", "lot__product")
        .order_by("pk")
    ]
    out += [
        mapping.observation(m)
        for m in Measurement.objects.filter(course__patient=patient)
        .select_related("course")
        .order_by("pk")
    ]
    out += [
        mapping.adverse_event(e)
        for e in AdverseEvent.objects.filter(patient=patient)
        .prefetch_related("suspected_lots__product")
        .order_by("pk")
    ]
    out += [
        mapping.side_effect(se)
        for se in SideEffect.objects.filter(session__course__patient=patient)
        .select_related("session__course")
        .prefetch_related("session__injections__lot__product")
        .order_by("pk")
    ]
    # The clinical photos the patient's clinical photo consent covers, by reference (the ZIP
    # holds the images themselves).
    photos = clinical_consent_covers(Photo.objects.filter(course__patient=patient))
    out += [
        mapping.photo_document(p)
        for p in photos.select_related("clinic", "course__patient").order_by("pk")
    ]
    return out


def _entry(resource: dict[str, Any], base: str) -> dict[str, Any]:
    return {"fullUrl": f"{base}{resource['resourceType']}/{resource['id']}", "resource": resource}


def bundle_of(patients: Iterable[Patient], base: str = DEFAULT_BASE) -> dict[str, Any]:
    """One collection Bundle of every resource about each patient. A resource shared by
    several (their clinic, a practitioner) is included once."""
    entries: dict[str, dict[str, Any]] = {}
    for patient in patients:
        for resource in patient_resources(patient):
            entry = _entry(resource, base)
            entries.setdefault(entry["fullUrl"], entry)
    bundle = {
        "type": "collection",
        "timestamp": timezone.now().isoformat(),
        "entry": list(entries.values()),
    }
    return mapping.checked(mapping.resource("Bundle", bundle))


def patient_bundle(patient: Patient, base: str = DEFAULT_BASE) -> dict[str, Any]:
    """Everything about one patient as a collection Bundle."""
    return bundle_of([patient], base)


def _base(request: HttpRequest) -> str:
    return request.build_absolute_uri("/fhir/R4B/")


# The patient's own copy.

README = """\
Your record at {clinic}, as it stood on {date}.

record.fhir.json  everything about you as an HL7 FHIR R4B Bundle, which other clinics'
                  systems can read
documents/        your signed consents, your course plans, the aftercare sheet of each
                  session and each course's progress report, as PDF
photos/           the clinical photos taken of you
"""


def write_copy(out: IO[bytes], patient: Patient, photos: Iterable[Photo], base: str) -> list[str]:
    """Write the patient's copy as a ZIP to `out`; returns the names written. A photo whose
    file is missing from storage is left out rather than failing the whole copy."""
    names: list[str] = []
    clinic = patient.clinic

    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:

        def put(name: str, content: bytes) -> None:
            zf.writestr(name, content)
            names.append(name)

        today = clinic.local(timezone.now()).date().isoformat()
        put("README.txt", README.format(clinic=clinic.name, date=today).encode())
        put(
            "record.fhir.json",
            json.dumps(patient_bundle(patient, base), indent=1).encode(),
        )
        for consent in Consent.objects.filter(patient=patient).select_related(
            "patient__clinic", "template", "witnessed_by"
        ):
            put(f"documents/consent-{consent.pk}.pdf", documents.consent_content(consent))
        courses = Course.objects.filter(patient=patient).select_related(
            "clinic", "protocol", "patient"
        )
        for course in courses.order_by("pk"):
            put(f"documents/course-{course.pk}-plan.pdf", documents.course_plan_content(course))
            if course.measurements.exists():
                put(
                    f"documents/course-{course.pk}-progress.pdf",
                    documents.progress_content(course),
                )
        for session in (
            Session.objects.filter(course__patient=patient)
            .select_related("course__clinic", "course__protocol", "course__patient")
            .order_by("pk")
        ):
            put(
                f"documents/session-{session.pk}-aftercare.pdf",
                documents.aftercare_content(session),
            )
        for photo in photos:
            extension = photo.image.name.rsplit(".", 1)[-1]
            name = f"photos/photo-{photo.pk}-{photo.area}-{photo.view}.{extension}"
            try:
                opened = photo_actions.open_image(photo)
            except FileNotFoundError:
                continue
            with opened, zf.open(name, "w") as target:
                shutil.copyfileobj(opened, target, CHUNK)
            names.append(name)
    return names


def copy_response(
    request: HttpRequest, who: Caller, patient: Patient, need: frozenset[str]
) -> FileResponse:
    """The copy as a download, built in a temporary file, audited as an export."""
    photos = photos_for(who, need).filter(course__patient=patient).order_by("taken_at", "pk")
    # Not a `with` block: the response streams from the file and closes it when it is sent.
    spool = tempfile.TemporaryFile()  # noqa: SIM115
    try:
        names = write_copy(spool, patient, photos, _base(request))
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    audit(
        clinic=patient.clinic,
        user=request.user,
        action=AuditEvent.Action.EXPORT,
        obj=patient,
        patient_id=patient.pk,
        via="web",
        document="patient_copy",
        files=len(names),
    )
    response = FileResponse(
        spool,
        as_attachment=True,
        filename=f"patient-{patient.pk}-record.zip",
        content_type="application/zip",
    )
    add_never_cache_headers(response)
    return response


@login_required
@require_safe
def staff_copy(request: HttpRequest, patient_id: int) -> FileResponse:
    """From the chart: clinical staff, since the copy holds the photos and allergies."""
    who = caller(request)
    patient = access_patient(who, patient_id, CLINICAL)
    return copy_response(request, who, patient, CLINICAL)


@patient_page
@require_safe
def portal_copy(request: HttpRequest) -> FileResponse:
    """From the portal: the signed-in patient's own record."""
    who = patient_caller(request)
    patient = access_patient(who, who.patient.pk, OWN)  # type: ignore[union-attr]
    return copy_response(request, who, patient, OWN)


# After an outbreak.


@login_required
@require_safe
def lot_exposed(request: HttpRequest, lot_id: int) -> HttpResponse:
    """The records of every patient who received the lot, as one Bundle: managers only, as
    the lot's patient list is. One EXPORT row per patient."""
    who = caller(request)
    lot = access_lot(who, lot_id, MANAGE)
    ids = [row["id"] for row in lot_exposures(lot)]
    patients = patients_for(who, MANAGE).filter(pk__in=ids).select_related("clinic").order_by("pk")
    bundle = bundle_of(patients, _base(request))
    audit_list(
        who,
        "lot exposed FHIR bundle",
        [p.pk for p in patients],
        action=AuditEvent.Action.EXPORT,
        lot=lot.pk,
    )
    response = HttpResponse(json.dumps(bundle), content_type=FHIR_JSON)
    response["Content-Disposition"] = f'attachment; filename="lot-{lot.pk}-exposed.fhir.json"'
    add_never_cache_headers(response)
    return response
