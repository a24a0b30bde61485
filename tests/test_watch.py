"""The infection watch: prompts 2, 4, 8 and 12 weeks after each session, planned once, sent as
real email to a real SMTP server on loopback (aiosmtpd), and a questionnaire behind a signed
link that records one answer and opens an urgent follow-up on a warning sign."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from urllib.parse import urlsplit

import pytest
import time_machine
from django.core import signing
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent
from mesoclinic.courses.models import Course, FollowUp, Session
from mesoclinic.patients.models import Patient
from mesoclinic.reminders import links as reminder_links
from mesoclinic.safety import logic, watch
from mesoclinic.safety.models import WatchPrompt
from tests.conftest import World
from tests.test_reminders import Mailbox, Received, free_port
from tests.test_reminders import mail as mail  # noqa: F401 - a fixture
from tests.test_reminders import smtp_server as smtp_server  # noqa: F401 - a fixture
from tests.test_web import course_with_sessions

NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
PARIS = zoneinfo.ZoneInfo("Europe/Paris")
Status = WatchPrompt.Status
NO = {"lump": "no", "discharge": "no", "wound": "no", "redness": "no", "fever": "no"}


def days_ago(n: float) -> dt.datetime:
    return timezone.now() - dt.timedelta(days=n)


@pytest.fixture
def course(world: World, patient: Patient) -> Course:
    # Session 1 fifteen days ago: its week-2 prompt is a day overdue, week 4 is ahead.
    return course_with_sessions(world, patient, 1, days_ago(15))  # type: ignore[no-any-return]


@pytest.fixture
def session(course: Course) -> Session:
    return course.sessions.get()


def prompt(session: Session, week: int) -> WatchPrompt:
    return WatchPrompt.objects.get(session=session, week=week)


def link_in(received: Received) -> str:
    [url] = re.findall(r"https?://\S+/w/\S+/", received.text)
    return urlsplit(url).path


@pytest.fixture
def sent(session: Session, mail: Mailbox) -> tuple[WatchPrompt, str]:
    """The week-2 prompt sent, and the path of the link in the email."""
    watch.do_plan_watch()
    [outcome] = watch.send_due("w")
    assert outcome.status == "sent", outcome
    [received] = mail.wait_for(1)
    return prompt(session, 2), link_in(received)


class ScheduleTests:
    def test_prompts_fall_at_2_4_8_and_12_weeks_at_ten_in_the_clinics_zone(self) -> None:
        performed = dt.datetime(2026, 3, 2, 16, 30, tzinfo=NEW_YORK)
        due = [logic.due_at(performed, w, NEW_YORK).astimezone(NEW_YORK) for w in logic.WATCH_WEEKS]
        assert [d.date() for d in due] == [
            dt.date(2026, 3, 16),
            dt.date(2026, 3, 30),
            dt.date(2026, 4, 27),
            dt.date(2026, 5, 25),
        ]
        assert {(d.hour, d.minute) for d in due} == {(10, 0)}

    def test_the_local_hour_holds_across_daylight_saving_changes(self) -> None:
        # New York leaves summer time on 1 Nov 2026; Paris enters it on 29 Mar 2026.
        autumn = logic.due_at(dt.datetime(2026, 10, 25, 9, 0, tzinfo=NEW_YORK), 2, NEW_YORK)
        assert autumn == dt.datetime(2026, 11, 8, 15, 0, tzinfo=dt.UTC)  # 10:00 EST
        spring = logic.due_at(dt.datetime(2026, 3, 20, 18, 0, tzinfo=PARIS), 2, PARIS)
        assert spring == dt.datetime(2026, 4, 3, 8, 0, tzinfo=dt.UTC)  # 10:00 CEST

    def test_the_day_is_the_clinics_not_utcs(self) -> None:
        # 23:30 in New York is already the next day in UTC; the prompt counts from the local day.
        late = dt.datetime(2026, 6, 1, 23, 30, tzinfo=NEW_YORK)
        assert logic.due_at(late, 2, NEW_YORK).astimezone(NEW_YORK).date() == dt.date(2026, 6, 15)

    def test_a_prompt_is_worth_sending_until_a_week_overdue_and_needs_an_email(self) -> None:
        due = dt.datetime(2026, 6, 15, 14, 0, tzinfo=dt.UTC)
        week = dt.timedelta(days=7)
        assert logic.skip_reason(email="a@b.c", due=due, now=due + week) is None
        assert logic.skip_reason(email="a@b.c", due=due, now=due + week * 1.01) == "too_late"
        assert logic.skip_reason(email=" ", due=due, now=due) == "no_email"


class PlanningTests:
    def test_it_plans_four_prompts_per_session_once(self, session):
        assert watch.do_plan_watch() == 4
        assert watch.do_plan_watch() == 0
        rows = {p.week: p for p in WatchPrompt.objects.filter(session=session)}
        assert sorted(rows) == [2, 4, 8, 12]
        assert all(p.status == Status.PENDING for p in rows.values())
        assert rows[2].due_at == logic.due_at(session.performed_at, 2, NEW_YORK)
        assert rows[2].next_attempt_at == rows[2].due_at

    def test_a_session_beyond_the_window_gets_nothing(self, session):
        assert watch.do_plan_watch(now=timezone.now() + dt.timedelta(weeks=14)) == 0
        assert not WatchPrompt.objects.exists()

    def test_a_prompt_already_a_week_overdue_is_skipped_with_its_reason(self, world, patient):
        course = course_with_sessions(world, patient, 1, days_ago(25))
        watch.do_plan_watch()
        first = prompt(course.sessions.get(), 2)
        assert (first.status, first.skip_reason) == (Status.SKIPPED, "too_late")
        assert prompt(course.sessions.get(), 4).status == Status.PENDING

    def test_no_email_skips_until_the_patient_has_one(self, session, patient):
        patient.email = ""
        patient.save()
        watch.do_plan_watch()
        assert set(WatchPrompt.objects.values_list("status", "skip_reason")) == {
            (Status.SKIPPED, "no_email")
        }
        patient.email = "ana@example.com"
        patient.save()
        watch.do_plan_watch()
        assert set(WatchPrompt.objects.values_list("status", flat=True)) == {Status.PENDING}


class SendingTests:
    def test_it_sends_only_the_due_prompt_with_a_link_and_no_claims(self, session, mail):
        watch.do_plan_watch()
        outcomes = watch.send_due("w")
        assert [(o.week, o.status) for o in outcomes] == [(2, "sent")]
        [received] = mail.wait_for(1)
        assert received.rcpt_tos == ["ana@example.com"]
        assert received.message["Subject"] == (
            "Demo Mesotherapy Clinic: how are your injection sites? (week 2)"
        )
        assert received.message["Auto-Submitted"] == "auto-generated"
        text, html = received.text, received.html
        for body in (text, html):
            assert "lump or a hard swelling" in body
            assert "discharge or pus" in body
            assert "If it is urgent, call Demo Mesotherapy Clinic" in body
            assert "emergency services" in body
        assert link_in(received).startswith("/w/")
        first = prompt(session, 2)
        assert first.status == Status.SENT and first.sent_to == "ana@example.com"
        assert watch.send_due("w") == []

    def test_the_email_gives_the_clinics_phone_number_when_it_has_one(self, session, mail):
        clinic = session.course.clinic
        clinic.phone = "+1 212 555 0100"
        clinic.save(update_fields=["phone"])
        watch.do_plan_watch()
        watch.send_due("w")
        [received] = mail.wait_for(1)
        assert "call Demo Mesotherapy Clinic on +1 212 555 0100 at once" in received.text
        assert 'href="tel:+1 212 555 0100"' in received.html

    def test_each_prompt_goes_when_its_week_comes(self, session, mail):
        watch.do_plan_watch()
        watch.send_due("w")
        with time_machine.travel(prompt(session, 4).due_at, tick=False):
            assert [o.week for o in watch.send_due("w")] == [4]
        assert len(mail.wait_for(2)) == 2

    def test_smtp_down_is_retried_with_the_reminders_backoff(self, session, settings):
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()
        watch.do_plan_watch()
        [outcome] = watch.send_due("w")
        first = prompt(session, 2)
        assert outcome.status == "retry" and first.status == Status.PENDING
        assert "ConnectionRefusedError" in first.last_error
        wait = first.next_attempt_at - timezone.now()
        assert dt.timedelta(minutes=1) < wait <= dt.timedelta(minutes=2)
        assert watch.send_due("w") == []

    def test_two_workers_never_hold_the_same_prompt(self, world, patient):
        course_with_sessions(world, patient, 3, days_ago(30))
        watch.do_plan_watch()
        WatchPrompt.objects.update(status=Status.PENDING, next_attempt_at=timezone.now())
        first = watch.OUTBOX.claim("a", 5)
        second = watch.OUTBOX.claim("b", 20)
        assert len(first) == 5 and len(second) == 7
        assert not {p.pk for p in first} & {p.pk for p in second}

    def test_the_worker_plans_and_sends_watch_prompts(self, session, mail, capsys):
        call_command("worker", "--once")
        out = capsys.readouterr().out
        assert "planned 4 watch prompts" in out
        assert re.search(r"watch prompt \d+ \(week 2, session \d+\) sent", out)
        assert len(mail.wait_for(1)) == 1


class LinkTests:
    def test_opening_the_link_changes_nothing(self, sent):
        first, path = sent
        page = Client().get(path)
        assert page.status_code == 200
        assert "Is there a lump or a hard swelling" in page.content.decode()
        first.refresh_from_db()
        assert first.answered_at is None and first.status == Status.SENT

    def test_a_tampered_token_or_another_purposes_token_is_refused(self, sent, session):
        first, path = sent
        token = path.split("/")[2]
        tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
        assert Client().get(f"/w/{tampered}/").status_code == 400
        # A reminder's token for the same id, and a watch token read as a reminder's.
        other = signing.dumps({"w": first.pk}, salt="mesoclinic.reminders.confirm")
        page = Client().get(f"/w/{other}/")
        assert page.status_code == 400 and "not valid" in page.content.decode()
        with pytest.raises(reminder_links.BadLink):
            reminder_links.read_token(token, reminder_links.CONFIRM)

    def test_a_link_older_than_its_max_age_has_expired(self, sent):
        first, path = sent
        later = timezone.now() + logic.LINK_MAX_AGE + dt.timedelta(minutes=1)
        with time_machine.travel(later, tick=False):
            page = Client().post(path, NO)
        assert page.status_code == 400 and "expired" in page.content.decode()
        first.refresh_from_db()
        assert first.answered_at is None

    def test_a_link_to_a_deleted_prompt_is_not_found(self, sent):
        first, path = sent
        first.delete()
        assert Client().get(path).status_code == 404

    def test_the_form_needs_the_csrf_token(self, sent):
        first, path = sent
        assert Client(enforce_csrf_checks=True).post(path, NO).status_code == 403
        first.refresh_from_db()
        assert first.answered_at is None


class AnswerTests:
    def test_a_lump_opens_an_urgent_follow_up_and_tells_the_patient(self, sent, session):
        first, path = sent
        client = Client()
        response = client.post(path, {**NO, "lump": "yes", "notes": "Hard bump on the thigh"})
        assert response.status_code == 302
        page = client.get(path).content.decode()
        assert "will contact you" in page and "seek urgent care" in page
        first.refresh_from_db()
        assert first.status == Status.ANSWERED and first.warning_signs == ["lump"]
        assert first.answers["lump"] is True and first.answers["notes"] == "Hard bump on the thigh"
        follow_up = first.follow_up
        assert follow_up is not None and follow_up.priority == "urgent"
        assert follow_up.session == session and follow_up.side_effect is None
        assert (
            follow_up.reason == "Infection watch, week 2: the patient reports lump or hard swelling"
        )
        row = AuditEvent.objects.exclude(action=AuditEvent.Action.VIEW).get(
            object_type="safety.WatchPrompt", object_id=str(first.pk)
        )
        assert row.user is None and row.via == "patient-link"
        assert row.patient_id == session.course.patient_id

    def test_discharge_and_a_wound_name_both_signs(self, sent):
        first, path = sent
        Client().post(path, {**NO, "discharge": "yes", "wound": "yes"})
        first.refresh_from_db()
        assert first.warning_signs == ["discharge", "wound"]
        assert first.follow_up is not None
        assert "discharge or pus, a wound that will not heal" in first.follow_up.reason

    def test_other_answers_are_recorded_without_a_follow_up(self, sent):
        first, path = sent
        client = Client()
        client.post(path, {**NO, "redness": "yes", "fever": "yes"})
        first.refresh_from_db()
        assert first.status == Status.ANSWERED and first.warning_signs == []
        assert first.answers["redness"] is True and first.answers["fever"] is True
        assert first.follow_up is None and not FollowUp.objects.exists()
        assert "will contact you" not in client.get(path).content.decode()

    def test_a_second_submit_shows_the_recorded_answer_and_changes_nothing(self, sent):
        first, path = sent
        client = Client()
        client.post(path, {**NO, "lump": "yes"})
        again = client.post(path, NO)
        assert again.status_code == 200
        assert "we have your answers" in again.content.decode()
        first.refresh_from_db()
        assert first.warning_signs == ["lump"] and FollowUp.objects.count() == 1

    def test_every_question_must_be_answered(self, sent):
        first, path = sent
        page = Client().post(path, {"lump": "yes"})
        assert page.status_code == 200
        assert page.content.decode().count("This field is required") == 4
        first.refresh_from_db()
        assert first.answered_at is None


class DemoTests:
    def test_the_demo_clinic_has_watch_answers_and_an_escalated_infection(self, db):
        from mesoclinic import demo
        from mesoclinic.safety.models import AdverseEvent

        assert demo.load()
        answered = WatchPrompt.objects.filter(status=Status.ANSWERED)
        assert answered.count() == 2
        assert answered.filter(follow_up__priority="urgent").count() == 1
        event = AdverseEvent.objects.get(side_effect__isnull=False)
        assert event.kind == "infection" and event.side_effect is not None
        assert event.suspected_lots.exists()
