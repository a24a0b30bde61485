"""Text messages, recall notices and maintenance invitations.

Email goes to a real SMTP server on loopback (the fixtures of test_reminders.py). Text messages
go to a real HTTP server on loopback that answers as the provider's documented API does
(`POST /2010-04-01/Accounts/{sid}/Messages.json`, form fields To, From, Body, HTTP basic auth;
201 with the message's `sid` and `status`, or an error with a numeric `code`): the provider
itself cannot be reached from here. Requests from the provider to us are signed here exactly
as it documents X-Twilio-Signature.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import secrets
import threading
import zoneinfo
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine
from aiosmtpd.controller import Controller
from django.db import connection, transaction
from django.test import Client

from mesoclinic.accounts.models import AuditEvent
from mesoclinic.courses.models import Course, Session
from mesoclinic.notify import actions, logic, sms
from mesoclinic.notify.links import read_token
from mesoclinic.notify.models import MaintenanceInvitation, RecallNotice, Status, TextMessage
from mesoclinic.patients.models import Patient
from mesoclinic.scheduling.models import Appointment
from tests.conftest import Scene, World
from tests.test_reminders import Mailbox, free_port

NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
SID = "AC" + "0" * 32
TOKEN = "test-auth-token"
FROM = "+12125550199"
PHONE = "+12125550101"  # the `patient` fixture's phone, in E.164


@pytest.fixture
def mail(settings: Any) -> Any:
    """A real SMTP server on loopback (test_reminders.Mailbox), and Django sending to it."""
    mailbox = Mailbox(port=free_port())
    controller = Controller(
        mailbox, hostname="127.0.0.1", port=mailbox.port, server_hostname="localhost"
    )
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = mailbox.port
    settings.EMAIL_TIMEOUT = 5
    try:
        yield mailbox
    finally:
        controller.stop()


# A loopback server that speaks the provider's documented API.


@dataclass
class Provider:
    port: int = 0
    received: list[dict[str, Any]] = field(default_factory=list)
    # A number answered with an error: {"+1...": (http status, provider code)}.
    errors: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _handler(provider: Provider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def answer(self, status: int, payload: dict[str, Any]) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            expected = "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
            if self.path != f"/2010-04-01/Accounts/{SID}/Messages.json":
                return self.answer(404, {"code": 20404, "message": "Not found", "status": 404})
            if self.headers.get("Authorization") != expected:
                return self.answer(
                    401, {"code": 20003, "message": "Authentication Error", "status": 401}
                )
            provider.received.append(form)
            if form["To"] in provider.errors:
                status, code = provider.errors[form["To"]]
                return self.answer(
                    status,
                    {
                        "code": code,
                        "message": f"Error {code}",
                        "more_info": f"https://www.twilio.com/docs/errors/{code}",
                        "status": status,
                    },
                )
            self.answer(
                201,
                {
                    "sid": "SM" + secrets.token_hex(16),
                    "account_sid": SID,
                    "to": form["To"],
                    "from": form["From"],
                    "body": form["Body"],
                    "status": "queued",
                    "error_code": None,
                },
            )

    return Handler


@pytest.fixture
def provider(settings: Any) -> Any:
    state = Provider()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.SMS_PROVIDER_URL = state.url
    settings.SMS_ACCOUNT_SID = SID
    settings.SMS_AUTH_TOKEN = TOKEN
    settings.SMS_FROM = FROM
    settings.SITE_URL = "https://clinic.example"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def signed_post(client: Client, name: str, params: dict[str, str], token: str = TOKEN) -> Any:
    path = f"/n/sms/{name}/"
    sig = sms.signature(f"https://clinic.example{path}", params, token)
    return client.post(path, params, headers={"X-Twilio-Signature": sig})


# "Now" is Monday 23 Nov 2026, 12:00 in New York; the visit is the next day at 11:00.
NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=NEW_YORK)
VISIT = dt.datetime(2026, 11, 24, 11, 0, tzinfo=NEW_YORK)


@pytest.fixture
def clock() -> Any:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def agreed(patient: Patient) -> Patient:
    patient.sms_consent = True
    patient.save()
    return patient


def visit(world: World, patient: Patient, start: dt.datetime = VISIT) -> Appointment:
    return Appointment.objects.create(
        clinic=world.clinic,
        patient=patient,
        kind=Appointment.Kind.SESSION,
        practitioner=world.practitioner,
        starts_at=start,
        ends_at=start + dt.timedelta(minutes=30),
    )


def tick() -> list[actions.Outcome]:
    return actions.send_due("test-worker")


class QuietHoursLogicTests:
    def test_quiet_hours_run_over_midnight(self):
        q = (dt.time(20), dt.time(9))
        assert logic.in_quiet_hours(dt.time(20), *q)
        assert logic.in_quiet_hours(dt.time(23, 59), *q)
        assert logic.in_quiet_hours(dt.time(8, 59), *q)
        assert not logic.in_quiet_hours(dt.time(9), *q)
        assert not logic.in_quiet_hours(dt.time(19, 59), *q)
        assert not logic.in_quiet_hours(dt.time(3), dt.time(9), dt.time(9))

    def test_a_text_due_in_the_evening_waits_until_the_next_morning_in_the_clinics_zone(self):
        evening = dt.datetime(2026, 11, 23, 21, 30, tzinfo=NEW_YORK)
        after = logic.after_quiet_hours(evening, NEW_YORK, dt.time(20), dt.time(9))
        assert after == dt.datetime(2026, 11, 24, 9, 0, tzinfo=NEW_YORK)
        early = dt.datetime(2026, 11, 24, 6, 0, tzinfo=NEW_YORK)
        assert logic.after_quiet_hours(early, NEW_YORK, dt.time(20), dt.time(9)) == after
        noon = dt.datetime(2026, 11, 24, 12, 0, tzinfo=NEW_YORK)
        assert logic.after_quiet_hours(noon, NEW_YORK, dt.time(20), dt.time(9)) == noon

    def test_the_morning_after_a_daylight_saving_change_is_local_nine(self):
        # Clocks went back at 02:00 on Sunday 1 November 2026 in New York.
        night = dt.datetime(2026, 10, 31, 23, 0, tzinfo=NEW_YORK)
        after = logic.after_quiet_hours(night, NEW_YORK, dt.time(20), dt.time(9))
        assert after.astimezone(NEW_YORK).time() == dt.time(9)
        assert after.astimezone(dt.UTC).hour == 14  # EST, no longer EDT

    def test_stop_and_start_words(self):
        assert logic.keyword(" stop ") == "stop"
        assert logic.keyword("Unsubscribe") == "stop"
        assert logic.keyword("START") == "start"
        assert logic.keyword("stop sending me the price list") is None


class NoHealthDetailsTests:
    """Every text template's output, with real records behind it, says nothing of health."""

    def test_no_text_names_a_treatment_a_product_or_a_body_part(
        self, scene: Scene, provider, clock
    ):
        world, patient = scene.world, scene.patient
        patient.sms_consent = True
        patient.save()
        course = Course.objects.get(pk=scene.course["id"])
        appointment = Appointment.objects.create(
            clinic=world.clinic,
            patient=patient,
            course=course,
            kind=Appointment.Kind.SESSION,
            practitioner=world.practitioner,
            starts_at=VISIT,
            ends_at=VISIT + dt.timedelta(minutes=30),
        )
        world.lot.do_recall("Supplier notice", world.manager)
        [notice] = actions.do_notify_exposed(world.lot, "Lipo mix lot L100", user=world.manager)
        bodies = [
            actions.text_body(
                TextMessage(
                    clinic=world.clinic,
                    patient=patient,
                    kind="visit",
                    appointment=appointment,
                    planned_for=VISIT,
                )
            ),
            actions.text_body(notice.texts.get()),
        ]
        assert set(logic.TEXTS) == {"visit", "notice"}  # a new template must join this test
        forbidden = {
            course.protocol.name,
            course.indication,
            *course.areas,
            world.product.name,
            world.lot.lot_number,
            "mesotherapy",
            "session",
            "injection",
            "recall",
            "swelling",
            "side effect",
            "allerg",
        }
        for body in bodies:
            assert len(body) <= 320
            assert world.clinic.name in body
            # The clinic's own name ("… Mesotherapy Clinic") and the signed links are not the
            # template's words; everything else is.
            words = re.sub(r"https://\S+", "", body.replace(world.clinic.name, "")).lower()
            for word in forbidden:
                assert word.lower() not in words, (word, body)


