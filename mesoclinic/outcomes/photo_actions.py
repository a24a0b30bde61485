"""Photo consents and clinical photos: each change validates, writes in one transaction and
audits, for the web and the API alike.

Consent for clinical use and consent for marketing use are separate rows with separate
purposes: recording one never records the other. The latest row per purpose counts, so a
withdrawal is a new row with granted=False, and the history stays.

What one photo may cost is bounded three times: the upload stops as soon as it passes
PHOTO_MAX_BYTES (outcomes.uploads), the header must show no more than PHOTO_MAX_PIXELS, and no
more than PHOTO_MAX_CONCURRENT_DECODES photos are decoded at once in this process (`prepare`).

Images go through the storage named "clinical_photos" in settings.STORAGES, looked up on every
call (never through Photo.image.storage, which Django fixes once when the model is loaded), so
that PHOTO_STORAGE, and a test's override of STORAGES, take effect.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import FileResponse
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent, Clinic, audit
from mesoclinic.courses.models import Course, Session, SideEffect
from mesoclinic.outcomes import photos
from mesoclinic.outcomes.models import Photo, PhotoConsent, photo_path, photo_storage
from mesoclinic.patients.models import Patient
from mesoclinic.protocols.vocab import Area

Purpose = PhotoConsent.Purpose
VIEWS = [v.value for v in Photo.View]

# The words shown to the patient, the clinic's to change on the form. They describe what is
# done with the photos and nothing else: no promise of results and no medical claim.
CONSENT_TEXT = {
    Purpose.CLINICAL: (
        "I agree that the clinic may photograph the areas being treated and keep the photos in "
        "my clinical record, to document my course and to compare the areas over time. The "
        "photos are stored without location or camera data and are seen only by the clinic's "
        "clinical staff. I can withdraw this consent at any time; the clinic then takes no new "
        "photos. Photos already taken stay in my clinical record. This consent does not allow "
        "any use in marketing."
    ),
    Purpose.MARKETING: (
        "I agree that the clinic may use photos of my treated areas in its marketing, such as "
        "its website, social media and brochures. This is separate from consent to clinical "
        "photos and is not needed for my treatment; saying no changes nothing about my care. "
        "I can withdraw this consent at any time; the clinic then stops choosing my photos for "
        "marketing."
    ),
}


def latest_consent(
    patient: Patient, purpose: str, at: dt.datetime | None = None
) -> PhotoConsent | None:
    """The patient's decision for this purpose in force at `at` (now by default)."""
    found = patient.photo_consents.filter(purpose=purpose)
    if at is not None:
        found = found.filter(decided_at__lte=at)
    return found.order_by("-decided_at", "-id").first()


def has_consent(patient: Patient, purpose: str, at: dt.datetime | None = None) -> bool:
    found = latest_consent(patient, purpose, at)
    return found is not None and found.granted


@dataclass(frozen=True)
class ConsentState:
    clinical: PhotoConsent | None
    marketing: PhotoConsent | None

    @property
    def may_photograph(self) -> bool:
        return self.clinical is not None and self.clinical.granted

    @property
    def may_market(self) -> bool:
        return self.marketing is not None and self.marketing.granted


def consent_state(patient: Patient) -> ConsentState:
    """The patient's latest decision for each purpose, in one query."""
    latest: dict[str, PhotoConsent] = {}
    for c in patient.photo_consents.order_by("-decided_at", "-id"):
        latest.setdefault(c.purpose, c)
    return ConsentState(
        clinical=latest.get(Purpose.CLINICAL), marketing=latest.get(Purpose.MARKETING)
    )


def do_record_photo_consent(
    patient: Patient,
    *,
    purpose: str,
    granted: bool,
    text: str = "",
    decided_at: dt.datetime | None = None,
    user: Any,
    via: str = "api",
) -> PhotoConsent:
    """Record a patient's yes or no to one use of their photos. An empty text means the
    standard words for the purpose (CONSENT_TEXT)."""
    errors: dict[str, str] = {}
    if purpose not in Purpose.values:
        errors["purpose"] = f"must be one of {', '.join(Purpose.values)}."
    text = (text or "").strip() or CONSENT_TEXT.get(purpose, "")  # type: ignore[call-overload]
    decided_at = decided_at or timezone.now()
    if timezone.is_naive(decided_at):
        errors["decided_at"] = "must include a time zone offset, e.g. Z or +01:00."
    elif decided_at > timezone.now() + dt.timedelta(minutes=1):
        errors["decided_at"] = "cannot be in the future."
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        consent = PhotoConsent.objects.create(
            patient=patient,
            purpose=purpose,
            granted=granted,
            text=text,
            decided_at=decided_at,
            recorded_by=user,
        )
        audit(
            clinic=patient.clinic,
            user=user,
            action=AuditEvent.Action.CREATE,
            obj=consent,
            patient_id=patient.pk,
            via=via,
            purpose=purpose,
            granted=granted,
        )
    return consent


