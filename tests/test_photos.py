"""Clinical photos: the checks and re-encoding of outcomes.photos, and the consent and upload
actions of outcomes.photo_actions, against real SQLite and a real storage directory."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.files.storage import storages
from django.utils import timezone
from PIL import Image

from mesoclinic.accounts.models import AuditEvent, User
from mesoclinic.courses.models import Course
from mesoclinic.outcomes import photo_actions, photos
from mesoclinic.outcomes.models import Photo, PhotoConsent
from mesoclinic.patients.models import Patient
from mesoclinic.protocols.models import ClinicProtocol
from tests.conftest import World, api_for, error_fields, problem_of

# Pictures made in the test, so that each carries exactly the metadata a test needs.

GPS = {1: "N", 2: (40.0, 44.0, 54.36), 3: "W", 4: (73.0, 59.0, 8.36)}
ORIENTATION, MAKE, GPS_IFD = 0x0112, 0x010F, 0x8825


def picture(width: int = 800, height: int = 600, mode: str = "RGB") -> Image.Image:
    """Left half red, right half blue: enough to tell which way up it was stored."""
    img = Image.new(mode, (width, height), "red")
    img.paste(Image.new(mode, (width - width // 2, height), "blue"), (width // 2, 0))
    return img


def jpeg(width: int = 800, height: int = 600, *, orientation: int | None = None, gps: bool = False,
         **save: Any) -> bytes:  # fmt: skip
    exif = Image.Exif()
    exif[MAKE] = "PhoneCam"
    if orientation:
        exif[ORIENTATION] = orientation
    if gps:
        exif[GPS_IFD] = GPS
    out = io.BytesIO()
    picture(width, height).save(out, "JPEG", exif=exif, **save)
    return out.getvalue()


def noisy_jpeg(width: int, height: int) -> bytes:
    """A JPEG of noise, which does not compress: as large as a real photo of its size."""
    noise = Image.effect_noise((width, height), 80)
    exif = Image.Exif()
    exif[GPS_IFD] = GPS
    out = io.BytesIO()
    Image.merge("RGB", (noise, noise.transpose(Image.Transpose.FLIP_LEFT_RIGHT), noise)).save(
        out, "JPEG", quality=95, exif=exif
    )
    return out.getvalue()


def png(width: int = 800, height: int = 600, mode: str = "RGBA", **save: Any) -> bytes:
    out = io.BytesIO()
    picture(width, height, mode).save(out, "PNG", **save)
    return out.getvalue()


def refusal(data: bytes) -> str:
    with pytest.raises(photos.PhotoError) as caught:
        photos.prepare(data)
    return str(caught.value)


def header_claiming(data: bytes, width: int, height: int) -> bytes:
    """A PNG whose IHDR chunk claims other dimensions, with its CRC made right again."""
    at = data.index(b"IHDR")
    fields = struct.pack(">II", width, height) + data[at + 12 : at + 17]
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + fields))
    return data[: at + 4] + fields + crc + data[at + 21 :]


@pytest.fixture
def photo_dir(settings: Any, tmp_path: Path) -> Path:
    """The clinical photos go to a temporary directory for the test, not the data directory."""
    settings.STORAGES = {
        **settings.STORAGES,
        "clinical_photos": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": tmp_path / "photos", "base_url": None},
        },
    }
    return tmp_path / "photos"


def stored_bytes(photo: Photo) -> bytes:
    with storages["clinical_photos"].open(photo.image.name, "rb") as f:
        data: bytes = f.read()
    return data


def cellulite_course(world: World, patient: Patient) -> Course:
    from mesoclinic.courses import actions

    return actions.do_plan_course(
        patient,
        ClinicProtocol.current(world.clinic, "cellulite"),
        indication="cellulite",
        areas=["thighs", "buttocks"],
        cadence_days=7,
        planned_sessions=15,
        user=world.practitioner,
    )


def grant(patient: Patient, user: Any, purpose: str = "clinical", **kwargs: Any) -> PhotoConsent:
    return photo_actions.do_record_photo_consent(
        patient, purpose=purpose, granted=True, user=user, **kwargs
    )


class PrepareTests:
    def test_it_strips_exif_and_gps(self) -> None:
        original = jpeg(gps=True, comment=b"Ana Lopez, 12 Main St")
        before = photos.metadata_of(original)
        assert GPS_IFD in before["exif"] and "comment" in before["info"]
        prepared = photos.prepare(original)
        after = photos.metadata_of(prepared.data)
        assert after["exif"] == {}
        assert not {"exif", "comment", "xmp", "icc_profile"} & set(after["info"])
        assert b"PhoneCam" not in prepared.data and b"Main St" not in prepared.data

    def test_it_applies_the_orientation_before_dropping_it(self) -> None:
        # Orientation 6: the camera held upright stored the picture turned a quarter to the
        # left; shown correctly, the left half (red) is on top.
        prepared = photos.prepare(jpeg(800, 600, orientation=6))
        assert (prepared.width, prepared.height) == (600, 800)
        img = Image.open(io.BytesIO(prepared.data)).convert("RGB")
        top, bottom = img.getpixel((300, 100)), img.getpixel((300, 700))
        assert top[0] > 200 and top[2] < 60, top
        assert bottom[2] > 200 and bottom[0] < 60, bottom

    def test_it_accepts_a_png_and_keeps_it_png_without_text_chunks(self) -> None:
        from PIL import PngImagePlugin

        info = PngImagePlugin.PngInfo()
        info.add_text("Location", "40.7N 73.9W")
        prepared = photos.prepare(png(pnginfo=info))
        assert prepared.format == "PNG" and prepared.content_type == "image/png"
        assert prepared.extension == "png"
        assert photos.metadata_of(prepared.data)["info"] == []
        assert prepared.sha256 == hashlib.sha256(prepared.data).hexdigest()

    def test_it_drops_the_icc_profile_after_converting_to_srgb(self) -> None:
        from PIL import ImageCms

        profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
        prepared = photos.prepare(jpeg(icc_profile=profile))
        assert "icc_profile" not in photos.metadata_of(prepared.data)["info"]

    def test_it_refuses_a_text_file_renamed_jpg(self) -> None:
        with pytest.raises(photos.PhotoError, match="not a JPEG or PNG"):
            photos.prepare(b"Just some notes about the patient.\n" * 40)

    def test_it_refuses_a_gif(self) -> None:
        out = io.BytesIO()
        picture().save(out, "GIF")
        with pytest.raises(photos.PhotoError, match="not a JPEG or PNG"):
            photos.prepare(out.getvalue())

    def test_it_refuses_an_empty_file(self) -> None:
        with pytest.raises(photos.PhotoError, match="is empty"):
            photos.prepare(b"")

    def test_it_refuses_a_file_over_the_limit_before_decoding(self) -> None:
        with pytest.raises(photos.PhotoError, match="at most 15.0 MB"):
            photos.prepare(b"\xff\xd8" + b"\0" * photos.MAX_BYTES)

    def test_it_refuses_a_picture_too_small_to_judge(self) -> None:
        with pytest.raises(photos.PhotoError, match="479 pixels|at least 480"):
            photos.prepare(jpeg(640, 479))

    def test_it_refuses_a_side_too_long(self) -> None:
        with pytest.raises(photos.PhotoError, match="longer than 8000"):
            photos.prepare(png(8001, 480, mode="L"))

    def test_it_refuses_a_decompression_bomb_from_its_header(self) -> None:
        # A 1 × 1 PNG whose header claims 20000 × 20000 (with a valid checksum): decoded, it
        # would take 400 MB; the header alone refuses it, and nothing is decoded.
        assert refusal(header_claiming(png(1, 1, mode="L"), 20000, 20000)) == (
            "has far more pixels than a photo may have."
        )
        assert refusal(header_claiming(png(1, 1, mode="L"), 9000, 600)) == (
            "is 9000 × 600 pixels; neither side may be longer than 8000 pixels."
        )

    def test_it_refuses_a_truncated_file(self) -> None:
        whole = png(800, 600, mode="RGB")
        with pytest.raises(photos.PhotoError, match="damaged or incomplete"):
            photos.prepare(whole[: len(whole) // 2])


class PairsTests:
    def test_it_pairs_the_earliest_and_latest_of_each_area_and_view(self) -> None:
        from types import SimpleNamespace as P

        t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        found = photos.pairs(
            [
                P(pk=3, area="thighs", view="front", taken_at=t0 + dt.timedelta(days=70)),
                P(pk=1, area="thighs", view="front", taken_at=t0),
                P(pk=2, area="thighs", view="front", taken_at=t0 + dt.timedelta(days=35)),
                P(pk=4, area="thighs", view="back", taken_at=t0),
            ],
            ["front", "back", "left", "right"],
        )
        assert [(p.view, p.baseline.pk, p.latest and p.latest.pk) for p in found] == [
            ("front", 1, 3),
            ("back", 4, None),
        ]
        assert [p.comparable for p in found] == [True, False]


@pytest.mark.django_db
class PhotoConsentTests:
    def test_clinical_and_marketing_are_independent(self, world: World, patient: Patient) -> None:
        grant(patient, world.practitioner, "clinical")
        state = photo_actions.consent_state(patient)
        assert state.may_photograph and not state.may_market
        assert state.marketing is None
        grant(patient, world.practitioner, "marketing")
        photo_actions.do_record_photo_consent(
            patient, purpose="clinical", granted=False, user=world.practitioner
        )
        state = photo_actions.consent_state(patient)
        assert not state.may_photograph and state.may_market

    def test_a_withdrawal_is_a_new_row_and_the_latest_counts(
        self, world: World, patient: Patient
    ) -> None:
        first = grant(patient, world.practitioner, decided_at=timezone.now() - dt.timedelta(days=2))
        photo_actions.do_record_photo_consent(
            patient, purpose="clinical", granted=False, user=world.practitioner
        )
        assert PhotoConsent.objects.filter(patient=patient).count() == 2
        assert not photo_actions.has_consent(patient, "clinical")
        assert photo_actions.has_consent(patient, "clinical", at=first.decided_at)

    def test_it_records_the_words_who_and_when_and_audits(
        self, world: World, patient: Patient
    ) -> None:
        consent = grant(patient, world.practitioner)
        assert consent.text == photo_actions.CONSENT_TEXT["clinical"]
        assert consent.recorded_by == world.practitioner
        event = AuditEvent.objects.get(object_type="outcomes.PhotoConsent")
        assert (event.action, event.patient_id, event.detail["granted"]) == (
            "create",
            patient.pk,
            True,
        )

    def test_it_refuses_a_bad_purpose_and_a_future_time(
        self, world: World, patient: Patient
    ) -> None:
        with pytest.raises(ValidationError) as caught:
            photo_actions.do_record_photo_consent(
                patient,
                purpose="research",
                granted=True,
                decided_at=timezone.now() + dt.timedelta(days=1),
                user=world.practitioner,
            )
        assert set(caught.value.message_dict) == {"purpose", "decided_at"}
        assert not PhotoConsent.objects.exists()

    def test_the_standard_words_make_no_medical_claim(self) -> None:
        for text in photo_actions.CONSENT_TEXT.values():
            lowered = text.lower()
            for claim in ("result", "improve", "cure", "safe", "effective", "guarantee"):
                assert claim not in lowered, (claim, text)


@pytest.mark.django_db
class UploadTests:
    def test_it_stores_the_image_without_exif_and_records_its_hash(
        self, world: World, patient: Patient, photo_dir: Path
    ) -> None:
        course = cellulite_course(world, patient)
        grant(patient, world.practitioner)
        [photo] = photo_actions.do_upload_photos(
            course,
            area="thighs",
            images={"front": jpeg(gps=True, orientation=6)},
            user=world.practitioner,
        )
        data = stored_bytes(photo)
        assert photos.metadata_of(data)["exif"] == {}
        assert photo.sha256 == hashlib.sha256(data).hexdigest()
        assert (photo.width, photo.height, photo.content_type) == (600, 800, "image/jpeg")
        assert photo.image.name.startswith(f"photos/{world.clinic.pk}/{course.pk}/")
        assert "lopez" not in photo.image.name.lower()
        assert (photo_dir / photo.image.name).exists()
        event = AuditEvent.objects.get(object_type="outcomes.Photo")
        assert (event.action, event.patient_id, event.detail["view"]) == (
            "create",
            patient.pk,
            "front",
        )

    def test_it_refuses_without_clinical_consent(
        self, world: World, patient: Patient, photo_dir: Path
    ) -> None:
        course = cellulite_course(world, patient)
        grant(patient, world.practitioner, "marketing")  # marketing is not clinical
        with pytest.raises(ValidationError) as caught:
            photo_actions.do_upload_photos(
                course, area="thighs", images={"front": jpeg()}, user=world.practitioner
            )
        assert "consent" in caught.value.message_dict
        assert not Photo.objects.exists() and not photo_dir.exists()

    def test_it_refuses_after_a_withdrawal(
        self, world: World, patient: Patient, photo_dir: Path
    ) -> None:
        course = cellulite_course(world, patient)
        grant(patient, world.practitioner, decided_at=timezone.now() - dt.timedelta(days=1))
        photo_actions.do_record_photo_consent(
            patient, purpose="clinical", granted=False, user=world.practitioner
        )
        with pytest.raises(ValidationError, match="has not granted consent"):
            photo_actions.do_upload_photos(
                course, area="thighs", images={"front": jpeg()}, user=world.practitioner
            )

    def test_it_refuses_a_photo_taken_before_the_consent(
        self, world: World, patient: Patient, photo_dir: Path
    ) -> None:
        course = cellulite_course(world, patient)
        grant(patient, world.practitioner)
        with pytest.raises(ValidationError) as caught:
            photo_actions.do_upload_photos(
                course,
                area="thighs",
                images={"front": jpeg()},
                taken_at=timezone.now() - dt.timedelta(days=3),
                user=world.practitioner,
            )
        assert caught.value.message_dict == {
            "taken_at": ["is before the patient granted consent to clinical photos."]
        }

    def test_it_refuses_an_area_outside_the_course_and_an_unknown_view(
        self, world: World, patient: Patient, photo_dir: Path
    ) -> None:
        course = cellulite_course(world, patient)
        grant(patient, world.practitioner)
        with pytest.raises(ValidationError) as caught:
            photo_actions.do_upload_photos(
                course, area="face", images={"top": jpeg()}, user=world.practitioner
            )
        assert set(caught.value.message_dict) == {"area", "top"}

    def test_one_bad_image_stores_none_of_the_area(
        self, world: World, patient: Patient, photo_dir: Path
    ) -> None:
        course = cellulite_course(world, patient)
        grant(patient, world.practitioner)
        with pytest.raises(ValidationError) as caught:
            photo_actions.do_upload_photos(
                course,
                area="thighs",
                images={"front": jpeg(), "back": b"not an image", "left": jpeg(300, 300)},
                user=world.practitioner,
            )
        assert caught.value.message_dict == {
            "back": ["is not a JPEG or PNG image."],
            "left": ["is 300 × 300 pixels; the shorter side must be at least 480 pixels."],
        }
        assert not Photo.objects.exists()
        assert not photo_dir.exists() or not any(photo_dir.rglob("*.jpg"))

    def test_a_failed_write_leaves_no_file_behind(
        self, world: World, patient: Patient, photo_dir: Path
    ) -> None:
        course = cellulite_course(world, patient)
        grant(patient, world.practitioner)
        # An unsaved user: Django refuses to save the row, after the first file is stored.
        ghost = User(username="ghost")
        with pytest.raises(ValueError, match="unsaved related object"):
            photo_actions.do_upload_photos(
                course, area="thighs", images={"front": jpeg(), "back": jpeg()}, user=ghost
            )
        assert not Photo.objects.exists()
        assert not any(photo_dir.rglob("*.jpg"))

    def test_it_accepts_a_png(self, world: World, patient: Patient, photo_dir: Path) -> None:
        course = cellulite_course(world, patient)
        grant(patient, world.practitioner)
        [photo] = photo_actions.do_upload_photos(
            course, area="buttocks", images={"back": png()}, user=world.practitioner
        )
        assert photo.content_type == "image/png" and photo.image.name.endswith(".png")
        assert stored_bytes(photo).startswith(b"\x89PNG")


@pytest.mark.django_db
class MarketingListTests:
    def test_it_lists_photos_only_while_marketing_consent_stands(
        self, world: World, patient: Patient, photo_dir: Path
    ) -> None:
        course = cellulite_course(world, patient)
        grant(patient, world.practitioner, decided_at=timezone.now() - dt.timedelta(hours=1))
        photo_actions.do_upload_photos(
            course, area="thighs", images={"front": jpeg()}, user=world.practitioner
        )
        assert not photo_actions.marketing_photos(world.clinic).exists()
        grant(patient, world.practitioner, "marketing")
        assert photo_actions.marketing_photos(world.clinic).count() == 1
        photo_actions.do_record_photo_consent(
            patient, purpose="marketing", granted=False, user=world.practitioner
        )
        assert not photo_actions.marketing_photos(world.clinic).exists()

    def test_it_lists_only_the_clinics_own(
        self, world: World, other: World, patient: Patient, photo_dir: Path
    ) -> None:
        course = cellulite_course(world, patient)
        grant(patient, world.practitioner, decided_at=timezone.now() - dt.timedelta(hours=1))
        grant(patient, world.practitioner, "marketing")
        photo_actions.do_upload_photos(
            course, area="thighs", images={"front": jpeg()}, user=world.practitioner
        )
        assert photo_actions.marketing_photos(world.clinic).count() == 1
        assert not photo_actions.marketing_photos(other.clinic).exists()


# The JSON API: multipart uploads, metadata, the image, consents; problems for bad input.


def api_upload(world_user: Any, course: Course, **fields: Any) -> Any:
    from django.test import Client

    from mesoclinic.api.models import ApiToken

    _, raw = ApiToken.issue(world_user, world_user.memberships.first())
    return Client().post(
        f"/api/v1/courses/{course.pk}/photos",
        fields,
        headers={"Authorization": f"Bearer {raw}"},
    )


def image_file(data: bytes, name: str = "IMG_0001.JPG") -> Any:
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data, content_type="image/jpeg")


@pytest.mark.django_db
class PhotoApiTests:
    def test_it_uploads_lists_and_streams_a_photo(
        self, world: World, patient: Patient, photo_dir: Path
    ) -> None:
        course = cellulite_course(world, patient)
        api = api_for(world.practitioner)
        consent = api.post(
            f"/patients/{patient.pk}/photo-consents", {"purpose": "clinical", "granted": True}
        )
        assert consent.status_code == 201, consent.content
        assert consent.json()["text"] == photo_actions.CONSENT_TEXT["clinical"]
        # A 3 MB image: more than DATA_UPLOAD_MAX_MEMORY_SIZE, which applies to text, not files.
        big = noisy_jpeg(2400, 1800)
        assert len(big) > 2_621_440
        response = api_upload(
            world.practitioner, course, image=image_file(big), area="thighs", view="front"
        )
        assert response.status_code == 201, response.content
        body = response.json()
        assert (body["area"], body["view"], body["width"], body["patient"]) == (
            "thighs",
            "front",
            2400,
            patient.pk,
        )
        listed = api.get(f"/courses/{course.pk}/photos").json()
        assert [p["id"] for p in listed] == [body["id"]]
        image = api.client.get(body["image_url"], headers=api._headers())
        assert image.status_code == 200 and image["Cache-Control"] == "private, no-store"
        data = b"".join(image.streaming_content)
        assert hashlib.sha256(data).hexdigest() == body["sha256"]
        assert photos.metadata_of(data)["exif"] == {}
        reads = AuditEvent.objects.filter(action="view", patient_id=patient.pk, via="api")
        assert reads.filter(object_type="outcomes.Photo", object_id=str(body["id"])).exists()

    def test_bad_input_is_a_problem_naming_the_field(
        self, world: World, patient: Patient, photo_dir: Path
    ) -> None:
        course = cellulite_course(world, patient)
        who = world.practitioner
        no_consent = api_upload(who, course, image=image_file(jpeg()), area="thighs", view="front")
        assert error_fields(no_consent) == {"consent"}
        grant(patient, who)
        cases = [
            ({"image": image_file(b"hello " * 100, "a.jpg"), "view": "front"}, {"image"}),
            ({"image": image_file(jpeg(500, 400)), "view": "front"}, {"image"}),
            ({"image": image_file(jpeg()), "view": "top"}, {"view"}),
            ({"view": "front"}, {"image"}),
            ({"image": image_file(jpeg()), "view": "front", "taken_at": "2026-01-01T10:00"},
             {"taken_at"}),
            ({"image": image_file(jpeg()), "view": "front", "session": "999999"}, {"session"}),
        ]  # fmt: skip
        for fields, expected in cases:
            response = api_upload(who, course, area="thighs", **fields)
            assert error_fields(response) == expected, (fields, response.content)
        wrong_area = api_upload(who, course, image=image_file(jpeg()), area="face", view="front")
        assert error_fields(wrong_area) == {"area"}
        assert not Photo.objects.exists()

    def test_consent_purposes_are_separate_and_bad_ones_refused(
        self, world: World, patient: Patient
    ) -> None:
        api = api_for(world.manager)
        url = f"/patients/{patient.pk}/photo-consents"
        assert api.post(url, {"purpose": "marketing", "granted": True}).status_code == 201
        state = api.get(url).json()
        assert state["clinical"] is None and state["marketing"]["granted"] is True
        assert error_fields(api.post(url, {"purpose": "research", "granted": True})) == {"purpose"}
        api.post(url, {"purpose": "marketing", "granted": False})
        state = api.get(url).json()
        assert state["marketing"]["granted"] is False and len(state["history"]) == 2

    def test_tenancy_and_roles(
        self, world: World, other: World, patient: Patient, photo_dir: Path
    ) -> None:
        course = cellulite_course(world, patient)
        grant(patient, world.practitioner, decided_at=timezone.now() - dt.timedelta(hours=1))
        [photo] = photo_actions.do_upload_photos(
            course, area="thighs", images={"front": jpeg()}, user=world.practitioner
        )
        desk, stranger = api_for(world.front_desk), api_for(other.manager)
        for path in (
            f"/courses/{course.pk}/photos",
            f"/photos/{photo.pk}/image",
            f"/patients/{patient.pk}/photo-consents",
        ):
            problem_of(desk.get(path), 403)
            problem_of(stranger.get(path), 404)
        problem_of(api_for(world.practitioner).get("/photos/marketing"), 403)
        problem_of(desk.get("/photos/marketing"), 403)
        grant(patient, world.practitioner, "marketing")
        assert [p["id"] for p in api_for(world.manager).get("/photos/marketing").json()] == [
            photo.pk
        ]
        assert stranger.get("/photos/marketing").json() == []
        problem_of(
            stranger.post(
                f"/patients/{patient.pk}/photo-consents", {"purpose": "clinical", "granted": False}
            ),
            404,
        )
        problem_of(api_upload(other.practitioner, course, image=image_file(jpeg()),
                              area="thighs", view="front"), 404)  # fmt: skip
        assert photo_actions.has_consent(patient, "clinical")
        assert Photo.objects.count() == 1


@pytest.mark.django_db
class PhotoDemoTests:
    def test_the_demo_gives_a_baseline_and_a_latest_view_to_compare(
        self, world: World, patient: Patient, photo_dir: Path
    ) -> None:
        import random

        from mesoclinic.outcomes import photo_demo
        from tests.test_web import course_with_sessions

        course = course_with_sessions(world, patient, 3, timezone.now() - dt.timedelta(days=21))
        stored = photo_demo.seed(
            world.clinic, world.practitioner, random.Random(1), patients=(("Lopez", True),)
        )
        assert stored == 4
        found = photos.pairs(Photo.objects.filter(course=course), photo_actions.VIEWS)
        assert [(p.view, p.comparable) for p in found] == [("front", True), ("back", True)]
        assert photo_actions.marketing_photos(world.clinic).count() == 4
        for photo in Photo.objects.all():
            assert photos.metadata_of(stored_bytes(photo))["exif"] == {}
