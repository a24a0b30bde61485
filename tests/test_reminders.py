"""Appointment reminders, sent as real email to a real SMTP server on loopback (aiosmtpd): what
is planned and when, what the email says, the links that confirm or ask for a change, what is
never sent (cancelled, moved, too late), retries when the mail server is down, a crashed
worker's lease, and several workers in several processes sending each reminder exactly once, on
SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import email
import io
import json
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import zoneinfo
from collections import Counter
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import time_machine
from aiosmtpd.controller import Controller
from django.core import signing
from django.core.management import call_command
from django.test import Client

from mesoclinic.accounts.models import AuditEvent
from mesoclinic.courses.actions import do_plan_course
from mesoclinic.courses.models import Course, SideEffect
from mesoclinic.patients.models import Patient
from mesoclinic.protocols.models import ClinicProtocol
from mesoclinic.reminders import actions, links, logic
from mesoclinic.reminders.models import ChangeRequest, Reminder
from mesoclinic.scheduling.actions import do_cancel
from mesoclinic.scheduling.models import Appointment
from tests.conftest import World
from tests.scheduling_fixtures import process_env, race_processes, run_script

ROOT = Path(__file__).resolve().parents[1]
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
# "Now" is Monday 23 Nov 2026, 10:00 in New York; the visit is on Wednesday at 10:00, 48 h on.
NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=NEW_YORK)
VISIT = dt.datetime(2026, 11, 25, 10, 0, tzinfo=NEW_YORK)
MINUTE = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)
Status = Reminder.Status


# A real SMTP server on loopback.


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        assert part is not None
        return str(part.get_content())

    @property
    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        assert part is not None
        return str(part.get_content())

    def link(self, action: str) -> str:
        found = re.findall(rf"https?://\S+/r/{action}/\S+/", self.text)
        assert len(found) == 1, self.text
        return str(found[0])


@dataclass
class Mailbox:
    """An aiosmtpd handler that keeps every message it accepts."""

    port: int = 0
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=policy.default)
        with self.lock:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def wait_for(self, count: int, timeout: float = 30) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.received


def free_port() -> int:
    """A loopback port nothing listens on (for the moment)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def smtp_server() -> Any:
    mailbox = Mailbox(port=free_port())
    # server_hostname spares a DNS lookup of this machine's name.
    controller = Controller(
        mailbox, hostname="127.0.0.1", port=mailbox.port, server_hostname="localhost"
    )
    controller.start()
    try:
        yield mailbox
    finally:
        controller.stop()