class VisitTextTests:
    def test_a_patient_who_agreed_gets_one_text_with_the_visit_time_and_a_link(
        self, world, agreed, provider, clock
    ):
        appointment = visit(world, agreed)
        clock.move_to(VISIT - dt.timedelta(hours=24))
        outcomes = tick()
        assert [o.status for o in outcomes] == ["sent"]
        [sent] = provider.received
        assert sent["To"] == PHONE and sent["From"] == FROM
        assert "Tue 24 Nov at 11:00" in sent["Body"]
        assert re.search(r"https://clinic\.example/r/confirm/\S+/", sent["Body"])
        assert sent["StatusCallback"] == "https://clinic.example/n/sms/status/"
        text = TextMessage.objects.get(appointment=appointment)
        assert text.status == Status.SENT and text.provider_sid.startswith("SM")
        assert text.provider_status == "queued" and text.sent_to == PHONE
        # Planned and run again: nothing more is sent.
        tick()
        assert len(provider.received) == 1
        assert TextMessage.objects.count() == 1

    def test_the_database_refuses_a_second_text_for_the_same_visit_time(self, world, agreed):
        from django.db import IntegrityError

        appointment = visit(world, agreed)
        row = {"clinic": world.clinic, "patient": agreed, "kind": "visit"}
        TextMessage.objects.create(**row, appointment=appointment, planned_for=VISIT)
        with pytest.raises(IntegrityError), transaction.atomic():
            TextMessage.objects.create(**row, appointment=appointment, planned_for=VISIT)

    def test_no_consent_means_no_text(self, world, patient, provider, clock):
        visit(world, patient)
        clock.move_to(VISIT - dt.timedelta(hours=24))
        tick()
        assert provider.received == [] and not TextMessage.objects.exists()

    def test_a_stop_after_planning_stops_the_text(self, world, agreed, provider, clock):
        visit(world, agreed)
        actions.do_plan_texts()
        Patient.objects.filter(pk=agreed.pk).update(sms_consent=False)
        # Planned at noon on Monday, the text is due at once (its time has passed).
        [outcome] = tick()
        assert (outcome.status, outcome.detail) == ("skipped", "no_consent")
        assert provider.received == []

    def test_a_cancelled_visit_gets_no_text(self, world, agreed, provider, clock):
        appointment = visit(world, agreed)
        actions.do_plan_texts()
        Appointment.objects.filter(pk=appointment.pk).update(status="cancelled")
        # Planned at noon on Monday, the text is due at once (its time has passed).
        [outcome] = tick()
        assert (outcome.status, outcome.detail) == ("skipped", "visit_changed")
        assert provider.received == []

    def test_a_text_due_in_quiet_hours_waits_until_they_end(self, world, agreed, provider, clock):
        early = dt.datetime(2026, 11, 24, 8, 0, tzinfo=NEW_YORK)
        visit(world, agreed, start=early)
        # The visit is on Tuesday at 08:00, so its text is due on Monday at 08:00: inside the
        # clinic's quiet hours (20:00 to 09:00 by default). It waits until 09:00.
        clock.move_to(early - dt.timedelta(hours=24))
        [outcome] = tick()
        assert outcome.status == "waiting" and provider.received == []
        text = TextMessage.objects.get()
        assert text.status == Status.PENDING and text.attempts == 0
        assert text.next_attempt_at == dt.datetime(2026, 11, 23, 9, 0, tzinfo=NEW_YORK)
        clock.move_to(dt.datetime(2026, 11, 23, 8, 59, tzinfo=NEW_YORK))
        assert tick() == [] and provider.received == []
        clock.move_to(dt.datetime(2026, 11, 23, 9, 0, tzinfo=NEW_YORK))
        assert [o.status for o in tick()] == ["sent"]
        assert len(provider.received) == 1

    def test_the_clinics_own_quiet_hours_apply(self, world, agreed, provider, clock):
        world.clinic.quiet_from, world.clinic.quiet_until = dt.time(11), dt.time(13)
        world.clinic.save()
        visit(world, agreed, start=NOW + dt.timedelta(hours=23))
        [outcome] = tick()  # 12:00: inside this clinic's quiet hours
        assert outcome.status == "waiting"
        clock.move_to(NOW + dt.timedelta(hours=1))
        assert [o.status for o in tick()] == ["sent"]

    def test_an_invalid_number_fails_for_good_with_the_providers_code(
        self, world, agreed, provider, clock
    ):
        provider.errors[PHONE] = (400, 21211)
        visit(world, agreed)
        clock.move_to(VISIT - dt.timedelta(hours=24))
        [outcome] = tick()
        assert outcome.status == "failed"
        text = TextMessage.objects.get()
        assert text.status == Status.FAILED and text.provider_error == "21211"
        assert "21211" in text.last_error
        assert Patient.objects.get(pk=agreed.pk).sms_consent  # only a STOP takes consent away

    def test_a_provider_that_says_unsubscribed_withdraws_the_consent(
        self, world, agreed, provider, clock
    ):
        provider.errors[PHONE] = (400, 21610)
        visit(world, agreed)
        clock.move_to(VISIT - dt.timedelta(hours=24))
        tick()
        assert not Patient.objects.get(pk=agreed.pk).sms_consent
        assert AuditEvent.objects.filter(
            object_type="patients.Patient", detail__sms_consent=False
        ).exists()

    def test_a_provider_that_is_down_is_tried_again_later(self, world, agreed, provider, clock):
        provider.errors[PHONE] = (503, 20500)
        visit(world, agreed)
        clock.move_to(VISIT - dt.timedelta(hours=24))
        [outcome] = tick()
        assert outcome.status == "retry"
        text = TextMessage.objects.get()
        assert text.status == Status.PENDING and text.attempts == 1
        del provider.errors[PHONE]
        clock.shift(dt.timedelta(minutes=3))
        assert [o.status for o in tick()] == ["sent"]

    def test_without_a_provider_nothing_is_sent_and_the_row_says_why(
        self, world, agreed, settings, clock
    ):
        settings.SMS_PROVIDER_URL = ""
        visit(world, agreed)
        clock.move_to(VISIT - dt.timedelta(hours=24))
        [outcome] = tick()
        assert (outcome.status, outcome.detail) == ("skipped", "not_configured")


