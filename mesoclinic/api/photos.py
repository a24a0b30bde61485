"""Clinical photos and photo consents in the JSON API, registered on the NinjaAPI of views.py
by ApiConfig.ready.

Photos are for clinical staff (managers and practitioners) only, as in the web app; the list
of photos usable for marketing is the manager's. Uploads are multipart/form-data and go through
outcomes.photo_actions, so the API refuses exactly what the web refuses: a refusal is 422
application/problem+json naming the field (`image`, `area`, `view`, `taken_at`, `session`) or
`consent` when the patient has not granted clinical photo consent.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, HttpRequest
from ninja import Field, File, Form, Schema, Status, UploadedFile
from ninja.decorators import decorate_view

from mesoclinic.access import access_course, access_patient, access_photo, audit_list
from mesoclinic.accounts.models import AuditEvent, audit
from mesoclinic.api.auth import CLINICAL, MANAGER, caller
from mesoclinic.api.schemas import When
from mesoclinic.api.views import api
from mesoclinic.lib import limits
from mesoclinic.outcomes import photo_actions
from mesoclinic.outcomes.models import Photo, PhotoConsent
from mesoclinic.outcomes.uploads import bounded_api_upload

# Schemas. They live here rather than in schemas.py: nothing else uses them.


class PhotoOut(Schema):
    id: int
    course: int
    patient: int
    session: int | None
    area: str
    view: str
    width: int
    height: int
    content_type: str
    sha256: str
    taken_at: dt.datetime
    uploaded_at: dt.datetime
    image_url: str


class PhotoConsentIn(Schema):
    purpose: str = Field(max_length=limits.KEY)
    granted: bool
    text: str = Field("", max_length=limits.CONSENT_TEXT)
    decided_at: When | None = None


class PhotoConsentOut(Schema):
    id: int
    purpose: str
    granted: bool
    text: str
    decided_at: dt.datetime
    recorded_by: int | None


class PhotoConsentsOut(Schema):
    clinical: PhotoConsentOut | None
    marketing: PhotoConsentOut | None
    history: list[PhotoConsentOut]


def _photo_out(photo: Photo, patient_id: int) -> dict[str, Any]:
    return {
        "id": photo.pk,
        "course": photo.course_id,
        "patient": patient_id,
        "session": photo.session_id,
        "area": photo.area,
        "view": photo.view,
        "width": photo.width,
        "height": photo.height,
        "content_type": photo.content_type,
        "sha256": photo.sha256,
        "taken_at": photo.taken_at,
        "uploaded_at": photo.uploaded_at,
        "image_url": f"/api/v1/photos/{photo.pk}/image",
    }


def _consent_out(consent: PhotoConsent | None) -> dict[str, Any] | None:
    if consent is None:
        return None
    return {
        "id": consent.pk,
        "purpose": consent.purpose,
        "granted": consent.granted,
        "text": consent.text,
        "decided_at": consent.decided_at,
        "recorded_by": consent.recorded_by_id,
    }


@api.post("/courses/{course_id}/photos", response={201: PhotoOut}, tags=["photos"])
@decorate_view(bounded_api_upload)
def upload_photo(
    request: HttpRequest,
    course_id: int,
    image: File[UploadedFile],
    area: Form[str],
    view: Form[str],
    taken_at: dt.datetime | None = Form(None),  # noqa: B008 - ninja's way to mark a form field
    session: int | None = Form(None),  # noqa: B008
) -> Status[dict[str, Any]]:
    """Store one standard view of one area (multipart/form-data: `image`, `area`, `view`, and
    optionally `taken_at` with a zone offset and `session`). The image is checked and
    re-encoded without EXIF; its SHA-256 is of the stored bytes."""
    course = access_course(caller(request), course_id, CLINICAL)
    data = photo_actions.read_upload(image, "image")
    chosen = None
    if session is not None:
        chosen = course.sessions.filter(pk=session).first()
        if chosen is None:
            raise ValidationError({"session": "is not a session of this course."})
    try:
        [photo] = photo_actions.do_upload_photos(
            course,
            area=area,
            images={view: data},
            taken_at=taken_at,
            session=chosen,
            user=caller(request).user,
            via="api",
        )
    except ValidationError as exc:
        # The action keys an image's refusal by its view; here the file field is "image", and
        # a view that is not a standard one is the "view" field's fault.
        named = {}
        for field, messages in exc.message_dict.items():
            if field == view:
                field = "view" if view not in photo_actions.VIEWS else "image"
            named[field] = messages
        raise ValidationError(named) from None
    return Status(201, _photo_out(photo, course.patient_id))


@api.get("/courses/{course_id}/photos", response=list[PhotoOut], tags=["photos"])
def list_photos(request: HttpRequest, course_id: int) -> list[dict[str, Any]]:
    """The course's photos, earliest first: metadata only; each image is at its image_url."""
    course = access_course(caller(request), course_id, CLINICAL)
    who = caller(request)
    audit(
        clinic=who.clinic,
        user=who.user,
        action=AuditEvent.Action.VIEW,
        obj=course,
        patient_id=course.patient_id,
        what="photos",
    )
    return [_photo_out(p, course.patient_id) for p in course.photos.order_by("taken_at", "id")]


