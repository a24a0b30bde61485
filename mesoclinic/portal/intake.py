"""The online intake, before the first visit: the patient's details, the screening
questionnaire (with allergies and current medicines), the photo consents, and the consent for
each planned course, read to its end and signed on the patient's own device.

Each step goes through the staff's action (patients/records.do_edit_patient,
patients/actions.do_screen_patient, outcomes/photo_actions.do_record_photo_consent,
patients/actions.do_sign_consent), so it is versioned and audited the same way, with the
patient's own login as the user and "portal" as the channel. On a tablet the staff handed to
the patient (web/kiosk.py) the same views serve: the user is then the staff member, the channel
"kiosk", and a consent signed there is witnessed by that staff member, as in the clinic.

A screening with a hard stop stops online booking of treatment: `booking_stop` answers why,
in the patient's words, for the intake page and for whatever books visits online."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from mesoclinic.access import OWN, access_course, access_patient, courses_for, screenings_for
from mesoclinic.courses.models import Course
from mesoclinic.formulary.models import Product
from mesoclinic.outcomes import photo_actions
from mesoclinic.patients import consent as consent_text
from mesoclinic.patients import records
from mesoclinic.patients.actions import do_screen_patient, do_sign_consent
from mesoclinic.patients.models import Consent, Patient, Screening, ScreeningForm, sha256
from mesoclinic.patients.screening import AnswerError
from mesoclinic.portal.forms import (
    DetailsForm,
    IntakeScreeningForm,
    PhotoConsentForm,
    SignConsentForm,
)
from mesoclinic.portal.views import patient_caller, patient_page
from mesoclinic.web import forms as web_forms
from mesoclinic.web.chart import consent_products, reading_paragraphs

VIA = "portal"
KIOSK = "kiosk"


def _me(request: HttpRequest, *, view: bool = False) -> tuple[Any, Patient]:
    caller = patient_caller(request)
    patient = access_patient(caller, caller.patient.pk, OWN, view=view)  # type: ignore[union-attr]
    return caller, patient


def _via(caller: Any) -> str:
    """The channel the audit rows name: the portal, or a tablet handed over by staff."""
    return KIOSK if caller.via == KIOSK else VIA


@dataclass(frozen=True)
class Stop:
    """Why online booking of treatment is stopped: the questions answered yes that are hard
    stops, in the questionnaire's words."""

    reasons: list[str]


def latest_screening(caller: Any) -> Screening | None:
    found: Screening | None = screenings_for(caller, OWN).order_by("-screened_at", "-id").first()
    return found


def booking_stop(screening: Screening | None) -> Stop | None:
    """A hard stop in the latest screening stops online booking of treatment (a consultation
    may still be booked). None when nothing stops it."""
    if screening is None or screening.result != Screening.Result.INELIGIBLE:
        return None
    return Stop(list(screening.hard_stops))


def _course_consent(course: Course) -> tuple[list[Product], str]:
    """The products and the exact text the patient would sign for this course now."""
    products = consent_products(course)
    template = consent_text.current_template(course.clinic)
    return products, consent_text.render(template, products, course.indication, list(course.areas))


def consent_signed(patient: Patient, text: str) -> bool:
    """Whether the patient has signed this exact text (a changed text needs a new signature)."""
    return Consent.objects.filter(patient=patient, text_sha256=sha256(text)).exists()


def _open_courses(caller: Any) -> list[Course]:
    return list(
        courses_for(caller, OWN)
        .filter(status__in=(Course.Status.PLANNED, Course.Status.ACTIVE))
        .select_related("protocol", "clinic")
        .order_by("created_at")
    )


@patient_page
@require_http_methods(["GET"])
def intake(request: HttpRequest) -> HttpResponse:
    """The steps, each with whether it is done."""
    caller, patient = _me(request, view=True)
    screening = latest_screening(caller)
    photo = photo_actions.consent_state(patient)
    courses = [
        {"course": c, "signed": consent_signed(patient, _course_consent(c)[1])}
        for c in _open_courses(caller)
    ]
    return render(
        request,
        "portal/intake.html",
        {
            "page": "intake",
            "patient": patient,
            "clinic": patient.clinic,
            "screening": screening,
            "stop": booking_stop(screening),
            "photo": photo,
            "courses": courses,
            "details_done": bool(patient.phone and patient.emergency_name),
        },
    )