class ProviderWebhookTests:
    def test_stop_withdraws_consent_and_start_gives_it_back_audited(self, world, agreed, provider):
        client = Client()
        reply = {"From": PHONE, "To": FROM, "Body": "Stop", "MessageSid": "SMin1"}
        response = signed_post(client, "inbound", reply)
        assert response.status_code == 200 and b"<Response>" in response.content
        patient = Patient.objects.get(pk=agreed.pk)
        assert not patient.sms_consent and patient.sms_consent_at is None
        event = AuditEvent.objects.get(object_type="patients.Patient", via="sms")
        assert event.patient_id == agreed.pk and event.detail["why"] == "replied STOP"
        signed_post(client, "inbound", {**reply, "Body": "START"})
        patient.refresh_from_db()
        assert patient.sms_consent and patient.sms_consent_at is not None

    def test_a_request_without_the_providers_signature_is_refused(self, world, agreed, provider):
        client = Client()
        reply = {"From": PHONE, "To": FROM, "Body": "STOP"}
        assert client.post("/n/sms/inbound/", reply).status_code == 403
        assert signed_post(client, "inbound", reply, token="wrong").status_code == 403
        tampered = sms.signature("https://clinic.example/n/sms/inbound/", reply, TOKEN)
        other = {**reply, "From": "+12125550000"}
        forged = client.post("/n/sms/inbound/", other, headers={"X-Twilio-Signature": tampered})
        assert forged.status_code == 403
        assert Patient.objects.get(pk=agreed.pk).sms_consent

    def test_the_signature_follows_the_documented_example(self, settings):
        # Twilio's documented example: this URL, these parameters, auth token 12345.
        params = {
            "CallSid": "CA1234567890ABCDE",
            "Caller": "+12349013030",
            "Digits": "1234",
            "From": "+12349013030",
            "To": "+18005551212",
        }
        url = "https://mycompany.com/myapp.php?foo=1&bar=2"
        assert sms.signature(url, params, "12345") == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="

    def test_a_delivery_report_is_recorded_on_the_text(self, world, agreed, provider, clock):
        visit(world, agreed)
        clock.move_to(VISIT - dt.timedelta(hours=24))
        tick()
        text = TextMessage.objects.get()
        report = {"MessageSid": text.provider_sid, "MessageStatus": "delivered"}
        assert signed_post(Client(), "status", report).status_code == 204
        text.refresh_from_db()
        assert text.provider_status == "delivered"


