"""Clinical photos in the web app: the patient's photo consents, taking each area's standard
views (on a tablet the file input opens the camera), baseline against latest side by side and
as an overlay, streaming one image, and the manager's list of photos usable for marketing.

Only clinical staff (managers and practitioners) see photos: the front desk books and takes
payments, which needs no picture of a patient's body. Every change goes through
outcomes.photo_actions, as the API does; every image shown is audited as a read of the chart.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from mesoclinic.access import access_course, access_patient, access_photo, audit_list
from mesoclinic.accounts.models import AuditEvent, audit
from mesoclinic.courses.models import Course
from mesoclinic.lib import limits
from mesoclinic.outcomes import photo_actions, photos
from mesoclinic.outcomes.models import Photo, PhotoConsent
from mesoclinic.outcomes.uploads import bounded_photo_uploads, refused_uploads
from mesoclinic.protocols.vocab import Area
from mesoclinic.web.context import CLINICAL, MANAGER, caller, require
from mesoclinic.web.forms import datetime_local, put_errors

VIEWS = list(Photo.View.choices)
AREA_LABELS = dict(Area.choices)


# Forms. The file fields are named by view, as the action keys its refusals, so that each
# refusal shows beside its own file input.


class UploadForm(forms.Form):
    taken_at = forms.DateTimeField(label="Taken at", required=False, widget=datetime_local())
    session = forms.TypedChoiceField(
        label="At session", coerce=int, required=False, empty_value=None
    )

    def __init__(self, course: Course, area: str, *args: Any, **kwargs: Any) -> None:
        kwargs["prefix"] = area
        super().__init__(*args, **kwargs)
        self.area = area
        self.area_label = AREA_LABELS.get(area, area)
        for view, label in VIEWS:
            self.fields[view] = forms.FileField(
                label=label,
                required=False,
                widget=forms.ClearableFileInput(
                    attrs={"accept": photos.ACCEPT, "capture": "environment"}
                ),
            )
        sessions = [(s.pk, f"Session {s.number}") for s in course.sessions.order_by("-number")]
        self.fields["session"].choices = [("", "None (baseline or review)"), *sessions]  # type: ignore[attr-defined]
        zone = course.clinic.timezone
        self.fields["taken_at"].help_text = f"In the clinic's time ({zone}); empty for now."

    @property
    def view_fields(self) -> list[forms.BoundField]:
        return [self[view] for view, _ in VIEWS]


class ConsentForm(forms.Form):
    purpose = forms.ChoiceField(choices=PhotoConsent.Purpose.choices, widget=forms.HiddenInput)
    granted = forms.TypedChoiceField(
        label="Decision",
        coerce=lambda v: v == "yes",
        choices=[("yes", "Granted"), ("no", "Declined or withdrawn")],
        widget=forms.RadioSelect,
    )
    text = forms.CharField(
        max_length=limits.CONSENT_TEXT,
        label="The words the patient was shown",
        widget=forms.Textarea(attrs={"rows": 9}),
        help_text="The clinic's standard words; change them only to what the patient read.",
    )
    decided_at = forms.DateTimeField(label="Decided at", required=False, widget=datetime_local())

    def __init__(self, purpose: str, *args: Any, **kwargs: Any) -> None:
        kwargs["prefix"] = purpose
        kwargs["initial"] = {"purpose": purpose, "text": photo_actions.CONSENT_TEXT[purpose]}  # type: ignore[index]
        super().__init__(*args, **kwargs)
        self.purpose_label = PhotoConsent.Purpose(purpose).label
        self.fields["decided_at"].help_text = "In the clinic's time; empty for now."


# Pages.


@login_required
def photo_consent(request: HttpRequest, patient_id: int) -> HttpResponse:
    patient = access_patient(caller(request), patient_id, CLINICAL)
    purposes = PhotoConsent.Purpose.values
    # Each purpose has its own form on the page, prefixed by the purpose.
    posted = next((p for p in purposes if f"{p}-purpose" in request.POST), "")
    consent_forms = {
        p: ConsentForm(p, request.POST if request.method == "POST" and posted == p else None)
        for p in purposes
    }
    if request.method == "POST":
        form = consent_forms.get(posted)
        if form is None:
            raise Http404("No such consent purpose.")
        if form.is_valid():
            try:
                consent = photo_actions.do_record_photo_consent(
                    patient,
                    purpose=form.cleaned_data["purpose"],
                    granted=form.cleaned_data["granted"],
                    text=form.cleaned_data["text"],
                    decided_at=form.cleaned_data["decided_at"],
                    user=request.user,
                    via="web",
                )
            except ValidationError as exc:
                put_errors(form, exc)
            else:
                verb = "granted" if consent.granted else "declined"
                messages.success(
                    request, f"{consent.get_purpose_display()} photo consent {verb}: recorded."
                )
                return redirect("web:chart", patient_id=patient.pk)
    history = patient.photo_consents.select_related("recorded_by")
    audit(
        clinic=patient.clinic,
        user=request.user,
        action=AuditEvent.Action.VIEW,
        obj=patient,
        patient_id=patient.pk,
        via="web",
        page="photo consent",
    )
    return render(
        request,
        "web/photos/consent.html",
        {
            "page": "patients",
            "patient": patient,
            "state": photo_actions.consent_state(patient),
            "forms": list(consent_forms.values()),
            "history": history,
        },
    )


@login_required
@bounded_photo_uploads
def course_photos(request: HttpRequest, course_id: int) -> HttpResponse:
    course = access_course(caller(request), course_id, CLINICAL)
    area = request.POST.get("area", "")
    # A file stopped at the size limit, by its view; the fields after it were not read.
    too_large = {
        name.removeprefix(f"{area}-"): message for name, message in refused_uploads(request).items()
    }
    upload_forms = {
        a: UploadForm(
            course,
            a,
            request.POST if request.method == "POST" and a == area else None,
            request.FILES if request.method == "POST" and a == area else None,
        )
        for a in course.areas
    }
    if request.method == "POST":
        form = upload_forms.get(area)
        if form is None:
            raise Http404("Not an area of this course.")
        if form.is_valid():
            images = {}
            unread: dict[str, str | list[str]] = dict(too_large)
            for view, _ in VIEWS:
                if upload := form.cleaned_data.get(view):
                    try:
                        images[view] = photo_actions.read_upload(upload, view)
                    except ValidationError as exc:
                        unread.update(exc.message_dict)
            try:
                if unread:
                    # Say at once what is wrong with the other files too, not one at a time.
                    raise ValidationError({**photo_actions.refusals(images), **unread})
                session = form.cleaned_data["session"]
                made = photo_actions.do_upload_photos(
                    course,
                    area=area,
                    images=images,
                    taken_at=form.cleaned_data["taken_at"],
                    session=course.sessions.filter(pk=session).first() if session else None,
                    user=request.user,
                    via="web",
                )
            except ValidationError as exc:
                put_errors(form, exc)
            else:
                views = ", ".join(p.get_view_display().lower() for p in made)
                messages.success(request, f"{form.area_label}: {views} photo stored.")
                return redirect(f"{reverse('web:course_photos', args=[course.pk])}#area-{area}")
    taken = list(course.photos.select_related("session").order_by("taken_at", "id"))
    audit(
        clinic=course.clinic,
        user=request.user,
        action=AuditEvent.Action.VIEW,
        obj=course,
        patient_id=course.patient_id,
        via="web",
        page="photos",
    )
    return render(
        request,
        "web/photos/course.html",
        {
            "page": "patients",
            "patient": course.patient,
            "course": course,
            "state": photo_actions.consent_state(course.patient),
            "areas": [
                {
                    "key": a,
                    "label": AREA_LABELS.get(a, a),
                    "form": upload_forms[a],
                    "photos": [p for p in taken if p.area == a],
                    # A side effect's photo is no "after" picture of the treatment.
                    "pairs": photos.pairs(
                        (p for p in taken if p.area == a and p.side_effect_id is None),
                        [v for v, _ in VIEWS],
                    ),
                }
                for a in course.areas
            ],
        },
    )


@login_required
def compare(request: HttpRequest, course_id: int) -> HttpResponse:
    course = access_course(caller(request), course_id, CLINICAL)
    area, view = request.GET.get("area", ""), request.GET.get("view", "")
    found = photos.pairs(
        course.photos.filter(area=area, view=view, side_effect__isnull=True), [view]
    )
    if not found:
        raise Http404("No photo of this area and view in the course.")
    pair = found[0]
    audit(
        clinic=course.clinic,
        user=request.user,
        action=AuditEvent.Action.VIEW,
        obj=course,
        patient_id=course.patient_id,
        via="web",
        page="photo comparison",
        area=area,
        view=view,
    )
    return render(
        request,
        "web/photos/compare.html",
        {
            "page": "patients",
            "patient": course.patient,
            "course": course,
            "pair": pair,
            "area_label": AREA_LABELS.get(area, area),
            "view_label": Photo.View(view).label,
        },
    )


@login_required
def image(request: HttpRequest, photo_id: int) -> FileResponse:
    """Stream one image from storage. Never a public file: the clinic and role are checked
    here, the read is audited, and no cache may keep it."""
    photo = access_photo(caller(request), photo_id, CLINICAL)
    try:
        opened = photo_actions.open_image(photo)
    except FileNotFoundError:
        raise Http404("The image file is missing from storage.") from None
    photo_actions.audit_view(photo, request.user, via="web")
    return photo_actions.image_response(photo, opened)


@login_required
def marketing(request: HttpRequest) -> HttpResponse:
    """The photos the clinic may use in marketing now: the patient's latest marketing consent
    is granted. Managers only, since choosing marketing material is theirs."""
    found = require(request, MANAGER)
    listed = list(photo_actions.marketing_photos(found.clinic))
    # One read row per patient shown, as every list writes (access.audit_list): the page
    # names each patient beside their photos.
    audit_list(
        caller(request),
        "marketing photos",
        [p.course.patient_id for p in listed],
        photos=[p.pk for p in listed],
    )
    return render(request, "web/photos/marketing.html", {"page": "patients", "photos": listed})