@pytest.fixture
def mail(smtp_server: Mailbox, settings: Any) -> Mailbox:
    """Django sends through SMTP to the loopback server (the test runner's default is locmem)."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = smtp_server.port
    settings.EMAIL_TIMEOUT = 5
    return smtp_server


@pytest.fixture
def clock() -> Any:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


# The clinic.


@pytest.fixture
def clinic(world: World, clock: Any) -> World:
    world.practitioner.first_name, world.practitioner.last_name = "Maria", "Silva"
    world.practitioner.save()
    return world


@pytest.fixture
def course(clinic: World, patient: Patient) -> Course:
    return do_plan_course(
        patient,
        ClinicProtocol.current(clinic.clinic, "cellulite"),  # type: ignore[arg-type]
        indication="cellulite",
        areas=["thighs"],
        cadence_days=7,
        planned_sessions=15,
        user=clinic.manager,
    )


def visit(
    world: World,
    patient: Patient,
    start: dt.datetime = VISIT,
    kind: str = Appointment.Kind.SESSION,
    course: Course | None = None,
    minutes: int = 30,
) -> Appointment:
    return Appointment.objects.create(
        clinic=world.clinic,
        patient=patient,
        course=course,
        kind=kind,
        practitioner=world.practitioner,
        starts_at=start,
        ends_at=start + dt.timedelta(minutes=minutes),
    )


def move(appointment: Appointment, start: dt.datetime) -> None:
    appointment.starts_at, appointment.ends_at = start, start + appointment.duration
    appointment.save()


def tick() -> list[actions.Outcome]:
    actions.do_plan_reminders()
    return actions.send_due("test-worker")


def rows(appointment: Appointment) -> dict[tuple[str, dt.datetime], tuple[str, str]]:
    return {
        (r.kind, r.planned_for): (r.status, r.skip_reason)
        for r in Reminder.objects.filter(appointment=appointment)
    }


def path_of(url: str) -> str:
    return urlsplit(url).path


class LogicTests:
    def test_backoff_doubles_and_is_capped(self):
        assert [logic.backoff(n) / MINUTE for n in range(1, 8)] == [2, 4, 8, 16, 32, 60, 60]

    def test_a_reminder_is_worth_sending_until_the_next_one_is_due(self):
        def reason(kind: str, before: dt.timedelta, **kw: Any) -> str | None:
            fields: dict[str, Any] = {"status": "booked", "starts_at": VISIT, "email": "a@b.c"}
            fields.update(kw)
            return logic.skip_reason(kind, VISIT, now=VISIT - before, **fields)

        assert reason("48h", 48 * HOUR) is None
        assert reason("48h", 24 * HOUR + MINUTE) is None
        assert reason("48h", 24 * HOUR) == "too_late"
        assert reason("24h", MINUTE) is None
        assert reason("24h", dt.timedelta(0)) == "too_late"
        assert reason("24h", HOUR, status="confirmed") is None
        assert reason("24h", HOUR, status="arrived") == "too_late"
        assert reason("24h", HOUR, status="cancelled") == "cancelled"
        assert reason("24h", HOUR, status="no_show") == "no_show"
        assert reason("24h", HOUR, starts_at=VISIT + HOUR) == "moved"
        assert reason("24h", HOUR, email=" ") == "no_email"

    def test_instructions_come_from_the_protocol_for_sessions_only(self, db):
        from mesoclinic.protocols.loader import shipped_protocols

        rules = shipped_protocols()["cellulite"].before_session
        local = VISIT.astimezone(NEW_YORK)
        lines = logic.before_visit(rules, "maintenance", local)
        assert lines[:-1] == [i.text for i in rules.instructions]
        minutes = rules.numbing_cream_minutes.v
        assert lines[-1] == (
            f"Arrive by 09:{60 - minutes:02d}, {minutes} minutes before your appointment, "
            "for the numbing cream."
        )
        assert logic.before_visit(rules, "allergy_test", local) == []
        assert logic.before_visit(rules, "review", local) == []
        assert logic.before_visit(None, "session", local) == []


class PlanningTests:
    def test_it_plans_a_48_and_a_24_hour_reminder_once(self, clinic, patient):
        appointment = visit(clinic, patient)
        assert actions.do_plan_reminders() == 2
        assert actions.do_plan_reminders() == 0
        planned = {r.kind: r for r in Reminder.objects.filter(appointment=appointment)}
        assert planned["48h"].due_at == VISIT - 48 * HOUR == NOW
        assert planned["24h"].due_at == VISIT - 24 * HOUR
        for r in planned.values():
            assert (r.status, r.planned_for, r.clinic) == (Status.PENDING, VISIT, clinic.clinic)
            assert r.next_attempt_at == r.due_at

    def test_visits_beyond_the_horizon_or_not_active_get_nothing(self, clinic, patient):
        visit(clinic, patient, start=NOW + 49 * HOUR + MINUTE)
        for i, status in enumerate(("cancelled", "no_show", "arrived", "done")):
            appointment = visit(clinic, patient, start=VISIT - i * HOUR)
            Appointment.objects.filter(pk=appointment.pk).update(status=status)
        assert actions.do_plan_reminders() == 0
        assert not Reminder.objects.exists()

    def test_a_visit_booked_less_than_48_hours_ahead_gets_only_the_24_hour_reminder(
        self, clinic, patient
    ):
        # Forty-five minutes late is a worker catching up: still sent.
        on_time = visit(clinic, patient, start=NOW + 48 * HOUR - 45 * MINUTE)
        late = visit(clinic, patient, start=NOW + 30 * HOUR)
        actions.do_plan_reminders()
        assert rows(on_time) == {
            ("48h", on_time.starts_at): ("pending", ""),
            ("24h", on_time.starts_at): ("pending", ""),
        }
        assert rows(late) == {
            ("48h", late.starts_at): ("skipped", "booked_late"),
            ("24h", late.starts_at): ("pending", ""),
        }

    def test_a_patient_without_email_is_skipped_with_a_reason_until_one_is_added(
        self, clinic, patient
    ):
        patient.email = ""
        patient.save()
        appointment = visit(clinic, patient)
        actions.do_plan_reminders()
        assert set(rows(appointment).values()) == {("skipped", "no_email")}
        assert actions.send_due("w") == []
        patient.email = "ana@example.com"
        patient.save()
        actions.do_plan_reminders()
        assert set(rows(appointment).values()) == {("pending", "")}

    def test_moving_a_visit_back_to_its_time_brings_its_reminders_back(self, clinic, patient):
        appointment = visit(clinic, patient)
        actions.do_plan_reminders()
        move(appointment, VISIT - 2 * HOUR)
        actions.do_plan_reminders()
        assert rows(appointment)[("24h", VISIT)] == ("skipped", "moved")
        move(appointment, VISIT)
        actions.do_plan_reminders()
        assert rows(appointment)[("24h", VISIT)] == ("pending", "")
        assert rows(appointment)[("24h", VISIT - 2 * HOUR)] == ("skipped", "moved")
        assert Reminder.objects.filter(status=Status.PENDING).count() == 2


class EmailTests:
    def test_it_sends_a_real_email_with_the_visit_in_the_clinics_time_and_the_protocols_words(
        self, clinic, patient, course, mail, settings
    ):
        appointment = visit(clinic, patient, course=course)
        [outcome] = tick()
        assert outcome.status == "sent" and outcome.kind == "48h"
        [received] = mail.received
        assert received.rcpt_tos == ["ana@example.com"]
        assert received.mail_from == settings.DEFAULT_FROM_EMAIL
        message = received.message
        assert message["To"] == "ana@example.com"
        assert message["Subject"] == (
            "Reminder: your session on Wed 25 Nov at 10:00 at Demo Mesotherapy Clinic"
        )
        assert message["Auto-Submitted"] == "auto-generated"
        text = received.text
        assert "Hello Ana Lopez," in text
        # Stored in UTC (15:00), shown in the clinic's time.
        assert "When:  Wednesday 25 November 2026 at 10:00 (EST)" in text
        assert "15:00" not in text
        assert "With:  Maria Silva" in text
        assert "Where: Demo Mesotherapy Clinic, New York" in text
        for instruction in course.spec.before_session.instructions:
            assert f"- {instruction.text}" in text
            assert instruction.text in received.html
        assert "- Arrive by 09:30, 30 minutes before your appointment, for the numbing cream." in (
            text
        )
        for action in links.ACTIONS:
            url = received.link(action)
            assert url.startswith(f"{settings.SITE_URL}/r/{action}/")
            assert f'href="{url}"' in received.html
        reminder = Reminder.objects.get(kind="48h")
        assert reminder.status == Status.SENT and reminder.attempts == 1
        assert reminder.sent_to == "ana@example.com" and reminder.sent_at == NOW
        assert appointment.reminders.filter(status=Status.PENDING).get().kind == "24h"

    def test_the_24_hour_reminder_follows_a_day_later(self, clinic, patient, course, mail, clock):
        visit(clinic, patient, course=course)
        tick()
        clock.move_to(VISIT - 24 * HOUR - MINUTE)
        assert tick() == []
        clock.move_to(VISIT - 24 * HOUR)
        [outcome] = tick()
        assert outcome.kind == "24h" and outcome.status == "sent"
        assert [r.rcpt_tos for r in mail.received] == [["ana@example.com"]] * 2

    def test_a_visit_outside_a_course_gets_no_instructions(self, clinic, patient, mail):
        visit(clinic, patient, kind=Appointment.Kind.REVIEW)
        tick()
        [received] = mail.received
        assert "Reminder: your review on Wed 25 Nov" in received.message["Subject"]
        assert "Before your visit" not in received.text
        assert "caffeine" not in received.text


class ClinicClockTests:
    def test_a_clinic_on_the_12_hour_clock_gets_its_times_written_that_way(
        self, clinic, patient, course, mail
    ):
        clinic.clinic.time_format = "12h"
        clinic.clinic.save()
        visit(clinic, patient, course=course)
        [outcome] = tick()
        assert outcome.status == "sent"
        [received] = mail.received
        assert received.message["Subject"] == (
            "Reminder: your session on Wed 25 Nov at 10:00 am at Demo Mesotherapy Clinic"
        )
        assert "When:  Wednesday 25 November 2026 at 10:00 am (EST)" in received.text
        assert "- Arrive by 9:30 am, 30 minutes before your appointment, for the numbing" in (
            received.text
        )
        assert "09:30" not in received.text and "10:00 (EST)" not in received.text

    def test_the_words_follow_the_clinic_given_or_the_24_hour_clock_without_one(self) -> None:
        from mesoclinic.accounts.models import Clinic

        afternoon = dt.datetime(2026, 11, 25, 14, 5, tzinfo=NEW_YORK)
        twelve = Clinic(time_format="12h")
        assert logic.short_when(afternoon, twelve) == "Wed 25 Nov at 2:05 pm"
        assert logic.when_words(afternoon, twelve) == (
            "Wednesday 25 November 2026 at 2:05 pm (EST)"
        )
        assert logic.short_when(afternoon) == "Wed 25 Nov at 14:05"


class LinkTests:
    @pytest.fixture
    def sent(self, clinic, patient, course, mail) -> tuple[Appointment, Received]:
        appointment = visit(clinic, patient, course=course)
        tick()
        [received] = mail.received
        return appointment, received

    def test_the_confirm_link_shows_a_button_and_only_the_post_confirms(self, sent):
        appointment, received = sent
        client = Client()
        url = path_of(received.link(links.CONFIRM))
        page = client.get(url)
        assert page.status_code == 200
        content = page.content.decode()
        assert "Confirm your visit" in content and "Confirm my visit" in content
        assert "Wednesday 25 November 2026 at 10:00 (EST)" in content
        assert "Maria Silva" in content
        assert client.head(url).status_code == 200
        appointment.refresh_from_db()
        assert appointment.status == Appointment.Status.BOOKED  # A mail scanner's GET did nothing.
        assert not AuditEvent.objects.filter(via="patient-link").exists()

        done = client.post(url)
        assert done.status_code == 302 and done["Location"] == url
        appointment.refresh_from_db()
        assert appointment.status == Appointment.Status.CONFIRMED
        event = AuditEvent.objects.get(via="patient-link")
        assert event.action == AuditEvent.Action.UPDATE and event.user is None
        assert event.object_type == "scheduling.Appointment"
        assert event.object_id == str(appointment.pk) and event.patient_id == appointment.patient_id
        assert event.detail == {"status": "confirmed", "previous": "booked"}
        again = client.get(url).content.decode()
        assert "Your visit is confirmed" in again and "Confirm my visit" not in again
        client.post(url)
        assert AuditEvent.objects.filter(via="patient-link").count() == 1

    def test_the_change_link_records_one_request_the_patient_may_add_to(self, sent):
        appointment, received = sent
        client = Client()
        url = path_of(received.link(links.CHANGE))
        page = client.get(url)
        assert page.status_code == 200 and "Ask to change" in page.content.decode()
        assert not ChangeRequest.objects.exists()
        assert client.post(url, {"message": "Afternoons suit me better."}).status_code == 302
        request = ChangeRequest.objects.get()
        assert request.message == "Afternoons suit me better."
        assert request.appointment == appointment and request.planned_for == VISIT
        assert request.clinic == appointment.clinic and request.handled_at is None
        assert "The clinic has your request" in client.get(url).content.decode()
        client.post(url, {"message": "Or Friday morning."})
        request = ChangeRequest.objects.get()
        assert request.message == "Or Friday morning."
        actions_seen = list(
            AuditEvent.objects.filter(via="patient-link")
            .order_by("at", "pk")
            .values_list("action", "object_type")
        )
        assert actions_seen == [
            ("create", "reminders.ChangeRequest"),
            ("update", "reminders.ChangeRequest"),
        ]
        appointment.refresh_from_db()
        assert appointment.status == Appointment.Status.BOOKED

    def test_a_message_too_long_is_refused_with_the_form(self, sent):
        _, received = sent
        page = Client().post(path_of(received.link(links.CHANGE)), {"message": "x" * 1001})
        assert page.status_code == 200 and "errorlist" in page.content.decode()
        assert not ChangeRequest.objects.exists()

    def test_a_tampered_or_swapped_link_is_refused_and_names_no_visit(self, sent):
        appointment, received = sent
        client = Client()
        confirm = path_of(received.link(links.CONFIRM))
        token = confirm.split("/")[-2]
        flipped = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
        payload, signature = token.split(":", 1)
        other = json.loads(signing.b64_decode(payload.encode())) | {"a": appointment.pk + 1}
        forged = signing.b64_encode(json.dumps(other).encode()).decode() + ":" + signature
        for url in (
            f"/r/confirm/{flipped}/",
            f"/r/confirm/{forged}/",
            f"/r/confirm/{token[:20]}/",
            "/r/confirm/not-a-token/",
            f"/r/change/{token}/",  # A confirm link's token cannot ask for a change.
        ):
            for response in (client.get(url), client.post(url)):
                assert response.status_code == 400, url
                content = response.content.decode()
                assert "This link is not valid" in content
                for secret in ("Demo Mesotherapy", "Ana", "Maria", "November"):
                    assert secret not in content
        appointment.refresh_from_db()
        assert appointment.status == Appointment.Status.BOOKED
        assert not ChangeRequest.objects.exists()

    def test_a_link_expires_when_the_visit_starts(self, sent, clock):
        appointment, received = sent
        clock.move_to(VISIT)
        client = Client()
        for action in links.ACTIONS:
            url = path_of(received.link(action))
            for response in (client.get(url), client.post(url)):
                assert response.status_code == 400
                assert "This link has expired" in response.content.decode()
        appointment.refresh_from_db()
        assert appointment.status == Appointment.Status.BOOKED

    def test_a_link_older_than_a_week_has_expired(self, clinic, patient, clock):
        appointment = visit(clinic, patient, start=NOW + dt.timedelta(days=10))
        url = f"/r/confirm/{links.make_token(appointment, links.CONFIRM)}/"
        clock.shift(dt.timedelta(days=8))
        response = Client().get(url)
        assert response.status_code == 400 and "expired" in response.content.decode()

    def test_a_link_to_a_deleted_visit_is_not_found(self, clinic, patient):
        appointment = visit(clinic, patient)
        url = f"/r/confirm/{links.make_token(appointment, links.CONFIRM)}/"
        appointment.delete()
        response = Client().get(url)
        assert response.status_code == 404 and "cannot find" in response.content.decode()

    def test_a_cancelled_visits_links_say_so_and_change_nothing(self, clinic, patient):
        appointment = visit(clinic, patient)
        urls = [f"/r/{a}/{links.make_token(appointment, a)}/" for a in links.ACTIONS]
        do_cancel(appointment, user=clinic.front_desk)
        client = Client()
        for url in urls:
            for response in (client.get(url), client.post(url, {"message": "hi"})):
                assert response.status_code == 200
                content = response.content.decode()
                assert "This visit has been cancelled" in content
                assert "Demo Mesotherapy Clinic" in content
        appointment.refresh_from_db()
        assert appointment.status == Appointment.Status.CANCELLED
        assert not ChangeRequest.objects.exists()
        assert not AuditEvent.objects.filter(via="patient-link").exists()


class NeverSentTests:
    def test_a_visit_cancelled_after_planning_is_never_reminded(self, clinic, patient, mail):
        appointment = visit(clinic, patient)
        actions.do_plan_reminders()
        do_cancel(appointment, user=clinic.front_desk)
        # The worker checks the appointment again right before sending, without re-planning.
        [outcome] = actions.send_due("w")
        assert (outcome.status, outcome.detail) == ("skipped", "cancelled")
        actions.do_plan_reminders()  # And planning skips the rest at once.
        assert set(rows(appointment).values()) == {("skipped", "cancelled")}
        assert mail.received == []

    def test_a_no_show_is_never_reminded(self, clinic, patient, mail):
        appointment = visit(clinic, patient)
        actions.do_plan_reminders()
        Appointment.objects.filter(pk=appointment.pk).update(status="no_show")
        assert [o.detail for o in actions.send_due("w")] == ["no_show"]
        assert mail.received == []

    def test_a_moved_visit_skips_the_old_reminders_and_sends_new_ones(
        self, clinic, patient, mail, clock
    ):
        appointment = visit(clinic, patient)
        actions.do_plan_reminders()
        old_link = f"/r/confirm/{links.make_token(appointment, links.CONFIRM)}/"
        new_start = dt.datetime(2026, 11, 24, 16, 0, tzinfo=NEW_YORK)  # 30 h ahead
        move(appointment, new_start)
        [outcome] = actions.send_due("w")  # The old 48 h one was due; it is not sent.
        assert (outcome.kind, outcome.status, outcome.detail) == ("48h", "skipped", "moved")
        assert tick() == []
        assert rows(appointment) == {
            ("48h", VISIT): ("skipped", "moved"),
            ("24h", VISIT): ("skipped", "moved"),
            ("48h", new_start): ("skipped", "booked_late"),
            ("24h", new_start): ("pending", ""),
        }
        clock.move_to(new_start - 24 * HOUR)
        [outcome] = tick()
        assert (outcome.kind, outcome.status) == ("24h", "sent")
        [received] = mail.received
        assert "Tuesday 24 November 2026 at 16:00 (EST)" in received.text
        assert "Wednesday" not in received.text
        # A link from before the move says so, and does not confirm the new time.
        page = Client().post(old_link)
        assert page.status_code == 200 and "This visit has moved" in page.content.decode()
        appointment.refresh_from_db()
        assert appointment.status == Appointment.Status.BOOKED
        new_link = path_of(received.link(links.CONFIRM))
        Client().post(new_link)
        appointment.refresh_from_db()
        assert appointment.status == Appointment.Status.CONFIRMED

    def test_a_48_hour_reminder_still_pending_with_less_than_24_hours_left_is_skipped(
        self, clinic, patient, mail, clock
    ):
        visit(clinic, patient)
        actions.do_plan_reminders()
        clock.move_to(VISIT - 23 * HOUR)  # The worker was stopped for a day.
        outcomes = actions.send_due("w")
        assert [(o.kind, o.status, o.detail) for o in outcomes] == [
            ("48h", "skipped", "too_late"),
            ("24h", "sent", ""),
        ]
        assert len(mail.received) == 1


class RetryTests:
    def test_smtp_down_retries_with_backoff_then_fails(self, clinic, patient, settings, clock):
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()
        visit(clinic, patient)
        actions.do_plan_reminders()
        reminder = Reminder.objects.get(kind="48h")
        waits = []
        for attempt in range(1, logic.MAX_ATTEMPTS + 1):
            [outcome] = actions.send_due("w")
            reminder.refresh_from_db()
            assert reminder.attempts == attempt
            assert "ConnectionRefusedError" in reminder.last_error
            if attempt == logic.MAX_ATTEMPTS:
                break
            assert outcome.status == "retry" and reminder.status == Status.PENDING
            waits.append((reminder.next_attempt_at - dt.datetime.now(dt.UTC)) / MINUTE)
            assert actions.send_due("w") == []  # Not before the wait is over.
            clock.move_to(reminder.next_attempt_at)
        assert waits == [2, 4, 8, 16, 32]
        assert outcome.status == "failed" and reminder.status == Status.FAILED
        assert outcome.detail.startswith(f"after {logic.MAX_ATTEMPTS} attempts: ")
        clock.shift(HOUR)
        assert actions.send_due("w") == []

    def test_a_reminder_is_sent_once_the_server_is_back(
        self, clinic, patient, mail, settings, clock
    ):
        settings.EMAIL_PORT = free_port()
        visit(clinic, patient)
        actions.do_plan_reminders()
        assert [o.status for o in actions.send_due("w")] == ["retry"]
        settings.EMAIL_PORT = mail.port
        clock.shift(2 * MINUTE)
        assert [o.status for o in actions.send_due("w")] == ["sent"]
        reminder = Reminder.objects.get(kind="48h")
        assert reminder.attempts == 2 and reminder.last_error == ""
        assert len(mail.received) == 1


class ClaimTests:
    def test_two_workers_never_hold_the_same_reminder(self, clinic, patient):
        for i in range(6):
            visit(clinic, patient, start=VISIT - 5 * i * MINUTE, minutes=5)
        actions.do_plan_reminders()
        first = actions.claim("a", limit=4)
        second = actions.claim("b", limit=10)
        assert len(first) == 4 and len(second) == 2
        assert not {r.pk for r in first} & {r.pk for r in second}
        assert actions.claim("c") == []
        assert {r.claimed_by for r in first} == {"a"} and {r.claimed_by for r in second} == {"b"}
        assert all(r.status == Status.SENDING and r.attempts == 1 for r in first + second)

    def test_a_crashed_workers_claim_is_taken_over_after_the_lease(
        self, clinic, patient, mail, clock
    ):
        visit(clinic, patient)
        actions.do_plan_reminders()
        [held] = actions.claim("crashed")
        clock.shift(logic.LEASE - MINUTE)
        assert actions.claim("b") == []
        clock.shift(2 * MINUTE)
        [taken] = actions.claim("b")
        assert taken.pk == held.pk and taken.attempts == 2 and taken.claimed_by == "b"
        # The first worker wakes up: it no longer holds the reminder, so it sends nothing.
        assert actions.deliver(held).status == "lost"
        assert actions.deliver(taken).status == "sent"
        assert len(mail.received) == 1
        assert Reminder.objects.get(pk=held.pk).status == Status.SENT

    def test_a_last_attempt_that_never_finished_ends_as_failed(self, clinic, patient, mail, clock):
        visit(clinic, patient)
        actions.do_plan_reminders()
        Reminder.objects.filter(kind="48h").update(
            status=Status.SENDING,
            attempts=logic.MAX_ATTEMPTS,
            claimed_at=NOW - logic.LEASE - MINUTE,
        )
        [outcome] = actions.send_due("w")
        assert outcome.status == "failed" and "gave up" in outcome.detail
        assert Reminder.objects.get(kind="48h").status == Status.FAILED
        assert mail.received == []

    def test_a_stopping_worker_hands_back_the_rest_of_its_batch(self, clinic, patient, mail):
        for i in range(3):
            visit(clinic, patient, start=VISIT - 5 * i * MINUTE, minutes=5)
        actions.do_plan_reminders()
        seen: list[actions.Outcome] = []
        outcomes = actions.send_due("w", report=seen.append, stop=lambda: bool(seen))
        assert [o.status for o in outcomes] == ["sent"]
        left = Reminder.objects.filter(kind="48h").exclude(status=Status.SENT)
        assert [(r.status, r.attempts) for r in left] == [(Status.PENDING, 0)] * 2
        assert [o.status for o in actions.send_due("b")] == ["sent", "sent"]
        assert len(mail.received) == 3


class WorkerCommandTests:
    def test_worker_once_plans_sends_and_sweeps_side_effects(self, scene, mail):
        later = dt.datetime.now(dt.UTC) + dt.timedelta(days=6)
        with time_machine.travel(later, tick=False):
            appointment = visit(scene.world, scene.patient, start=later + 48 * HOUR)
            out = io.StringIO()
            call_command("worker", "--once", stdout=out)
        lines = out.getvalue().splitlines()
        assert lines[0] == "planned 2 reminders"
        [reminder] = Reminder.objects.filter(status=Status.SENT)
        assert f"reminder {reminder.pk} (48h, appointment {appointment.pk}) sent" in lines
        assert "1 side effect now beyond expected" in lines
        swelling = SideEffect.objects.get(pk=scene.side_effect["id"])
        assert swelling.status == "beyond_expected"
        assert [r.rcpt_tos for r in mail.received] == [["ana@example.com"]]


# Several workers at once, in several processes, against a database they can all open: on
# PostgreSQL the test database itself (transactional_db), on SQLite a migrated file copied for
# each test (the test run's own SQLite database is in memory and private to this process). Each
# process seeds, plans and sends with the real code; the SMTP server in this process counts.

SCRIPT = textwrap.dedent(
    """
    import datetime as dt, json, sys, threading
    import django
    django.setup()
    from django.db import connection
    from django.db.models import Count
    from django.utils import timezone
    from mesoclinic.accounts.models import Clinic, Membership, User
    from mesoclinic.patients.models import Patient
    from mesoclinic.reminders.actions import do_plan_reminders, send_due
    from mesoclinic.reminders.models import Reminder
    from mesoclinic.scheduling.models import Appointment

    mode, args = sys.argv[1], json.loads(sys.argv[2])
    if mode == "seed":
        clinic = Clinic.objects.create(
            name="Race clinic", city="Boston", timezone="America/New_York"
        )
        user = User.objects.create_user("racer", first_name="Rae", last_name="Cer")
        Membership.objects.create(user=user, clinic=clinic, role="practitioner")
        start = timezone.now() + dt.timedelta(hours=args["hours_ahead"])
        for i in range(args["visits"]):
            patient = Patient.objects.create(
                clinic=clinic, first_name="P", last_name=str(i),
                date_of_birth=dt.date(1990, 1, 1), email=f"p{i}@example.com",
            )
            Appointment.objects.create(
                clinic=clinic, patient=patient, kind="review", practitioner=user,
                starts_at=start + dt.timedelta(minutes=10 * i),
                ends_at=start + dt.timedelta(minutes=10 * i + 5),
            )
        print(json.dumps(args["visits"]))
    elif mode == "stats":
        counts = Reminder.objects.values("kind", "status").annotate(n=Count("pk"))
        print(json.dumps({f"{c['kind']} {c['status']}": c["n"] for c in counts}))
    else:
        connection.close()
        barrier = threading.Barrier(args["threads"])
        results = {}

        def work(name):
            try:
                barrier.wait()
                do_plan_reminders()
                results[name] = [o.status for o in send_due(name, limit=args["batch"])]
            except Exception as exc:
                results[name] = ["error: " + repr(exc)]
            finally:
                connection.close()

        threads = [
            threading.Thread(target=work, args=(f"{args['process']}.{t}",))
            for t in range(args["threads"])
        ]
        print("ready", flush=True)
        sys.stdin.readline()  # Every process waits here until all are ready.
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print(json.dumps(results), flush=True)
    """
)


def _mail(smtp_port: int) -> dict[str, str]:
    """The environment that sends a child process's mail to this test's SMTP server."""
    return {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp_port),
        "PYTHONUNBUFFERED": "1",
    }


def _race(
    database_url: str, mail: dict[str, str], processes: int, threads: int, batch: int
) -> dict[str, list[str]]:
    outputs = race_processes(
        SCRIPT,
        database_url,
        [{"process": p, "threads": threads, "batch": batch} for p in range(processes)],
        **mail,
    )
    results: dict[str, list[str]] = {}
    for output in outputs:
        results.update(output)
    return results


class ConcurrentWorkerTests:
    def test_many_workers_send_each_reminder_exactly_once(self, shared_db, smtp_server):
        mail = _mail(smtp_server.port)
        visits = 30
        # Twelve hours ahead or so: each visit's 24 h reminder is due, and its 48 h one is skipped.
        run_script(SCRIPT, shared_db, "seed", {"visits": visits, "hours_ahead": 12}, **mail)
        results = _race(shared_db, mail, processes=3, threads=3, batch=2)
        assert len(results) == 9
        statuses = Counter(s for outcomes in results.values() for s in outcomes)
        assert statuses == {"sent": visits}, (
            results,
            run_script(SCRIPT, shared_db, "stats", {}, **mail),
        )
        received = smtp_server.wait_for(visits)
        recipients = Counter(r for m in received for r in m.rcpt_tos)
        assert recipients == {f"p{i}@example.com": 1 for i in range(visits)}
        assert run_script(SCRIPT, shared_db, "stats", {}, **mail) == {
            "24h sent": visits,
            "48h skipped": visits,
        }
        # The work was shared: more than one worker sent something.
        assert sum(1 for outcomes in results.values() if outcomes) > 1, results

    def test_the_mesoclinic_command_runs_one_tick(self, shared_db, smtp_server):
        mail = _mail(smtp_server.port)
        run_script(SCRIPT, shared_db, "seed", {"visits": 1, "hours_ahead": 12}, **mail)
        done = subprocess.run(
            [str(Path(sys.executable).with_name("mesoclinic")), "worker", "--once"],
            env=process_env(shared_db, **mail),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert "planned 2 reminders" in done.stdout
        assert re.search(r"reminder \d+ \(24h, appointment \d+\) sent", done.stdout)
        assert [m.rcpt_tos for m in smtp_server.wait_for(1)] == [["p0@example.com"]]

    def test_the_worker_loop_stops_cleanly_on_sigterm(self, shared_db, smtp_server):
        mail = _mail(smtp_server.port)
        run_script(SCRIPT, shared_db, "seed", {"visits": 2, "hours_ahead": 12}, **mail)
        worker = subprocess.Popen(
            [str(Path(sys.executable).with_name("mesoclinic")), "worker", "--interval", "0.2"],
            env=process_env(shared_db, **mail),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert worker.stdout is not None
            assert "started" in worker.stdout.readline()
            assert len(smtp_server.wait_for(2)) == 2
            worker.send_signal(signal.SIGTERM)
            out, err = worker.communicate(timeout=30)
        finally:
            if worker.poll() is None:
                worker.kill()
        assert worker.returncode == 0, err[-3000:]
        assert out.count(" sent") == 2
        assert out.rstrip().endswith("stopped")
        assert len(smtp_server.received) == 2  # Later ticks found nothing more to send.