class ConsentPageTests:
    def test_the_edit_page_records_the_yes_with_its_time_and_the_chart_shows_it(
        self, world, patient, clock
    ):
        client = Client()
        client.force_login(world.front_desk)
        page = client.get(f"/patients/{patient.pk}/edit/")
        assert b"The patient agrees to text messages" in page.content
        data = {
            "first_name": patient.first_name,
            "last_name": patient.last_name,
            "date_of_birth": "1990-05-17",
            "sex": patient.sex,
            "phone": patient.phone,
            "email": patient.email,
            "sms_consent": "on",
        }
        response = client.post(f"/patients/{patient.pk}/edit/", data)
        assert response.status_code == 302, response.content
        patient.refresh_from_db()
        assert patient.sms_consent and patient.sms_consent_at == NOW
        chart = client.get(f"/patients/{patient.pk}/").content.decode()
        assert "Text messages" in chart and "Agreed on" in chart
        del data["sms_consent"]
        client.post(f"/patients/{patient.pk}/edit/", data)
        patient.refresh_from_db()
        assert not patient.sms_consent and patient.sms_consent_at is None
        assert "Not agreed" in client.get(f"/patients/{patient.pk}/").content.decode()

    def test_the_manager_sets_quiet_hours_on_the_clinic_page(self, world):
        client = Client()
        client.force_login(world.manager)
        page = client.get("/manage/clinic/")
        assert b"No text messages from" in page.content
        form = page.context["form"]
        data = {
            name: (form.initial.get(name) if form.initial.get(name) is not None else "")
            for name in form.fields
        }
        data.update(quiet_from="21:30", quiet_until="08:00", baseline_required="on")
        response = client.post("/manage/clinic/", data)
        assert response.status_code == 302, response.content
        world.clinic.refresh_from_db()
        assert (world.clinic.quiet_from, world.clinic.quiet_until) == (dt.time(21, 30), dt.time(8))


