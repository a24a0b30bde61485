"""Serious adverse events and the infection watch in the web app: the form from a session or a
side effect, the update, the clinic's list, the course card, the timeline and Today, with the
roles and the clinic each page allows."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent
from mesoclinic.courses.actions import do_report_side_effect
from mesoclinic.courses.models import Course, FollowUp, Session
from mesoclinic.patients.models import Patient
from mesoclinic.safety import actions, watch
from mesoclinic.safety.models import AdverseEvent, WatchPrompt
from mesoclinic.web.safety_card import watch_summary
from tests.conftest import World
from tests.test_portal import signed_in_patient
from tests.test_web import course_with_sessions, signed_in

FIRST = timezone.now() - dt.timedelta(days=15)


@pytest.fixture
def course(world: World, patient: Patient) -> Course:
    return course_with_sessions(world, patient, 1, FIRST)  # type: ignore[no-any-return]


@pytest.fixture
def session(course: Course) -> Session:
    return course.sessions.get()


def form(session: Session, **changes: Any) -> dict[str, Any]:
    tz = session.course.clinic.tz
    data = {
        "kind": "infection",
        "ctcae_grade": "2",
        "onset_at": (session.performed_at + dt.timedelta(days=9))
        .astimezone(tz)
        .strftime("%Y-%m-%dT%H:%M"),
        "outcome": "ongoing",
        "outcome_at": "",
        "actions_taken": "Swab taken",
        "description": "",
        "snomed_code": "",
        "side_effect": "",
    }
    data.update(changes)
    return data


def url(session: Session) -> str:
    return f"/safety/sessions/{session.pk}/adverse-events/new/"


class ReportPageTests:
    def test_the_form_offers_the_sessions_lots_and_the_ctcae_words(self, world, session):
        page = signed_in(world.practitioner).get(url(session)).content.decode()
        assert world.lot.lot_number in page
        assert world.lidocaine_lot.lot_number not in page
        assert "Severe: ulceration, necrosis or severe tissue damage" in page
        assert "mesoclinic ships no codes" in page

    def test_a_practitioner_records_an_infection_and_an_urgent_follow_up_opens(
        self, world, session
    ):
        client = signed_in(world.practitioner)
        response = client.post(url(session), form(session, lots=[world.lot.pk]))
        assert response.status_code == 302
        event = AdverseEvent.objects.get()
        assert list(event.suspected_lots.all()) == [world.lot]
        assert FollowUp.objects.get().priority == "urgent"
        chart = client.get(response["Location"]).content.decode()
        assert "An urgent follow-up was opened" in chart
        assert f'id="adverse-event-{event.pk}"' in chart and "Swab taken" in chart
        today = client.get("/today/").content.decode()
        assert "Serious adverse event: Infection, CTCAE grade 2 (session 1)" in today

    def test_bad_input_is_shown_on_its_field(self, world, session, other):
        client = signed_in(world.manager)
        page = client.post(url(session), form(session, snomed_code="22298007"))
        assert page.status_code == 200
        assert "check digit does not match" in page.content.decode()
        page = client.post(url(session), form(session, lots=[other.lot.pk]))
        assert "Select a valid choice" in page.content.decode()
        early = (session.performed_at - dt.timedelta(hours=2)).astimezone(world.clinic.tz)
        page = client.post(url(session), form(session, onset_at=early.strftime("%Y-%m-%dT%H:%M")))
        assert "cannot be before the session" in page.content.decode()
        assert not AdverseEvent.objects.exists()

    def test_escalating_a_side_effect_starts_from_it(self, world, session):
        effect = do_report_side_effect(
            session,
            kind="other",
            description="Firm nodule",
            onset_at=session.performed_at + dt.timedelta(days=8),
            grade=2,
            user=world.practitioner,
        )
        client = signed_in(world.practitioner)
        chart = client.get(f"/patients/{session.course.patient_id}/").content.decode()
        assert f"{url(session)}?side_effect={effect.pk}" in chart
        page = client.get(f"{url(session)}?side_effect={effect.pk}").content.decode()
        assert "Firm nodule" in page and f'value="{effect.pk}" selected' in page

    def test_the_course_button_asks_which_session(self, world, session):
        client = signed_in(world.practitioner)
        base = f"/safety/courses/{session.course_id}/adverse-events/new/"
        assert "After which session?" in client.get(base).content.decode()
        assert client.get(f"{base}?session={session.pk}")["Location"] == url(session)

    def test_front_desk_may_not_and_another_clinic_finds_nothing(self, world, other, session):
        desk = signed_in(world.front_desk)
        assert desk.get(url(session)).status_code == 403
        assert desk.post(url(session), form(session)).status_code == 403
        stranger = signed_in(other.manager)
        assert stranger.get(url(session)).status_code == 404
        assert stranger.post(url(session), form(session)).status_code == 404
        base = f"/safety/courses/{session.course_id}/adverse-events/new/"
        assert stranger.get(base).status_code == 404
        assert not AdverseEvent.objects.exists()

    def test_signed_out_is_sent_to_sign_in(self, session):
        assert Client().get(url(session))["Location"].startswith("/accounts/login/")


class UpdateAndListTests:
    @pytest.fixture
    def event(self, world, session) -> AdverseEvent:
        return actions.do_report_adverse_event(
            session,
            kind="pigmentation_change",
            ctcae_grade=1,
            onset_at=session.performed_at + dt.timedelta(days=2),
            lots=[world.lot],
            user=world.practitioner,
        )

    def test_the_outcome_is_updated_and_audited(self, world, session, event):
        tz_ended = (event.onset_at + dt.timedelta(days=3)).astimezone(world.clinic.tz)
        response = signed_in(world.manager).post(
            f"/safety/adverse-events/{event.pk}/",
            {
                "outcome": "resolved",
                "outcome_at": tz_ended.strftime("%Y-%m-%dT%H:%M"),
                "actions_taken": "Sunscreen advised",
            },
        )
        assert response.status_code == 302
        event.refresh_from_db()
        assert event.outcome == "resolved" and event.actions_taken == "Sunscreen advised"
        chart = signed_in(world.manager).get(f"/patients/{event.patient_id}/").content.decode()
        assert f'value="{tz_ended:%Y-%m-%dT%H:%M}"' in chart
        assert AuditEvent.objects.filter(
            action="update", object_id=str(event.pk), user=world.manager
        ).exists()

    def test_an_update_with_an_error_says_why_and_changes_nothing(self, world, event):
        client = signed_in(world.manager)
        response = client.post(
            f"/safety/adverse-events/{event.pk}/", {"outcome": "resolved", "actions_taken": ""}
        )
        assert "say when it ended" in client.get(response["Location"]).content.decode()
        event.refresh_from_db()
        assert event.outcome == "ongoing"

    def test_update_is_refused_to_front_desk_and_another_clinic(self, world, other, event):
        body = {"outcome": "unknown", "actions_taken": ""}
        assert (
            signed_in(world.front_desk).post(f"/safety/adverse-events/{event.pk}/", body)
        ).status_code == 403
        assert (
            signed_in(other.manager).post(f"/safety/adverse-events/{event.pk}/", body)
        ).status_code == 404
        event.refresh_from_db()
        assert event.outcome == "ongoing"

    def test_the_clinic_list_shows_its_own_events_to_clinical_staff(self, world, other, event):
        page = signed_in(world.practitioner).get("/safety/adverse-events/")
        assert page.status_code == 200
        body = page.content.decode()
        assert "Pigmentation change" in body and world.lot.lot_number in body
        assert AuditEvent.objects.filter(
            action="view", object_id=str(event.pk), patient_id=event.patient_id
        ).exists()
        assert signed_in(world.front_desk).get("/safety/adverse-events/").status_code == 403
        assert (
            "Pigmentation change"
            not in signed_in(other.manager).get("/safety/adverse-events/").content.decode()
        )


class WatchOnTheChartTests:
    def test_answers_show_on_the_course_card_the_timeline_and_today(self, world, session):
        watch.do_plan_watch()
        first = WatchPrompt.objects.get(session=session, week=2)
        actions.do_answer_watch(first.pk, {"lump": True, "fever": True, "notes": "Sore"})
        client = signed_in(world.practitioner)
        chart = client.get(f"/patients/{session.course.patient_id}/").content.decode()
        assert f'id="watch-answer-{first.pk}"' in chart
        assert "lump or hard swelling, fever" in chart
        assert "Infection watch, week 2 (session 1): lump or hard swelling, fever" in chart
        assert "Follow-up opened (urgent)" in chart
        today = client.get("/today/").content.decode()
        assert "Infection watch, week 2: the patient reports lump or hard swelling" in today

    def test_a_skipped_prompt_says_why(self, world, session, patient):
        patient.email = ""
        patient.save()
        watch.do_plan_watch()
        client = signed_in(world.manager)
        chart = client.get(f"/patients/{patient.pk}/").content.decode()
        assert "4 skipped" in chart
        schedule = client.get(schedule_url(session.course)).content.decode()
        assert schedule.count("the patient has no email address") == 4


def schedule_url(course: Course) -> str:
    return f"/safety/courses/{course.pk}/infection-watch/"


class WatchSchedulePageTests:
    """The whole schedule of a course's prompts has its own page; the chart links to it and
    shows only the counts, the answers and the next prompt, however many sessions."""

    def test_every_prompt_is_listed_with_its_answer_and_the_chart_links_to_it(
        self, world, course, session
    ):
        watch.do_plan_watch()
        first = WatchPrompt.objects.get(session=session, week=2)
        actions.do_answer_watch(first.pk, {"fever": True, "notes": "Warm at night"})
        client = signed_in(world.front_desk)
        chart = client.get(f"/patients/{course.patient_id}/").content.decode()
        assert schedule_url(course) in chart
        assert 'id="watch-' not in chart.replace('id="watch-answer-', "")
        response = client.get(schedule_url(course))
        assert response.status_code == 200
        page = response.content.decode()
        prompts = list(WatchPrompt.objects.filter(session__course=course))
        assert len(prompts) == 4
        for p in prompts:
            assert f'id="watch-{p.pk}"' in page
        assert "Warm at night" in page and "fever" in page
        assert "1 answered · 3 pending" in page
        assert AuditEvent.objects.filter(
            action=AuditEvent.Action.VIEW,
            object_type=Course._meta.label,
            object_id=str(course.pk),
            user=world.front_desk,
        ).exists()

    def test_another_clinic_and_the_patient_themself_are_refused(
        self, world, other, course, session
    ):
        watch.do_plan_watch()
        assert signed_in(other.manager).get(schedule_url(course)).status_code == 404
        # The patient answers the prompts in the portal; the staff's page is not theirs.
        patient_client = signed_in_patient(course.patient)
        assert patient_client.get(schedule_url(course)).status_code == 403


class WatchSummaryTests:
    """The course card shows the answers (warning signs first) and the next prompt to go,
    with the full schedule folded away."""

    def test_answers_with_warning_signs_come_first_and_the_next_prompt_is_the_earliest(
        self,
    ) -> None:
        t0 = dt.datetime(2026, 11, 1, 10, tzinfo=dt.UTC)

        def row(week: int, status: str, *, answered: int = 0, warning: bool = False) -> dict:
            p = WatchPrompt(
                week=week,
                status=status,
                due_at=t0 + dt.timedelta(weeks=week),
                next_attempt_at=t0,
                answered_at=t0 + dt.timedelta(days=answered) if answered else None,
            )
            return {"prompt": p, "warning": warning, "signs": [], "skip_words": ""}

        calm = row(2, "answered", answered=15)
        later_calm = row(4, "answered", answered=29)
        lump = row(8, "answered", answered=3, warning=True)
        rows = [calm, later_calm, lump, row(12, "pending"), row(16, "pending"), row(1, "skipped")]
        summary = watch_summary(rows)
        assert summary["answered"] == [lump, later_calm, calm]
        assert summary["next"].week == 12
        assert summary["counts"] == [("answered", 3), ("pending", 2), ("skipped", 1)]
        assert watch_summary([])["next"] is None
