"""The side-effect diary in the portal: a patient reports a side effect after their session
through the staff's own action, and gets the status staff get (expected until a time, beyond
expected, urgent) with what to do and the clinic's phone number; anything not expected opens
the clinic's follow-up at once; an optional photo is kept with the clinical photos, shown to
staff on the side effect and never in the marketing gallery; another patient, and staff, are
refused."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent, Clinic
from mesoclinic.courses.models import FollowUp, Session, SideEffect
from mesoclinic.outcomes import photo_actions
from mesoclinic.outcomes.models import Photo
from tests.conftest import Scene
from tests.test_portal import ana as ana  # noqa: F401 - a fixture
from tests.test_portal import otto as otto  # noqa: F401 - a fixture
from tests.test_portal import staff_client


@pytest.fixture(autouse=True)
def clinic_phone(world: Any) -> None:
    Clinic.objects.filter(pk=world.clinic.pk).update(phone="+1 212 555 0199")


def form(scene: Scene, onset: dt.datetime, **changes: Any) -> dict[str, Any]:
    local = onset.astimezone(scene.world.clinic.tz)
    body: dict[str, Any] = {
        "session": scene.session["id"],
        "kind": "bruising",
        "description": "",
        "onset_at": f"{local:%Y-%m-%dT%H:%M}",
        "grade": 1,
        "area": "thighs",
    }
    body.update(changes)
    return body


def report(client: Client, scene: Scene, body: dict[str, Any]) -> Any:
    return client.post(f"/my/diary/{scene.course['id']}/report/", body)


def performed(scene: Scene) -> dt.datetime:
    return Session.objects.get(pk=scene.session["id"]).performed_at


def mine(scene: Scene) -> Any:
    return SideEffect.objects.filter(reported_by__patient=scene.patient)


class DiaryTests:
    def test_a_bruise_is_expected_until_a_time_and_opens_no_follow_up(
        self, scene: Scene, ana: Client
    ) -> None:
        onset = performed(scene) + dt.timedelta(minutes=10)
        r = report(ana, scene, form(scene, onset))
        effect = mine(scene).get()
        assert r.status_code == 302 and r["Location"] == f"/my/diary/side-effects/{effect.pk}/"
        assert effect.status == "expected" and effect.kind == "bruising"
        # The protocol's week for bruising, counted from the onset.
        assert effect.expected_until == onset.replace(second=0, microsecond=0) + dt.timedelta(
            hours=168
        )
        assert not effect.follow_ups.exists()
        page = ana.get(r["Location"]).content.decode()
        assert "This is expected after your session." in page
        assert "Bruising is expected to last up to 7 days" in page
        assert "+1 212 555 0199" in page
        assert ".txt" not in page
        row = AuditEvent.objects.get(
            object_type="courses.SideEffect", object_id=str(effect.pk), action="create"
        )
        assert row.via == "portal" and row.user == effect.reported_by
        assert row.patient_id == scene.patient.pk

    def test_a_swelling_past_five_days_is_beyond_expected_and_opens_a_follow_up(
        self, scene: Scene, ana: Client
    ) -> None:
        # The session six days ago; the swelling began an hour after it and lasts still.
        Session.objects.filter(pk=scene.session["id"]).update(
            performed_at=timezone.now() - dt.timedelta(days=6)
        )
        onset = performed(scene) + dt.timedelta(hours=1)
        r = report(ana, scene, form(scene, onset, kind="swelling", grade=2))
        assert r.status_code == 302, r.content.decode()[:2000]
        effect = mine(scene).get()
        assert effect.status == "beyond_expected"
        follow_up = effect.follow_ups.get()
        assert follow_up.status == FollowUp.Status.OPEN
        assert follow_up.priority == FollowUp.Priority.ROUTINE
        page = ana.get(r["Location"]).content.decode()
        assert "This is beyond what is expected after your session." in page
        assert "will follow it up with you" in page
        assert "Call Demo Mesotherapy Clinic on" in page and "+1 212 555 0199" in page
        # The clinic's Today lists the follow-up.
        today = staff_client(scene.world.practitioner).get("/today/").content.decode()
        assert "Swelling (grade 2) is beyond expected" in today

    def test_a_severe_one_is_urgent_and_says_to_call_now(self, scene: Scene, ana: Client) -> None:
        onset = performed(scene) + dt.timedelta(minutes=5)
        r = report(ana, scene, form(scene, onset, kind="swelling", grade=3))
        effect = mine(scene).get()
        assert effect.status == "urgent"
        assert effect.follow_ups.get().priority == FollowUp.Priority.URGENT
        page = ana.get(r["Location"]).content.decode()
        assert "now. If you feel unwell, or it gets worse, seek urgent care now" in page
        assert "your local emergency services" in page

    def test_something_else_needs_a_description_beside_the_field(
        self, scene: Scene, ana: Client
    ) -> None:
        onset = performed(scene) + dt.timedelta(minutes=5)
        r = report(ana, scene, form(scene, onset, kind="other"))
        assert r.status_code == 400
        page = r.content.decode()
        assert 'id="id_description_error"' in page
        assert "Tell us in a few words what you notice." in page
        assert not mine(scene).exists()
        r = report(ana, scene, form(scene, onset, kind="other", description="A small lump"))
        assert r.status_code == 302
        # "Other" has no expected course in the protocol: beyond expected, a follow-up.
        assert mine(scene).get().status == "beyond_expected"

    def test_an_onset_before_the_session_or_to_come_is_refused_in_plain_words(
        self, scene: Scene, ana: Client
    ) -> None:
        before = report(ana, scene, form(scene, performed(scene) - dt.timedelta(hours=2)))
        assert before.status_code == 400
        assert "This is before the session" in before.content.decode()
        later = report(ana, scene, form(scene, timezone.now() + dt.timedelta(hours=2)))
        assert later.status_code == 400
        assert "This time is still to come" in later.content.decode()
        assert not mine(scene).exists()

    def test_the_diary_lists_the_patients_own_side_effects(
        self, scene: Scene, ana: Client, otto: Client
    ) -> None:
        page = ana.get("/my/diary/").content.decode()
        # The scene's swelling, recorded by staff, with the portal's report link.
        assert "Swelling" in page and f"/my/diary/{scene.course['id']}/report/" in page
        other = otto.get("/my/diary/").content.decode()
        assert "Swelling" not in other
        assert "after your first session" in other


@pytest.fixture
def photo_store(settings: Any, tmp_path: Any) -> None:
    settings.STORAGES = {
        **settings.STORAGES,
        "clinical_photos": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": tmp_path / "photos", "base_url": None},
        },
    }


class DiaryPhotoTests:
    def test_a_photo_is_kept_on_the_side_effect_for_staff_and_not_for_marketing(
        self, scene: Scene, ana: Client, photo_store: None
    ) -> None:
        from tests.test_photos import jpeg

        world = scene.world
        for purpose in ("clinical", "marketing"):
            photo_actions.do_record_photo_consent(
                scene.patient, purpose=purpose, granted=True, user=world.practitioner
            )
        body = form(scene, performed(scene) + dt.timedelta(minutes=5))
        body["photo"] = SimpleUploadedFile("bruise.jpg", jpeg(), content_type="image/jpeg")
        r = report(ana, scene, body)
        assert r.status_code == 302, r.content.decode()[:3000]
        effect = mine(scene).get()
        photo = Photo.objects.get(side_effect=effect)
        assert photo.session_id == scene.session["id"] and photo.area == "thighs"
        assert f"/my/photos/{photo.pk}/" in ana.get(r["Location"]).content.decode()
        chart = staff_client(world.practitioner).get(f"/patients/{scene.patient.pk}/")
        assert f"/photos/{photo.pk}/image" in chart.content.decode()
        assert photo not in photo_actions.marketing_photos(world.clinic)

    def test_without_clinical_photo_consent_nothing_is_written(
        self, scene: Scene, ana: Client, photo_store: None
    ) -> None:
        from tests.test_photos import jpeg

        body = form(scene, performed(scene) + dt.timedelta(minutes=5))
        body["photo"] = SimpleUploadedFile("bruise.jpg", jpeg(), content_type="image/jpeg")
        r = report(ana, scene, body)
        assert r.status_code == 400
        assert "You have not agreed to clinical photos" in r.content.decode()
        assert 'id="id_photo_error"' in r.content.decode()
        assert not mine(scene).exists() and not Photo.objects.exists()

    def test_a_photo_too_large_is_refused_beside_the_field_and_nothing_is_written(
        self, scene: Scene, ana: Client, photo_store: None, settings: Any
    ) -> None:
        from tests.test_photos import jpeg

        photo_actions.do_record_photo_consent(
            scene.patient, purpose="clinical", granted=True, user=scene.world.practitioner
        )
        settings.PHOTO_MAX_BYTES = 2000
        body = form(scene, performed(scene) + dt.timedelta(minutes=5))
        body["photo"] = SimpleUploadedFile("bruise.jpg", jpeg(), content_type="image/jpeg")
        r = report(ana, scene, body)
        assert r.status_code == 400
        page = r.content.decode()
        assert 'id="id_photo_error"' in page and "This photo is over" in page
        assert "a photo may be at most" in page
        assert not mine(scene).exists() and not Photo.objects.exists()

    def test_a_file_that_is_not_a_photo_is_refused_beside_the_field(
        self, scene: Scene, ana: Client, photo_store: None
    ) -> None:
        photo_actions.do_record_photo_consent(
            scene.patient, purpose="clinical", granted=True, user=scene.world.practitioner
        )
        body = form(scene, performed(scene) + dt.timedelta(minutes=5))
        body["photo"] = SimpleUploadedFile("notes.jpg", b"not an image" * 50)
        r = report(ana, scene, body)
        assert r.status_code == 400
        assert 'id="id_photo_error"' in r.content.decode()
        assert not mine(scene).exists() and not Photo.objects.exists()


class DiaryAccessTests:
    def test_another_patient_may_not_report_on_or_read_this_patients_course(
        self, scene: Scene, ana: Client, otto: Client
    ) -> None:
        onset = performed(scene) + dt.timedelta(minutes=5)
        assert otto.get(f"/my/diary/{scene.course['id']}/report/").status_code == 404
        assert report(otto, scene, form(scene, onset)).status_code == 404
        assert otto.get(f"/my/diary/side-effects/{scene.side_effect['id']}/").status_code == 404
        assert ana.get(f"/my/diary/side-effects/{scene.side_effect['id']}/").status_code == 200
        assert not mine(scene).exists()

    def test_staff_are_refused_the_diary(self, scene: Scene) -> None:
        client = staff_client(scene.world.manager)
        assert client.get("/my/diary/").status_code == 403
        assert client.get(f"/my/diary/{scene.course['id']}/report/").status_code == 403
        onset = performed(scene) + dt.timedelta(minutes=5)
        assert report(client, scene, form(scene, onset)).status_code == 403


class DiaryResendTests:
    def test_the_same_report_sent_twice_is_recorded_once(self, scene: Scene, ana: Client) -> None:
        body = form(scene, performed(scene) + dt.timedelta(minutes=5), kind="swelling", grade=2)
        first = report(ana, scene, body)
        again = report(ana, scene, body)
        effect = mine(scene).get()
        assert first["Location"] == again["Location"] == f"/my/diary/side-effects/{effect.pk}/"
        # A different answer is a new report.
        report(ana, scene, {**body, "grade": 1})
        assert mine(scene).count() == 2