# Recall notices.


@pytest.fixture
def recalled(scene: Scene) -> Scene:
    with transaction.atomic():
        scene.world.lot.do_recall("The supplier's notice of contamination", scene.world.manager)
    # These tests run at the real time of day: no quiet hours, so a text goes at once.
    clinic = scene.world.clinic
    clinic.quiet_from = clinic.quiet_until = dt.time(0)
    clinic.save()
    return scene


class RecallNoticeTests:
    def test_the_manager_notifies_each_exposed_patient_once_by_email_and_text(
        self, recalled: Scene, mail, provider
    ):
        world, patient = recalled.world, recalled.patient
        Patient.objects.filter(pk=patient.pk).update(sms_consent=True)
        client = Client()
        client.force_login(world.manager)
        lot_page = client.get(f"/manage/lots/{world.lot.pk}/").content.decode()
        assert "Notify exposed patients" in lot_page
        body = {"text": "Please call us about the lot used in your treatment on 1 November."}
        response = client.post(f"/manage/lots/{world.lot.pk}/notify/", body)
        assert response.status_code == 302
        again = client.post(f"/manage/lots/{world.lot.pk}/notify/", body)
        assert again.status_code == 302
        [notice] = RecallNotice.objects.all()
        assert notice.patient_id == patient.pk and notice.text == body["text"]
        assert (
            AuditEvent.objects.filter(
                object_type="notify.RecallNotice", action="create", patient_id=patient.pk
            ).count()
            == 1
        )
        tick()
        [email] = mail.wait_for(1)
        assert email.rcpt_tos == [patient.email]
        assert email.message["Subject"] == f"A message from {world.clinic.name}"
        assert world.product.name not in email.text and "recall" not in email.text.lower()
        [link] = re.findall(r"https://clinic\.example/n/notice/\S+/", email.text)
        # (The scene's patient also has a visit booked: its reminder text is not this one.)
        [text] = [r for r in provider.received if "/n/notice/" in r["Body"]]
        [text_link] = re.findall(r"https://clinic\.example/n/notice/(\S+)/", text["Body"])
        # Signed a moment apart, the two links differ in their timestamp, not in the notice.
        token = urlsplit(link).path.split("/")[-2]
        assert read_token(text_link) == read_token(token) == notice.pk
        assert text["To"] == PHONE
        sent = len(provider.received)
        tick()
        assert len(mail.received) == 1 and len(provider.received) == sent
        # The manager sees both channels as sent, and not yet read.
        lot_page = client.get(f"/manage/lots/{world.lot.pk}/").content.decode()
        assert lot_page.count("Sent ") == 2 and "Not yet" in lot_page
        sid = TextMessage.objects.get(notice=notice).provider_sid
        signed_post(Client(), "status", {"MessageSid": sid, "MessageStatus": "delivered"})
        assert "delivered" in client.get(f"/manage/lots/{world.lot.pk}/").content.decode()
        # The patient opens the link: the notice shows; pressing the button records the read.
        visitor = Client()
        path = urlsplit(link).path
        page = visitor.get(path)
        assert page.status_code == 200 and body["text"] in page.content.decode()
        assert RecallNotice.objects.get().read_at is None
        visitor.post(path)
        read = RecallNotice.objects.get()
        assert read.read_at is not None
        assert AuditEvent.objects.filter(
            object_type="notify.RecallNotice", action="view", via="link"
        ).exists()
        assert "Not yet" not in client.get(f"/manage/lots/{world.lot.pk}/").content.decode()

    def test_a_patient_without_email_or_consent_is_shown_as_not_reached(
        self, recalled: Scene, mail, provider
    ):
        Patient.objects.filter(pk=recalled.patient.pk).update(email="")
        actions.do_notify_exposed(recalled.world.lot, "Call us.", user=recalled.world.manager)
        tick()
        assert mail.received == [] and provider.received == []
        notice = RecallNotice.objects.get()
        assert (notice.status, notice.skip_reason) == ("skipped", "no_email")
        assert TextMessage.objects.get(notice=notice).skip_reason == "no_consent"
        client = Client()
        client.force_login(recalled.world.manager)
        page = client.get(f"/manage/lots/{recalled.world.lot.pk}/").content.decode()
        assert "the patient has no email address" in page
        assert "the patient has not agreed to text messages" in page

    def test_a_lot_not_recalled_cannot_be_notified(self, scene: Scene):
        client = Client()
        client.force_login(scene.world.manager)
        response = client.post(f"/manage/lots/{scene.world.lot.pk}/notify/", {"text": "Hi"})
        assert response.status_code == 302
        assert not RecallNotice.objects.exists()

    def test_an_empty_notice_is_refused_beside_the_field(self, recalled: Scene):
        client = Client()
        client.force_login(recalled.world.manager)
        response = client.post(f"/manage/lots/{recalled.world.lot.pk}/notify/", {"text": "  "})
        assert response.status_code == 400
        assert "Write the notice the patients will read." in response.content.decode()
        assert not RecallNotice.objects.exists()

    def test_only_a_manager_of_the_clinic_may_notify(self, recalled: Scene, other: World):
        url = f"/manage/lots/{recalled.world.lot.pk}/notify/"
        for user, status in (
            (recalled.world.front_desk, 403),
            (recalled.world.practitioner, 403),
            (other.manager, 404),
        ):
            client = Client()
            client.force_login(user)
            assert client.post(url, {"text": "Call us."}).status_code == status
        assert not RecallNotice.objects.exists()

    def test_a_tampered_link_names_no_notice(self, recalled: Scene):
        [notice] = actions.do_notify_exposed(
            recalled.world.lot, "Call us.", user=recalled.world.manager
        )
        from mesoclinic.notify.links import make_token

        token = make_token(notice.pk)
        response = Client().get(f"/n/notice/{token[:-2]}xx/")
        assert response.status_code == 400 and b"Call us." not in response.content
        from django.core import signing

        other_salt = signing.dumps({"n": notice.pk}, salt="mesoclinic.reminders.confirm")
        assert Client().get(f"/n/notice/{other_salt}/").status_code == 400


