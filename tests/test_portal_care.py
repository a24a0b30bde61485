"""The infection-watch questions and the recall notices in the portal: a signed-in patient
sees their own, answers a questionnaire through the same action as the emailed link (once,
whichever they use), and marks a notice read with a button, through notify's own action;
another patient gets a 404 and staff are refused."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.test import Client
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent
from mesoclinic.courses.models import FollowUp, Session
from mesoclinic.notify.models import RecallNotice
from mesoclinic.safety import links as watch_links
from mesoclinic.safety.models import WatchPrompt
from tests.conftest import Scene
from tests.test_portal import ana as ana  # noqa: F401 - a fixture
from tests.test_portal import otto as otto  # noqa: F401 - a fixture
from tests.test_portal import staff_client

NO = {"lump": "no", "discharge": "no", "wound": "no", "redness": "no", "fever": "no"}


def prompt(scene: Scene, week: int, due_in: dt.timedelta) -> WatchPrompt:
    due = timezone.now() + due_in
    return WatchPrompt.objects.create(
        clinic=scene.world.clinic,
        session=Session.objects.get(pk=scene.session["id"]),
        week=week,
        due_at=due,
        next_attempt_at=due,
    )


class WatchTests:
    def test_a_due_questionnaire_is_listed_and_answered_once_in_the_portal(
        self, scene: Scene, ana: Client
    ) -> None:
        due = prompt(scene, 2, -dt.timedelta(hours=3))
        later = prompt(scene, 4, dt.timedelta(days=14))
        page = ana.get("/my/watch/").content.decode()
        assert f"/my/watch/{due.pk}/" in page
        assert "asks a few questions 2, 4, 8 and 12 weeks after each session" in page
        # Not due yet: not offered, but its day is shown.
        assert f"/my/watch/{later.pk}/" not in page and "The next questions are due on" in page
        r = ana.post(f"/my/watch/{due.pk}/", {**NO, "lump": "yes", "notes": "A small bump"})
        assert r.status_code == 302 and r["Location"] == f"/my/watch/{due.pk}/"
        due.refresh_from_db()
        assert due.answered_at is not None and due.answers["lump"] is True
        assert due.warning_signs == ["lump"]
        # A warning sign opens the clinic's urgent follow-up, as from the link page.
        assert due.follow_up is not None
        assert due.follow_up.priority == FollowUp.Priority.URGENT
        row = AuditEvent.objects.get(
            object_type="safety.WatchPrompt", object_id=str(due.pk), action="update"
        )
        assert row.via == "portal" and row.user is not None
        assert row.user.pk == scene.patient.__class__.objects.get(pk=scene.patient.pk).user_id
        page = ana.get(f"/my/watch/{due.pk}/").content.decode()
        assert "will contact you about what you reported" in page
        assert "your local emergency services" in page
        # Once: a second answer, here or from the emailed link, changes nothing.
        ana.post(f"/my/watch/{due.pk}/", NO)
        Client().post(f"/w/{watch_links.make_token(due)}/", NO)
        due.refresh_from_db()
        assert due.answers["lump"] is True
        assert FollowUp.objects.filter(watch_prompts=due).count() == 1

    def test_an_answer_from_the_link_shows_in_the_portal(self, scene: Scene, ana: Client) -> None:
        due = prompt(scene, 2, -dt.timedelta(hours=3))
        r = Client().post(f"/w/{watch_links.make_token(due)}/", NO)
        assert r.status_code == 302
        page = ana.get(f"/my/watch/{due.pk}/").content.decode()
        assert "Thank you, we have your answers" in page
        assert 'name="lump"' not in page

    def test_a_questionnaire_not_due_cannot_be_answered(self, scene: Scene, ana: Client) -> None:
        later = prompt(scene, 4, dt.timedelta(days=14))
        ana.post(f"/my/watch/{later.pk}/", NO)
        later.refresh_from_db()
        assert later.answered_at is None

    def test_a_missing_answer_is_shown_beside_its_question(self, scene: Scene, ana: Client) -> None:
        due = prompt(scene, 2, -dt.timedelta(hours=3))
        r = ana.post(f"/my/watch/{due.pk}/", {k: v for k, v in NO.items() if k != "fever"})
        assert r.status_code == 400
        assert 'id="q-fever"' in r.content.decode() and "field-error" in r.content.decode()
        due.refresh_from_db()
        assert due.answered_at is None

    def test_another_patient_and_staff_are_refused(
        self, scene: Scene, otto: Client, ana: Client
    ) -> None:
        due = prompt(scene, 2, -dt.timedelta(hours=3))
        assert otto.get(f"/my/watch/{due.pk}/").status_code == 404
        assert otto.post(f"/my/watch/{due.pk}/", NO).status_code == 404
        assert f"/my/watch/{due.pk}/" not in otto.get("/my/watch/").content.decode()
        staff = staff_client(scene.world.practitioner)
        assert staff.get("/my/watch/").status_code == 403
        assert staff.post(f"/my/watch/{due.pk}/", NO).status_code == 403
        due.refresh_from_db()
        assert due.answered_at is None


def notice(scene: Scene, **extra: Any) -> RecallNotice:
    return RecallNotice.objects.create(
        clinic=scene.world.clinic,
        lot=scene.world.lot,
        patient=scene.patient,
        text="A lot used in your treatment has been recalled. Please call us.",
        **extra,
    )


class NoticeTests:
    def test_the_patient_reads_a_notice_and_marks_it_read_with_the_button(
        self, scene: Scene, ana: Client
    ) -> None:
        sent = notice(scene)
        listing = ana.get("/my/notices/").content.decode()
        assert f"/my/notices/{sent.pk}/" in listing and "Not read yet" in listing
        page = ana.get(f"/my/notices/{sent.pk}/").content.decode()
        assert "A lot used in your treatment has been recalled." in page
        # Opening the page is not reading it: only the button press records that.
        sent.refresh_from_db()
        assert sent.read_at is None
        r = ana.post(f"/my/notices/{sent.pk}/")
        assert r.status_code == 302
        sent.refresh_from_db()
        first = sent.read_at
        assert first is not None
        assert "the clinic knows you read this notice" in ana.get(r["Location"]).content.decode()
        # A second press keeps the first time.
        ana.post(f"/my/notices/{sent.pk}/")
        sent.refresh_from_db()
        assert sent.read_at == first
        assert AuditEvent.objects.filter(
            object_type="notify.RecallNotice", object_id=str(sent.pk), action="view", via="web"
        ).exists()

    def test_the_home_page_says_a_notice_is_waiting_until_it_is_read(
        self, scene: Scene, ana: Client, otto: Client
    ) -> None:
        sent = notice(scene)
        waiting = "has sent you a notice you have not read yet"
        assert waiting in ana.get("/my/").content.decode()
        assert waiting not in otto.get("/my/").content.decode()
        ana.post(f"/my/notices/{sent.pk}/")
        assert waiting not in ana.get("/my/").content.decode()

    def test_another_patient_and_staff_are_refused(self, scene: Scene, otto: Client) -> None:
        sent = notice(scene)
        assert otto.get(f"/my/notices/{sent.pk}/").status_code == 404
        assert otto.post(f"/my/notices/{sent.pk}/").status_code == 404
        assert "The clinic has sent you no notice." in otto.get("/my/notices/").content.decode()
        staff = staff_client(scene.world.manager)
        assert staff.get("/my/notices/").status_code == 403
        assert staff.post(f"/my/notices/{sent.pk}/").status_code == 403
        sent.refresh_from_db()
        assert sent.read_at is None