def limits() -> photos.Limits:
    """What one photo may cost, from the settings (read on every call, so an override holds)."""
    return photos.Limits(
        max_bytes=settings.PHOTO_MAX_BYTES,
        max_pixels=settings.PHOTO_MAX_PIXELS,
        max_side=settings.PHOTO_MAX_SIDE,
    )


# The decode slots: one semaphore for the process, made again if the setting changes.
_slots_lock = threading.Lock()
_slots: tuple[int, threading.BoundedSemaphore] | None = None


def decode_slots() -> threading.BoundedSemaphore:
    """The process-wide semaphore that PHOTO_MAX_CONCURRENT_DECODES sizes. A decode is the
    costly part of an upload (up to PHOTO_MAX_PIXELS × 4 bytes), so four uploads at once cost
    at most this many decodes; the others wait their turn, which takes well under a second each
    (docs/photos.md)."""
    global _slots
    wanted = max(1, int(settings.PHOTO_MAX_CONCURRENT_DECODES))
    with _slots_lock:
        if _slots is None or _slots[0] != wanted:
            _slots = (wanted, threading.BoundedSemaphore(wanted))
        return _slots[1]


def prepare(data: bytes) -> photos.Prepared:
    """Check and re-encode one image (outcomes.photos.prepare) within the settings' limits,
    holding one of the process's decode slots while it does."""
    bounds = limits()
    # Refuse what can be refused without decoding before waiting for a slot.
    photos.check_size(len(data), bounds.max_bytes)
    with decode_slots():
        return photos.prepare(data, bounds)


def read_upload(upload: Any, field: str) -> bytes:
    """The bytes of an uploaded file, refusing an oversized one from its declared size before
    reading it, and reading no more than the limit allows in any case."""
    size = getattr(upload, "size", None)
    most = settings.PHOTO_MAX_BYTES
    try:
        if size is not None:
            photos.check_size(size, most)
        data: bytes = upload.read(most + 1)
        photos.check_size(len(data), most)
    except photos.PhotoError as exc:
        raise ValidationError({field: str(exc)}) from None
    return data


def refusals(images: Mapping[str, bytes]) -> dict[str, str]:
    """What is wrong with each image, by view, without storing any."""
    found = {}
    for view, data in images.items():
        try:
            prepare(data)
        except photos.PhotoError as exc:
            found[view] = str(exc)
    return found


