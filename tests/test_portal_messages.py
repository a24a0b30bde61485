"""The secure message thread between a patient and their clinic: the patient writes in the
portal, staff see it in the clinic's inbox with its unread count and on the patient's thread,
and reply; every message is audited; the email that tells the patient about a reply (sent to
a real SMTP listener) carries no health details; a patient sees only their own thread and
staff only their clinic's."""

from __future__ import annotations

from django.test import Client

from mesoclinic.accounts.models import AuditEvent
from mesoclinic.patients.models import Patient
from mesoclinic.portal.models import Message
from tests.conftest import Scene, World
from tests.test_portal import ana as ana  # noqa: F401 - a fixture
from tests.test_portal import otto as otto  # noqa: F401 - a fixture
from tests.test_portal import staff_client
from tests.test_reminders import Mailbox
from tests.test_reminders import mail as mail  # noqa: F401 - a fixture
from tests.test_reminders import smtp_server as smtp_server  # noqa: F401 - a fixture

QUESTION = "My thigh is still swollen after the cellulite session. Is that normal?"
REPLY = "Please come in tomorrow at 10 so that we can look at the swelling."


class PatientThreadTests:
    def test_a_patient_writes_and_the_clinic_sees_it_unread_in_the_inbox(
        self, scene: Scene, ana: Client
    ) -> None:
        r = ana.post("/my/messages/", {"body": QUESTION})
        assert r.status_code == 302 and r["Location"] == "/my/messages/"
        message = Message.objects.get()
        assert message.patient == scene.patient and message.sender == "patient"
        assert message.body == QUESTION and message.read_at is None
        row = AuditEvent.objects.get(object_type="portal.Message", action="create")
        assert row.via == "portal" and row.patient_id == scene.patient.pk
        assert row.user_id == message.author_id and QUESTION not in str(row.detail)
        assert QUESTION in ana.get("/my/messages/").content.decode()

        staff = staff_client(scene.world.front_desk)
        inbox = staff.get("/messages/").content.decode()
        assert "1 unread message." in inbox and "Ana Lopez" in inbox
        assert f"/patients/{scene.patient.pk}/messages/" in inbox
        chart = staff.get(f"/patients/{scene.patient.pk}/").content.decode()
        assert f"/patients/{scene.patient.pk}/messages/" in chart and "1 unread" in chart
        thread = staff.get(f"/patients/{scene.patient.pk}/messages/").content.decode()
        assert QUESTION in thread
        # Opening the thread reads it.
        message.refresh_from_db()
        assert message.read_at is not None
        assert "No unread message." in staff.get("/messages/").content.decode()

    def test_an_empty_message_is_refused_beside_the_field(self, scene: Scene, ana: Client) -> None:
        r = ana.post("/my/messages/", {"body": "   "})
        assert r.status_code == 400
        assert 'id="id_body_error"' in r.content.decode()
        assert "Write your message first." in r.content.decode()
        assert not Message.objects.exists()


class ReplyTests:
    def test_a_reply_reaches_the_portal_and_the_email_carries_no_health_details(
        self, scene: Scene, ana: Client, mail: Mailbox
    ) -> None:
        ana.post("/my/messages/", {"body": QUESTION})
        staff = staff_client(scene.world.practitioner)
        r = staff.post(f"/patients/{scene.patient.pk}/messages/", {"body": REPLY})
        assert r.status_code == 302
        reply = Message.objects.get(sender="clinic")
        assert reply.author == scene.world.practitioner and reply.read_at is None
        assert AuditEvent.objects.filter(
            object_type="portal.Message", object_id=str(reply.pk), action="create", via="web"
        ).exists()
        [email] = mail.wait_for(1)
        assert email.rcpt_tos == [scene.patient.email]
        assert email.message["Subject"] == "A new message from Demo Mesotherapy Clinic"
        assert "You have a new message from Demo Mesotherapy Clinic. Sign in to read it" in (
            email.text
        )
        assert "/my/messages/" in email.text
        for health in ("swell", "thigh", "cellulite", "10", REPLY[:20]):
            assert health not in email.text.lower(), health
        assert "You have a new message from" in ana.get("/my/").content.decode()
        page = ana.get("/my/messages/").content.decode()
        assert REPLY in page
        assert "You have a new message from" not in ana.get("/my/").content.decode()
        reply.refresh_from_db()
        assert reply.read_at is not None
        thread = staff.get(f"/patients/{scene.patient.pk}/messages/").content.decode()
        assert "read by the patient" in thread


class MessageAccessTests:
    def test_a_patient_sees_only_their_own_thread(
        self, scene: Scene, ana: Client, otto: Client
    ) -> None:
        ana.post("/my/messages/", {"body": QUESTION})
        assert QUESTION not in otto.get("/my/messages/").content.decode()
        otto.post("/my/messages/", {"body": "Hello from Otto"})
        assert "Hello from Otto" not in ana.get("/my/messages/").content.decode()
        # A patient may not open the staff's pages.
        assert ana.get("/messages/").status_code == 403
        assert ana.get(f"/patients/{scene.patient.pk}/messages/").status_code == 403
        assert ana.post(f"/patients/{scene.patient.pk}/messages/", {"body": "x"}).status_code == (
            403
        )
        assert Message.objects.filter(sender="clinic").count() == 0

    def test_staff_see_only_their_clinics_threads(
        self, scene: Scene, ana: Client, other: World
    ) -> None:
        ana.post("/my/messages/", {"body": QUESTION})
        outsider = staff_client(other.manager)
        assert "Ana Lopez" not in outsider.get("/messages/").content.decode()
        path = f"/patients/{scene.patient.pk}/messages/"
        assert outsider.get(path).status_code == 404
        assert outsider.post(path, {"body": "From elsewhere"}).status_code == 404
        assert not Message.objects.filter(sender="clinic").exists()
        assert Message.objects.get().read_at is None
        # The staff's own clinic's patients only: a patient of the other clinic stays apart.
        foreign = Patient.objects.create(
            clinic=other.clinic, first_name="Fay", last_name="Far", date_of_birth="1980-01-01"
        )
        Message.objects.create(clinic=other.clinic, patient=foreign, sender="patient", body="Hi")
        inbox = staff_client(scene.world.manager).get("/messages/").content.decode()
        assert "Fay Far" not in inbox and "Ana Lopez" in inbox

    def test_staff_are_refused_the_patients_thread_page(self, scene: Scene) -> None:
        assert staff_client(scene.world.manager).get("/my/messages/").status_code == 403
        r = staff_client(scene.world.manager).post("/my/messages/", {"body": "x"})
        assert r.status_code == 403
        assert not Message.objects.exists()