@patient_page
@require_http_methods(["GET", "POST"])
def details(request: HttpRequest) -> HttpResponse:
    caller, patient = _me(request, view=request.method == "GET")
    form = DetailsForm(request.POST or None, instance=patient)
    if request.method == "POST" and form.is_valid():
        values = {n: form.cleaned_data[n] for n in records.EDITABLE if n in form.cleaned_data}
        try:
            change = records.do_edit_patient(patient, values, user=request.user, via=_via(caller))
        except ValidationError as exc:
            web_forms.put_errors(form, exc)  # type: ignore[arg-type]
        else:
            messages.success(
                request, "Your details are saved." if change else "Nothing was changed."
            )
            return redirect("portal:intake")
    return render(
        request,
        "portal/intake_details.html",
        {"page": "intake", "patient": patient, "clinic": patient.clinic, "form": form},
        status=400 if form.errors else 200,
    )


@patient_page
@require_http_methods(["GET", "POST"])
def screening(request: HttpRequest) -> HttpResponse:
    caller, patient = _me(request, view=request.method == "GET")
    questionnaire = ScreeningForm.current(patient.clinic)
    form = IntakeScreeningForm(
        questionnaire.questions, records.ingredients_for(patient.clinic), request.POST or None
    )
    if request.method == "POST" and form.is_valid():
        try:
            # The answers, the allergies and the medicines are kept together or not at all.
            with transaction.atomic():
                found = do_screen_patient(
                    patient,
                    form.answers(),
                    request.user,
                    via=_via(caller),
                    allergies=form.allergies(),
                )
                for name in form.medications():
                    records.do_add_medication(
                        patient, name=name, user=request.user, via=_via(caller)
                    )
        except AnswerError as exc:
            for key, message in exc.problems:
                form.add_error(key if key in form.fields else None, message)
        except ValidationError as exc:
            web_forms.put_errors(form, exc, lambda k: "allergy_ingredients")
        else:
            if booking_stop(found) is None:
                messages.success(request, "Thank you: your answers are saved.")
            return redirect("portal:intake")
    return render(
        request,
        "portal/intake_screening.html",
        {
            "page": "intake",
            "patient": patient,
            "clinic": patient.clinic,
            "form": form,
            "medications": list(patient.medications.filter(stopped_on__isnull=True)),
        },
        status=400 if form.errors else 200,
    )


@patient_page
@require_http_methods(["GET", "POST"])
def photos(request: HttpRequest) -> HttpResponse:
    caller, patient = _me(request, view=request.method == "GET")
    state = photo_actions.consent_state(patient)
    initial = {
        purpose: ("yes" if decision.granted else "no")
        for purpose, decision in (("clinical", state.clinical), ("marketing", state.marketing))
        if decision is not None
    }
    form = PhotoConsentForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            for purpose, decision in (("clinical", state.clinical), ("marketing", state.marketing)):
                granted = form.cleaned_data[purpose]
                # A decision is recorded when it is new or changed, so the history stays a
                # list of decisions rather than of page saves.
                if decision is None or decision.granted != granted:
                    photo_actions.do_record_photo_consent(
                        patient,
                        purpose=purpose,
                        granted=granted,
                        user=request.user,
                        via=_via(caller),
                    )
        messages.success(request, "Your choices about photos are saved.")
        return redirect("portal:intake")
    return render(
        request,
        "portal/intake_photos.html",
        {
            "page": "intake",
            "patient": patient,
            "clinic": patient.clinic,
            "form": form,
            "texts": photo_actions.CONSENT_TEXT,
        },
        status=400 if form.errors else 200,
    )


@patient_page
@require_http_methods(["GET", "POST"])
def consent(request: HttpRequest, course_id: int) -> HttpResponse:
    """The consent for a planned course: the whole text first, the place to sign after it."""
    caller, patient = _me(request, view=request.method == "GET")
    course = access_course(caller, course_id, OWN)
    products, text = _course_consent(course)
    form = SignConsentForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        do_sign_consent(
            patient,
            products=products,
            signed_name=form.cleaned_data["signed_name"],
            method=Consent.Method.TYPED,
            indication=course.indication,
            areas=list(course.areas),
            user=request.user,
            via=_via(caller),
            # On the patient's own device nobody witnesses it; on a tablet the staff handed
            # over, the staff member does, as when the patient signs in the clinic.
            witnessed=_via(caller) == KIOSK,
        )
        messages.success(
            request,
            # A tablet handed over shows no documents: the clinic gives the copy there.
            "Thank you: your consent is signed. The clinic will give you a copy."
            if _via(caller) == KIOSK
            else "Thank you: your consent is signed. A copy is in your documents.",
        )
        return redirect("portal:intake")
    return render(
        request,
        "portal/intake_consent.html",
        {
            "page": "intake",
            "patient": patient,
            "clinic": patient.clinic,
            "course": course,
            "paragraphs": reading_paragraphs(text),
            "signed": consent_signed(patient, text),
            "form": form,
        },
        status=400 if form.errors else 200,
    )