def do_upload_photos(
    course: Course,
    *,
    area: str,
    images: Mapping[str, bytes],
    taken_at: dt.datetime | None = None,
    session: Session | None = None,
    side_effect: SideEffect | None = None,
    user: Any,
    via: str = "api",
) -> list[Photo]:
    """Store one area's photos, one per view given (`images` maps a view to the uploaded
    bytes), all or none.

    1. Check the area is one of the course's, each view is a standard one, the session is the
       course's and the time is not in the future.
    2. Refuse unless the patient's clinical photo consent is granted, both now and at the time
       the photos were taken: consent comes before the camera.
    3. Check and re-encode every image (`prepare`, one decode slot at a time); a refusal is
       keyed by its view, so the form can show it beside the right file input.
    4. Save the files, then the rows and their audit in one transaction; if that fails, delete
       the files again so that no image is left without its row.
    """
    taken_at = taken_at or timezone.now()
    errors: dict[str, str] = {}
    if area not in course.areas:
        errors["area"] = f"is not one of this course's areas ({', '.join(course.areas)})."
    if not images:
        errors["image"] = "choose at least one photo."
    for view in images:
        if view not in VIEWS:
            errors[view] = f"is not a standard view; use one of {', '.join(VIEWS)}."
    if session is not None and session.course_id != course.pk:
        errors["session"] = "is not a session of this course."
    if side_effect is not None and (session is None or side_effect.session_id != session.pk):
        errors["side_effect"] = "is not a side effect after this session."
    if timezone.is_naive(taken_at):
        errors["taken_at"] = "must include a time zone offset, e.g. Z or +01:00."
    elif taken_at > timezone.now() + dt.timedelta(minutes=1):
        errors["taken_at"] = "cannot be in the future."
    if errors:
        raise ValidationError(errors)
    patient = course.patient
    if not has_consent(patient, Purpose.CLINICAL):
        raise ValidationError(
            {"consent": "the patient has not granted consent to clinical photos; record it first."}
        )
    if not has_consent(patient, Purpose.CLINICAL, at=taken_at):
        raise ValidationError(
            {"taken_at": "is before the patient granted consent to clinical photos."}
        )
    prepared: dict[str, photos.Prepared] = {}
    for view, data in images.items():
        try:
            prepared[view] = prepare(data)
        except photos.PhotoError as exc:
            errors[view] = str(exc)
    if errors:
        raise ValidationError(errors)

    storage = photo_storage()
    saved: list[str] = []
    try:
        with transaction.atomic():
            made = []
            for view, image in prepared.items():
                photo = Photo(
                    clinic=course.clinic,
                    course=course,
                    session=session,
                    side_effect=side_effect,
                    area=area,
                    view=view,
                    width=image.width,
                    height=image.height,
                    content_type=image.content_type,
                    sha256=image.sha256,
                    taken_at=taken_at,
                    uploaded_by=user,
                )
                # A random name: no patient name, nothing to guess, nothing overwritten.
                name = storage.save(
                    photo_path(photo, f"{uuid.uuid4().hex}.{image.extension}"),
                    ContentFile(image.data),
                )
                saved.append(name)
                photo.image.name = name
                photo.save()
                audit(
                    clinic=course.clinic,
                    user=user,
                    action=AuditEvent.Action.CREATE,
                    obj=photo,
                    patient_id=patient.pk,
                    via=via,
                    course_id=course.pk,
                    area=area,
                    view=view,
                    sha256=image.sha256,
                )
                made.append(photo)
    except BaseException:
        for name in saved:
            storage.delete(name)
        raise
    return made


def open_image(photo: Photo) -> IO[bytes]:
    """The stored image, opened for reading from the configured storage."""
    opened: IO[bytes] = photo_storage().open(photo.image.name, "rb")
    return opened


def image_response(photo: Photo, opened: Any) -> FileResponse:
    """The image as a private, uncacheable, inline response, for the web and the API."""
    response = FileResponse(opened, content_type=photo.content_type)
    response["Cache-Control"] = "private, no-store"
    response["Content-Disposition"] = (
        f'inline; filename="photo-{photo.pk}.{photo.image.name.rsplit(".", 1)[-1]}"'
    )
    response["X-Content-Type-Options"] = "nosniff"
    return response


def audit_view(photo: Photo, user: Any, via: str) -> None:
    """Seeing a photo is reading the chart: audit it with the patient's id."""
    audit(
        clinic=photo.clinic,
        user=user,
        action=AuditEvent.Action.VIEW,
        obj=photo,
        patient_id=photo.course.patient_id,
        via=via,
    )


def summary(
    course: Course, state: ConsentState, areas: Iterable[str] | None = None
) -> dict[str, Any]:
    """For the chart's course card: the patient's photo consents and how many photos of each
    of the course's areas there are. `areas`, when given, is the area of each of the course's
    photos, already read (the chart reads them once for all of a patient's courses)."""
    counts: dict[str, int] = {}
    for area in course.photos.values_list("area", flat=True) if areas is None else areas:
        counts[area] = counts.get(area, 0) + 1
    labels = dict(Area.choices)
    return {
        "state": state,
        "total": sum(counts.values()),
        "areas": [(labels.get(a, a), counts.get(a, 0)) for a in course.areas],
    }


def marketing_photos(clinic: Clinic) -> QuerySet[Photo]:
    """The clinic's photos whose patient's latest marketing consent is granted. A withdrawal
    is a newer row, so it removes the patient's photos from this list at once."""
    latest = (
        PhotoConsent.objects.filter(patient=OuterRef("course__patient"), purpose=Purpose.MARKETING)
        .order_by("-decided_at", "-id")
        .values("granted")[:1]
    )
    return (
        # A photo of a side effect is for the clinic's care only, whatever the consent says.
        Photo.objects.filter(clinic=clinic, side_effect__isnull=True)
        .annotate(marketing_granted=Subquery(latest))
        .filter(marketing_granted=True)
        .select_related("course__patient", "clinic")
        .order_by("course__patient__last_name", "course_id", "area", "view", "taken_at")
    )