@pytest.mark.django_db(transaction=True)
class RecallNoticeRaceTests:
    def test_a_double_click_makes_one_notice_per_patient(self, recalled: Scene):
        if connection.vendor != "postgresql":
            pytest.skip("parallel requests need PostgreSQL (SQLite writers take turns)")
        url = f"/manage/lots/{recalled.world.lot.pk}/notify/"
        barrier = threading.Barrier(4)
        codes: list[int] = []

        def click() -> None:
            client = Client()
            client.force_login(recalled.world.manager)
            barrier.wait()
            try:
                codes.append(client.post(url, {"text": "Call us."}).status_code)
            finally:
                connection.close()

        threads = [threading.Thread(target=click) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert codes == [302] * 4
        assert RecallNotice.objects.count() == 1
        assert TextMessage.objects.count() == 1
        assert AuditEvent.objects.filter(object_type="notify.RecallNotice").count() == 1


# Maintenance invitations.


class MaintenanceInvitationTests:
    def _completed(self, scene: Scene) -> Course:
        course = Course.objects.get(pk=scene.course["id"])
        Course.objects.filter(pk=course.pk).update(status=Course.Status.COMPLETED)
        return course

    def test_the_patient_is_invited_once_when_the_window_opens(self, scene: Scene, mail):
        course = self._completed(scene)
        last = Session.objects.filter(course=course).latest("performed_at").performed_at
        # Five months on: not yet.
        with time_machine.travel(last + dt.timedelta(days=152), tick=False):
            assert actions.do_plan_invitations() == 0
            tick()
        assert mail.received == []
        # Six months and a few days on: the window (6 to 8 months, from the protocol) is open.
        with time_machine.travel(last + dt.timedelta(days=190), tick=False):
            tick()
            tick()
        [email] = mail.wait_for(1)
        assert email.rcpt_tos == [scene.patient.email]
        assert "maintenance visit" in email.text
        assert course.protocol.name.lower() not in email.text.lower()
        assert "cellulite" not in email.text.lower()
        invitation = MaintenanceInvitation.objects.get(course=course)
        assert invitation.status == Status.SENT
        assert (
            AuditEvent.objects.filter(
                object_type="notify.MaintenanceInvitation", patient_id=scene.patient.pk
            ).count()
            == 1
        )
        client = Client()
        client.force_login(scene.world.front_desk)
        chart = client.get(f"/patients/{scene.patient.pk}/").content.decode()
        assert "Maintenance invitation: emailed on" in chart

    def test_the_database_refuses_a_second_invitation_for_a_course(self, scene: Scene):
        from django.db import IntegrityError

        course = self._completed(scene)
        row = {
            "clinic_id": course.clinic_id,
            "course": course,
            "patient_id": course.patient_id,
            "window_from": dt.date(2027, 1, 1),
            "window_to": dt.date(2027, 3, 1),
        }
        MaintenanceInvitation.objects.create(**row)
        with pytest.raises(IntegrityError), transaction.atomic():
            MaintenanceInvitation.objects.create(**row)

    def test_a_window_already_past_invites_no_one(self, scene: Scene, mail):
        course = self._completed(scene)
        last = Session.objects.filter(course=course).latest("performed_at").performed_at
        with time_machine.travel(last + dt.timedelta(days=260), tick=False):
            assert actions.do_plan_invitations() == 0
            tick()
        assert mail.received == []
        # The row says why, and keeps the course from being looked at on every tick.
        invitation = MaintenanceInvitation.objects.get(course=course)
        assert (invitation.status, invitation.skip_reason) == ("skipped", "too_late")

    def test_an_active_course_is_not_invited(self, scene: Scene):
        course = Course.objects.get(pk=scene.course["id"])
        last = Session.objects.filter(course=course).latest("performed_at").performed_at
        with time_machine.travel(last + dt.timedelta(days=190), tick=False):
            assert actions.do_plan_invitations() == 0


class NoticeAccessTests:
    """The notice is ready for the patients' portal: its own patient may read it, another
    patient may not know it exists, and its link opens only it."""

    def test_only_its_patient_staff_of_the_clinic_or_its_link_may_read_a_notice(
        self, recalled: Scene, other: World
    ):
        from django.core.exceptions import PermissionDenied
        from django.http import Http404

        from mesoclinic.access import Caller, access_notice, caller_for_notice_link
        from mesoclinic.accounts.models import Membership

        world, patient = recalled.world, recalled.patient
        [notice] = actions.do_notify_exposed(world.lot, "Call us.", user=world.manager)
        someone = Patient.objects.create(
            clinic=world.clinic,
            first_name="Otto",
            last_name="Other",
            date_of_birth=dt.date(1970, 1, 1),
        )
        own = Caller(user=world.manager, patient=patient)
        assert access_notice(own, notice.pk) == notice
        with pytest.raises(Http404):
            access_notice(Caller(user=world.manager, patient=someone), notice.pk)
        assert access_notice(caller_for_notice_link(notice.pk), notice.pk) == notice
        with pytest.raises(Http404):
            access_notice(caller_for_notice_link(notice.pk + 1), notice.pk)
        staff = Membership.objects.get(user=world.front_desk, clinic=world.clinic)
        assert access_notice(Caller(user=world.front_desk, membership=staff), notice.pk)
        elsewhere = Membership.objects.get(user=other.manager)
        with pytest.raises(Http404):
            access_notice(Caller(user=other.manager, membership=elsewhere), notice.pk)
        with pytest.raises(PermissionDenied):
            access_notice(Caller(), notice.pk)
