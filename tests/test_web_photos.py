"""Clinical photos in the web app: recording consent from the chart, taking photos through the
file input, streaming them privately, comparing, the manager's marketing list, and S3 storage
against moto's S3 server on loopback."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from mesoclinic.accounts.models import AuditEvent
from mesoclinic.courses.models import Course
from mesoclinic.outcomes import photo_actions, photos
from mesoclinic.outcomes.models import Photo, PhotoConsent
from mesoclinic.patients.models import Patient
from tests.conftest import World
from tests.test_photos import cellulite_course, grant, jpeg, photo_dir, png, stored_bytes
from tests.test_web import signed_in

__all__ = ["photo_dir"]  # the fixture, used by name


def upload(name: str, data: bytes, content_type: str = "image/jpeg") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


def post_photos(client: Client, course: Course, area: str = "thighs", **files: Any) -> Any:
    data: dict[str, Any] = {"area": area}
    for view, f in files.items():
        data[f"{area}-{view}"] = f
    return client.post(reverse("web:course_photos", args=[course.pk]), data)


@pytest.fixture
def course(world: World, patient: Patient) -> Course:
    return cellulite_course(world, patient)


@pytest.fixture
def consented(world: World, patient: Patient) -> PhotoConsent:
    return grant(patient, world.practitioner, decided_at=timezone.now() - dt.timedelta(days=60))


def two_photos(world: World, course: Course) -> tuple[Photo, Photo]:
    [first] = photo_actions.do_upload_photos(
        course,
        area="thighs",
        images={"front": jpeg()},
        taken_at=timezone.now() - dt.timedelta(days=50),
        user=world.practitioner,
    )
    [last] = photo_actions.do_upload_photos(
        course, area="thighs", images={"front": png()}, user=world.practitioner
    )
    return first, last


@pytest.mark.django_db
class PhotoConsentPageTests:
    def test_it_records_clinical_consent_without_marketing(
        self, world: World, patient: Patient, course: Course
    ) -> None:
        client = signed_in(world.practitioner)
        url = reverse("web:photo_consent", args=[patient.pk])
        page = client.get(url)
        assert page.status_code == 200
        assert escape(photo_actions.CONSENT_TEXT["clinical"]) in page.content.decode()
        response = client.post(
            url,
            {
                "clinical-purpose": "clinical",
                "clinical-granted": "yes",
                "clinical-text": "The words as read.",
            },
        )
        assert response.status_code == 302
        consent = PhotoConsent.objects.get()
        assert (consent.purpose, consent.granted, consent.text) == (
            "clinical",
            True,
            "The words as read.",
        )
        assert consent.recorded_by == world.practitioner
        assert not photo_actions.has_consent(patient, "marketing")
        chart = client.get(reverse("web:chart", args=[patient.pk])).content.decode()
        assert "Consent to clinical photos:" in chart and "Take or compare photos" in chart

    def test_a_missing_decision_is_named(self, world: World, patient: Patient) -> None:
        client = signed_in(world.practitioner)
        response = client.post(
            reverse("web:photo_consent", args=[patient.pk]),
            {"marketing-purpose": "marketing", "marketing-text": "words"},
        )
        assert response.status_code == 200
        assert response.context["forms"][1].errors == {"granted": ["This field is required."]}
        assert not PhotoConsent.objects.exists()

    def test_a_future_decision_is_refused_on_its_field(
        self, world: World, patient: Patient
    ) -> None:
        client = signed_in(world.practitioner)
        later = (
            timezone.localtime(timezone.now(), world.clinic.tz) + dt.timedelta(days=2)
        ).strftime("%Y-%m-%dT%H:%M")
        response = client.post(
            reverse("web:photo_consent", args=[patient.pk]),
            {
                "clinical-purpose": "clinical",
                "clinical-granted": "yes",
                "clinical-text": "words",
                "clinical-decided_at": later,
            },
        )
        assert response.context["forms"][0].errors == {"decided_at": ["cannot be in the future."]}

    def test_front_desk_and_another_clinic_may_not(
        self, world: World, other: World, patient: Patient
    ) -> None:
        url = reverse("web:photo_consent", args=[patient.pk])
        body = {"clinical-purpose": "clinical", "clinical-granted": "yes", "clinical-text": "w"}
        assert signed_in(world.front_desk).post(url, body).status_code == 403
        assert signed_in(other.manager).post(url, body).status_code == 404
        assert Client().get(url).status_code == 302  # to the login page
        assert not PhotoConsent.objects.exists()


@pytest.mark.django_db
class TakePhotosTests:
    def test_the_form_opens_the_camera_on_a_tablet(
        self, world: World, course: Course, consented: PhotoConsent
    ) -> None:
        page = signed_in(world.practitioner).get(reverse("web:course_photos", args=[course.pk]))
        html = page.content.decode()
        inputs = re.findall(r"<input[^>]*type=\"file\"[^>]*>", html)
        assert len(inputs) == 8  # two areas, four views each
        for tag in inputs:
            assert 'accept="image/jpeg,image/png"' in tag and 'capture="environment"' in tag

    def test_it_stores_uploaded_views_without_exif(
        self, world: World, course: Course, consented: PhotoConsent, photo_dir: Path
    ) -> None:
        client = signed_in(world.practitioner)
        response = post_photos(
            client,
            course,
            front=upload("IMG_0001.JPG", jpeg(gps=True)),
            left=upload("IMG_0002.png", png(), "image/png"),
        )
        assert response.status_code == 302, response.content[:2000]
        stored = {p.view: p for p in Photo.objects.all()}
        assert set(stored) == {"front", "left"}
        data = stored_bytes(stored["front"])
        assert photos.metadata_of(data)["exif"] == {}
        assert stored["front"].sha256 == hashlib.sha256(data).hexdigest()
        assert stored["left"].content_type == "image/png"

    def test_a_text_file_renamed_jpg_is_refused_beside_its_input(
        self, world: World, course: Course, consented: PhotoConsent, photo_dir: Path
    ) -> None:
        client = signed_in(world.practitioner)
        response = post_photos(
            client,
            course,
            front=upload("notes.jpg", b"Patient said the left thigh hurts.\n" * 20),
            back=upload("back.jpg", jpeg()),
        )
        assert response.status_code == 200
        form = response.context["areas"][0]["form"]
        assert form.errors == {"front": ["is not a JPEG or PNG image."]}
        assert "is not a JPEG or PNG image." in response.content.decode()
        assert not Photo.objects.exists()

    def test_a_picture_too_small_or_too_large_is_refused(
        self, world: World, course: Course, consented: PhotoConsent, photo_dir: Path
    ) -> None:
        client = signed_in(world.practitioner)
        response = post_photos(
            client,
            course,
            right=upload("small.jpg", jpeg(400, 300)),
            back=upload("huge.jpg", b"\xff\xd8\xff" + b"\0" * photos.MAX_BYTES),
        )
        errors = response.context["areas"][0]["form"].errors
        assert errors["right"] == [
            "is 400 × 300 pixels; the shorter side must be at least 480 pixels."
        ]
        assert errors["back"] == ["is over 15.0 MB; a photo may be at most 15.0 MB."]
        assert not Photo.objects.exists()

    def test_no_file_at_all_is_named(
        self, world: World, course: Course, consented: PhotoConsent, photo_dir: Path
    ) -> None:
        response = post_photos(signed_in(world.practitioner), course)
        assert response.context["areas"][0]["form"].non_field_errors() == [
            "image: choose at least one photo."
        ]

    def test_without_clinical_consent_no_form_and_no_upload(
        self, world: World, patient: Patient, course: Course, photo_dir: Path
    ) -> None:
        grant(patient, world.practitioner, "marketing")
        client = signed_in(world.practitioner)
        page = client.get(reverse("web:course_photos", args=[course.pk])).content.decode()
        assert "has not granted consent to clinical photos" in page
        assert 'type="file"' not in page
        response = post_photos(client, course, front=upload("a.jpg", jpeg()))
        assert "consent: the patient has not granted consent" in response.content.decode()
        assert not Photo.objects.exists()

    def test_wrong_role_and_wrong_clinic_may_not_upload(
        self,
        world: World,
        other: World,
        course: Course,
        consented: PhotoConsent,
        photo_dir: Path,
    ) -> None:
        for user, status in ((world.front_desk, 403), (other.practitioner, 404)):
            response = post_photos(signed_in(user), course, front=upload("a.jpg", jpeg()))
            assert response.status_code == status
        assert not Photo.objects.exists()


@pytest.mark.django_db
class ServeAndCompareTests:
    def test_an_image_is_streamed_privately_and_the_read_audited(
        self, world: World, patient: Patient, course: Course, consented: PhotoConsent,
        photo_dir: Path,
    ) -> None:  # fmt: skip
        first, _ = two_photos(world, course)
        response = signed_in(world.practitioner).get(reverse("web:photo_image", args=[first.pk]))
        assert response.status_code == 200
        assert response["Content-Type"] == "image/jpeg"
        assert response["Cache-Control"] == "private, no-store"
        assert b"".join(response.streaming_content) == stored_bytes(first)
        read = AuditEvent.objects.filter(object_type="outcomes.Photo", action="view").get()
        assert (read.patient_id, read.object_id, read.user) == (
            patient.pk,
            str(first.pk),
            world.practitioner,
        )

    def test_another_clinic_a_front_desk_and_a_stranger_cannot_see_it(
        self, world: World, other: World, course: Course, consented: PhotoConsent,
        photo_dir: Path,
    ) -> None:  # fmt: skip
        first, _ = two_photos(world, course)
        url = reverse("web:photo_image", args=[first.pk])
        assert signed_in(other.manager).get(url).status_code == 404
        assert signed_in(world.front_desk).get(url).status_code == 403
        assert Client().get(url).status_code == 302
        assert not AuditEvent.objects.filter(object_type="outcomes.Photo", action="view").exists()

    def test_compare_shows_baseline_and_latest_and_the_overlay(
        self, world: World, course: Course, consented: PhotoConsent, photo_dir: Path
    ) -> None:
        first, last = two_photos(world, course)
        client = signed_in(world.manager)
        photos_page = client.get(reverse("web:course_photos", args=[course.pk])).content.decode()
        compare = reverse("web:compare_photos", args=[course.pk]) + "?area=thighs&view=front"
        assert compare.replace("&", "&amp;") in photos_page
        html = client.get(compare).content.decode()
        side = html[html.index('id="h-side"') : html.index('id="overlay"')]
        assert reverse("web:photo_image", args=[first.pk]) in side
        assert reverse("web:photo_image", args=[last.pk]) in side
        overlay = html[html.index('id="overlay"') :]
        assert 'type="range"' in overlay and "js/photo-compare.js" in html
        # Without JavaScript the overlay stays hidden and the side-by-side view shows both.
        assert re.search(r'<section[^>]*id="overlay"[^>]*hidden', html)

    def test_compare_of_a_view_without_photos_is_404(
        self, world: World, course: Course, consented: PhotoConsent
    ) -> None:
        url = reverse("web:compare_photos", args=[course.pk]) + "?area=thighs&view=back"
        assert signed_in(world.manager).get(url).status_code == 404

    def test_the_chart_shows_the_photo_consents_and_counts(
        self, world: World, patient: Patient, course: Course, consented: PhotoConsent,
        photo_dir: Path,
    ) -> None:  # fmt: skip
        two_photos(world, course)
        html = signed_in(world.practitioner).get(reverse("web:chart", args=[patient.pk]))
        text = html.content.decode()
        assert "Take or compare photos" in text and "Thighs: 2" in text
        desk = signed_in(world.front_desk).get(reverse("web:chart", args=[patient.pk]))
        assert "Take or compare photos" not in desk.content.decode()


@pytest.mark.django_db
class MarketingPageTests:
    def test_only_a_manager_sees_it_and_a_withdrawal_removes_photos_at_once(
        self, world: World, other: World, patient: Patient, course: Course,
        consented: PhotoConsent, photo_dir: Path,
    ) -> None:  # fmt: skip
        first, _ = two_photos(world, course)
        url = reverse("web:marketing_photos")
        manager = signed_in(world.manager)
        assert signed_in(world.practitioner).get(url).status_code == 403
        image = reverse("web:photo_image", args=[first.pk])
        assert image not in manager.get(url).content.decode()
        grant(patient, world.practitioner, "marketing")
        assert image in manager.get(url).content.decode()
        assert image not in signed_in(other.manager).get(url).content.decode()
        photo_actions.do_record_photo_consent(
            patient, purpose="marketing", granted=False, user=world.practitioner
        )
        assert image not in manager.get(url).content.decode()


# S3: the same upload and read-back through django-storages' S3 backend, against moto's S3
# server on loopback (a real HTTP server speaking the S3 protocol, in a thread).


@pytest.fixture
def s3(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    boto3 = pytest.importorskip("boto3")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        monkeypatch.setenv(name, value)
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="clinic-photos")
    settings.STORAGES = {
        **settings.STORAGES,
        "clinical_photos": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": "clinic-photos",
                "endpoint_url": endpoint,
                "region_name": "us-east-1",
                "default_acl": "private",
                "querystring_auth": True,
                "file_overwrite": False,
            },
        },
    }
    try:
        yield client
    finally:
        server.stop()


@pytest.mark.django_db
class S3StorageTests:
    def test_photos_go_to_s3_without_exif_and_come_back_through_the_view(
        self, world: World, course: Course, consented: PhotoConsent, s3: Any
    ) -> None:
        client = signed_in(world.practitioner)
        response = post_photos(client, course, front=upload("IMG.JPG", jpeg(gps=True)))
        assert response.status_code == 302, response.content[:2000]
        photo = Photo.objects.get()
        stored = s3.get_object(Bucket="clinic-photos", Key=photo.image.name)
        data = stored["Body"].read()
        assert photos.metadata_of(data)["exif"] == {}
        assert hashlib.sha256(data).hexdigest() == photo.sha256
        assert stored["ContentType"] == "image/jpeg"
        acl = s3.get_object_acl(Bucket="clinic-photos", Key=photo.image.name)
        assert not any(g["Grantee"].get("URI", "").endswith("AllUsers") for g in acl["Grants"]), (
            acl["Grants"]
        )
        served = client.get(reverse("web:photo_image", args=[photo.pk]))
        assert b"".join(served.streaming_content) == data