@api.get("/photos/marketing", response=list[PhotoOut], tags=["photos"])
def marketing_photos(request: HttpRequest) -> list[dict[str, Any]]:
    """The photos usable for marketing now: the patient's latest marketing consent is granted.
    Managers only."""
    who = caller(request)
    who.require(MANAGER)
    listed = list(photo_actions.marketing_photos(who.clinic))
    # One read row per patient whose photos are listed, as every list writes.
    audit_list(
        who,
        "marketing photos",
        [p.course.patient_id for p in listed],
        photos=[p.pk for p in listed],
    )
    return [_photo_out(p, p.course.patient_id) for p in listed]


@api.get("/photos/{photo_id}/image", tags=["photos"], response={200: None})
def photo_image(request: HttpRequest, photo_id: int) -> FileResponse:
    """The image itself (image/jpeg or image/png), never cached; the read is audited."""
    photo = access_photo(caller(request), photo_id)
    try:
        opened = photo_actions.open_image(photo)
    except FileNotFoundError:
        raise Http404("The image file is missing from storage.") from None
    photo_actions.audit_view(photo, caller(request).user, via="api")
    return photo_actions.image_response(photo, opened)


@api.get("/patients/{patient_id}/photo-consents", response=PhotoConsentsOut, tags=["photos"])
def photo_consents(request: HttpRequest, patient_id: int) -> dict[str, Any]:
    """The decision in force for each purpose, and every decision, newest first."""
    patient = access_patient(caller(request), patient_id, CLINICAL)
    who = caller(request)
    audit(
        clinic=who.clinic,
        user=who.user,
        action=AuditEvent.Action.VIEW,
        obj=patient,
        patient_id=patient.pk,
        what="photo consents",
    )
    state = photo_actions.consent_state(patient)
    return {
        "clinical": _consent_out(state.clinical),
        "marketing": _consent_out(state.marketing),
        "history": [_consent_out(c) for c in patient.photo_consents.all()],
    }


@api.post("/patients/{patient_id}/photo-consents", response={201: PhotoConsentOut}, tags=["photos"])
def record_photo_consent(
    request: HttpRequest, patient_id: int, payload: PhotoConsentIn
) -> Status[dict[str, Any] | None]:
    """Record a yes or no to one purpose ("clinical" or "marketing"); the other purpose is not
    touched. An empty text records the clinic's standard words. A withdrawal is granted=false."""
    patient = access_patient(caller(request), patient_id, CLINICAL)
    consent = photo_actions.do_record_photo_consent(
        patient,
        purpose=payload.purpose,
        granted=payload.granted,
        text=payload.text,
        decided_at=payload.decided_at,
        user=caller(request).user,
        via="api",
    )
    return Status(201, _consent_out(consent))
