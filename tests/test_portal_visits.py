"""A patient books, moves and cancels their own visits in the portal, through the staff's own
booking actions: the allergy test's 24-hour wait and the cadence are checked on the server,
with the valid days in words; the clinic's policy refuses a late change (staff are not bound);
a hard stop in screening refuses treatment booked by POST; another patient's visit is a 404;
everything is audited with the channel "portal". The waitlist offers a cancelled slot to the
first patient whose window fits, by real email, with a link that expires and passes on."""

from __future__ import annotations

import datetime as dt
import re
import threading
from typing import Any

import pytest
import time_machine
from django.db import IntegrityError, connection, transaction
from django.test import Client

from mesoclinic.accounts.models import AuditEvent
from mesoclinic.courses.actions import do_plan_course
from mesoclinic.courses.models import Course
from mesoclinic.patients.models import Patient
from mesoclinic.portal import waitlist
from mesoclinic.portal.models import WaitlistOffer, WaitlistRequest
from mesoclinic.protocols.models import ClinicProtocol
from mesoclinic.scheduling import actions, planning
from mesoclinic.scheduling.models import Appointment
from tests.conftest import World
from tests.scheduling_fixtures import NEW_YORK, NOW, set_up_calendar
from tests.test_notify import provider as provider  # noqa: F401 - a fixture
from tests.test_portal import no_to_everything, signed_in_patient
from tests.test_reminders import Mailbox
from tests.test_reminders import mail as mail  # noqa: F401 - a fixture
from tests.test_reminders import smtp_server as smtp_server  # noqa: F401 - a fixture

OFFER_LINK = re.compile(r"https?://\S+(/my/offer/\S+/)")


def ny(day: int, hour: int, minute: int = 0, month: int = 11) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, tzinfo=NEW_YORK)


def plan(world: World, patient: Patient) -> Course:
    return do_plan_course(
        patient,
        ClinicProtocol.current(world.clinic, "cellulite"),  # type: ignore[arg-type]
        indication="cellulite",
        areas=["thighs"],
        cadence_days=7,
        planned_sessions=15,
        user=world.manager,
    )


def another_patient(world: World, first: str, email: str) -> Patient:
    return Patient.objects.create(
        clinic=world.clinic,
        first_name=first,
        last_name="Reyes",
        date_of_birth=dt.date(1985, 3, 2),
        email=email,
    )


def choose(day: dt.datetime) -> dict[str, str]:
    local = day.astimezone(NEW_YORK)
    return {"day": local.date().isoformat(), "time": f"{local:%H:%M}"}


@pytest.fixture
def booked(world: World, patient: Patient, now: Any) -> Course:
    """Ana's course, booked by the front desk: the allergy test visit, then fifteen sessions."""
    set_up_calendar(world)
    world.clinic.phone = "+1 212 555 0100"
    world.clinic.save()
    course = plan(world, patient)
    planning.do_book_course(course, user=world.front_desk, via="web")
    return course


def book_late(world: World, course: Course, hour: int) -> Appointment:
    """Book the course, then move session 1 to Fri 27 Nov at `hour` (late in its window)."""
    planning.do_book_course(course, user=world.front_desk, via="web")
    first = sessions(course)[0]
    planning.do_move(first, ny(27, hour), user=world.front_desk, accept_break=True, via="web")
    first.refresh_from_db()
    return first


def sessions(course: Course) -> list[Appointment]:
    return list(
        Appointment.objects.filter(course=course, kind="session", status="booked").order_by(
            "starts_at"
        )
    )


class BookTests:
    def test_the_patient_books_the_test_then_session_1_only_after_the_24_hour_wait(
        self, world: World, patient: Patient, now: Any
    ) -> None:
        set_up_calendar(world)
        course = plan(world, patient)
        client = signed_in_patient(patient)
        page = client.get(f"/my/visits/book/{course.pk}/")
        assert page.status_code == 200
        text = page.content.decode()
        assert "Book the allergy test visit" in text
        assert "The allergy test visit can be booked any day in the next 14 days." in text
        # The times offered spread through the day, two hours apart at least.
        offered = re.findall(r'name="slot" value="2026-11-23T(\d\d:\d\d)', text)
        # 09:00, 11:00, 14:00 and 16:00 in New York, written in UTC.
        assert offered == ["14:00", "16:00", "19:00", "21:00"], offered
        slot = re.search(r'name="slot" value="([^"]+)"', text)
        assert slot is not None, text
        patient.refresh_from_db()
        r = client.post(f"/my/visits/book/{course.pk}/", {"slot": slot.group(1)})
        assert r.status_code == 302 and r["Location"] == "/my/visits/", r.content[:800]
        test_visit = Appointment.objects.get(course=course, kind="allergy_test")
        assert test_visit.starts_at == NOW.replace(hour=9)  # the first free time, Mon 09:00
        assert AuditEvent.objects.filter(
            action="create", object_id=str(test_visit.pk), via="portal", user=patient.user
        ).exists()

        # Session 1 two hours after the test: refused with the valid days, nothing booked.
        r = client.post(f"/my/visits/book/{course.pk}/", choose(ny(23, 11)))
        assert r.status_code == 409
        # The test was on Mon 23 Nov at 09:00: session 1 waits 24 hours, then 14 days to book.
        assert (
            "Session 1 must be between Tue 24 Nov 09:00 and Tue 8 Dec 09:00." in r.content.decode()
        )
        assert not Appointment.objects.filter(course=course, kind="session").exists()
        # The next day it is booked.
        r = client.post(f"/my/visits/book/{course.pk}/", choose(ny(24, 10)))
        assert r.status_code == 302, r.content.decode()[-1500:]
        assert Appointment.objects.get(course=course, kind="session").starts_at == ny(24, 10)

    def test_the_calendar_refuses_what_it_refuses_staff(
        self, world: World, patient: Patient, now: Any
    ) -> None:
        set_up_calendar(world)
        course = plan(world, patient)
        client = signed_in_patient(patient)
        # A Sunday: the clinic is closed.
        r = client.post(f"/my/visits/book/{course.pk}/", choose(ny(29, 10)))
        assert r.status_code == 409
        assert "The clinic is closed on Sundays" in r.content.decode()
        # An answer that names no time is a form error beside the field.
        r = client.post(f"/my/visits/book/{course.pk}/", {"time": "10:00"})
        assert r.status_code == 400
        assert "Give the day as well as the time." in r.content.decode()
        assert not Appointment.objects.filter(course=course).exists()

    def test_a_hard_stop_refuses_treatment_booked_by_post(
        self, world: World, patient: Patient, now: Any
    ) -> None:
        set_up_calendar(world)
        world.clinic.phone = "+1 212 555 0100"
        world.clinic.save()
        course = plan(world, patient)
        client = signed_in_patient(patient)
        client.post("/my/intake/screening/", {**no_to_everything(world.clinic), "pregnant": "yes"})
        page = client.get(f"/my/visits/book/{course.pk}/").content.decode()
        assert 'name="slot"' not in page
        r = client.post(f"/my/visits/book/{course.pk}/", choose(ny(24, 10)))
        assert r.status_code == 403
        assert "stop online booking of treatment" in r.content.decode()
        assert "+1 212 555 0100" in r.content.decode()
        assert not Appointment.objects.filter(course=course).exists()

    def test_another_patients_course_and_visits_are_404(
        self, world: World, patient: Patient, booked: Course
    ) -> None:
        other = another_patient(world, "Bea", "bea@example.com")
        client = signed_in_patient(other)
        visit = sessions(booked)[1]
        assert client.get(f"/my/visits/book/{booked.pk}/").status_code == 404
        assert client.post(f"/my/visits/book/{booked.pk}/", choose(ny(30, 10))).status_code == 404
        assert client.get(f"/my/visits/{visit.pk}/move/").status_code == 404
        assert client.post(f"/my/visits/{visit.pk}/cancel/").status_code == 404
        assert client.post(f"/my/visits/waitlist/{booked.pk}/").status_code == 404
        visit.refresh_from_db()
        assert visit.status == "booked"
        assert not WaitlistRequest.objects.exists()
        # Staff are refused the patient's pages.
        staff = Client()
        staff.force_login(world.manager)
        assert staff.get("/my/visits/").status_code == 403


class MoveTests:
    def test_a_move_that_breaks_the_cadence_is_refused_with_the_valid_days(
        self, world: World, patient: Patient, booked: Course
    ) -> None:
        client = signed_in_patient(patient)
        first, second = sessions(booked)[:2]
        due = first.starts_at + dt.timedelta(days=7)
        assert second.starts_at == due
        page = client.get(f"/my/visits/{second.pk}/move/")
        assert page.status_code == 200
        # Session 1 is on Tue 24 Nov; the cadence is 7 days, give or take 2.
        words = "Session 2 must be between Sun 29 Nov 09:00 and Thu 3 Dec 09:00."
        assert words in page.content.decode()
        patient.refresh_from_db()
        assert AuditEvent.objects.filter(
            action="view", object_id=str(second.pk), patient_id=patient.pk, user=patient.user
        ).exists()

        r = client.post(f"/my/visits/{second.pk}/move/", choose(due + dt.timedelta(days=4)))
        assert r.status_code == 409
        assert words in r.content.decode()
        second.refresh_from_db()
        assert second.starts_at == due

        r = client.post(f"/my/visits/{second.pk}/move/", choose(due + dt.timedelta(days=1)))
        assert r.status_code == 302, r.content.decode()[-1500:]
        second.refresh_from_db()
        assert second.starts_at == due + dt.timedelta(days=1)
        assert AuditEvent.objects.filter(
            action="update", object_id=str(second.pk), via="portal", user=patient.user
        ).exists()

    def test_a_late_change_is_refused_by_the_clinics_policy_and_staff_are_not_bound(
        self, world: World, patient: Patient, booked: Course, now: Any
    ) -> None:
        client = signed_in_patient(patient)
        patient.refresh_from_db()
        test_visit = Appointment.objects.get(course=booked, kind="allergy_test")
        now.move_to(test_visit.starts_at - dt.timedelta(hours=5))
        page = client.get("/my/visits/").content.decode()
        policy = "Online, a visit can be moved or cancelled up to 24 hours before it starts."
        assert policy in page
        assert "It is too close to change online: call Demo Mesotherapy Clinic" in page
        for path in (f"/my/visits/{test_visit.pk}/cancel/", f"/my/visits/{test_visit.pk}/move/"):
            r = client.post(path, choose(test_visit.starts_at + dt.timedelta(hours=2)))
            assert r.status_code == 403, path
            body = r.content.decode()
            assert policy in body and "+1 212 555 0100" in body
        test_visit.refresh_from_db()
        assert test_visit.status == "booked"
        # A clinic that allows changes up to 4 hours before: the same change is accepted.
        world.clinic.patient_change_hours = 4
        world.clinic.save()
        r = client.post(f"/my/visits/{test_visit.pk}/cancel/")
        assert r.status_code == 302
        test_visit.refresh_from_db()
        assert test_visit.status == "cancelled"
        assert test_visit.cancelled_by == patient.user
        # Staff cancel a visit an hour away: the patient's policy is not theirs.
        soon = sessions(booked)[0]
        now.move_to(soon.starts_at - dt.timedelta(hours=1))
        actions.do_cancel(soon, user=world.front_desk, via="web")

    def test_the_policy_is_set_on_the_clinic_details_page(self, world: World) -> None:
        from mesoclinic.web.manage_forms import ClinicSettingsForm

        staff = Client()
        staff.force_login(world.manager)
        page = staff.get("/manage/clinic/").content.decode()
        assert "Patients may move or cancel online up to (hours before)" in page
        data = {
            k: v
            for k, v in ClinicSettingsForm(instance=world.clinic).initial.items()
            if v is not None and not isinstance(v, bool)
        }
        r = staff.post("/manage/clinic/", {**data, "patient_change_hours": "48"})
        assert r.status_code == 302, r.content.decode()[-1500:]
        world.clinic.refresh_from_db()
        assert world.clinic.patient_change_hours == 48
        r = staff.post("/manage/clinic/", {**data, "patient_change_hours": "900"})
        assert r.status_code == 200 and "Give at most 336 hours" in r.content.decode()


class WaitlistTests:
    def _scene(self, world: World, patient: Patient, booked: Course) -> dict[str, Any]:
        """Bea's course, her session 1 on Fri 27 Nov at 14:00; Ana also holds a session visit
        (outside a course) on Wed 25 Nov at 11:00 with Bea's practitioner: when it is cancelled,
        that time fits Bea's window and is earlier than her booked session 1."""
        bea = another_patient(world, "Bea", "bea@example.com")
        bea_course = plan(world, bea)
        bea_first = book_late(world, bea_course, 14)
        freed_at = ny(25, 11)
        held = actions.do_book(
            patient,
            kind="session",
            practitioner=bea_first.practitioner,
            starts_at=freed_at,
            ends_at=freed_at + dt.timedelta(minutes=30),
            user=world.front_desk,
            via="web",
        )
        return {"bea": bea, "course": bea_course, "second": bea_first, "held": held}

    def test_a_cancelled_slot_is_offered_by_email_and_taken(
        self,
        world: World,
        patient: Patient,
        booked: Course,
        mail: Mailbox,
        django_capture_on_commit_callbacks: Any,
    ) -> None:
        scene = self._scene(world, patient, booked)
        bea_client = signed_in_patient(scene["bea"])
        r = bea_client.post(f"/my/visits/waitlist/{scene['course'].pk}/")
        assert r.status_code == 302
        bea_client.post(f"/my/visits/waitlist/{scene['course'].pk}/")  # a double click
        assert WaitlistRequest.objects.filter(status="open").count() == 1
        assert "You are on the waitlist" in bea_client.get("/my/visits/").content.decode()

        with django_capture_on_commit_callbacks(execute=True):
            actions.do_cancel(scene["held"], user=world.front_desk, via="web")
        [message] = mail.wait_for(1)
        assert message.rcpt_tos == ["bea@example.com"]
        assert "cellulite" not in message.text.lower()  # no health details
        path = OFFER_LINK.search(message.text)
        assert path is not None, message.text
        offer_page = Client().get(path.group(1))
        assert offer_page.status_code == 200 and "Take this time" in offer_page.content.decode()
        r = Client().post(path.group(1))
        assert r.status_code == 200 and "The earlier time is yours." in r.content.decode()
        scene["second"].refresh_from_db()
        assert scene["second"].starts_at == scene["held"].starts_at
        assert WaitlistRequest.objects.get().status == "done"
        # Used once.
        again = Client().post(path.group(1))
        assert again.status_code == 409 and "already taken" in again.content.decode()
        assert (
            AuditEvent.objects.filter(
                object_type="portal.WaitlistOffer", via="portal", patient_id=scene["bea"].pk
            ).count()
            >= 3
        )

    def test_the_offer_is_texted_to_a_patient_who_agreed_outside_quiet_hours(
        self,
        world: World,
        patient: Patient,
        booked: Course,
        now: Any,
        mail: Mailbox,
        provider: Any,
        django_capture_on_commit_callbacks: Any,
    ) -> None:
        scene = self._scene(world, patient, booked)
        bea = scene["bea"]
        bea.phone, bea.sms_consent = "+1 212 555 0102", True
        bea.save()
        bea.refresh_from_db()
        assert bea.phone_e164 == "+12125550102"
        waitlist.do_join(scene["course"], user=None)
        now.move_to(ny(23, 10))  # after the quiet hours (20:00 to 09:00)
        with django_capture_on_commit_callbacks(execute=True):
            actions.do_cancel(scene["held"], user=world.front_desk, via="web")
        [text] = provider.received
        assert text["To"] == "+12125550102"
        assert "Wed 25 Nov at 11:00" in text["Body"] and "/my/offer/" in text["Body"]
        assert "cellulite" not in text["Body"].lower() and "session" not in text["Body"].lower()
        assert len(mail.wait_for(1)) == 1

    def test_no_text_in_quiet_hours_or_without_a_yes(
        self,
        world: World,
        patient: Patient,
        booked: Course,
        now: Any,
        provider: Any,
        monkeypatch: pytest.MonkeyPatch,
        django_capture_on_commit_callbacks: Any,
    ) -> None:
        scene = self._scene(world, patient, booked)
        bea = scene["bea"]
        bea.phone, bea.sms_consent = "+1 212 555 0102", True
        bea.save()
        waitlist.do_join(scene["course"], user=None)
        monkeypatch.setattr(waitlist, "send_mail", lambda *a, **k: 1)
        with django_capture_on_commit_callbacks(execute=True):
            actions.do_cancel(scene["held"], user=world.front_desk, via="web")  # 08:00: quiet
        assert WaitlistOffer.objects.count() == 1 and provider.received == []
        # Without a yes to texts, none either: another slot, offered at 10:30.
        second = actions.do_book(
            patient,
            kind="session",
            practitioner=scene["second"].practitioner,
            starts_at=ny(26, 11),
            ends_at=ny(26, 11, 30),
            user=world.front_desk,
            via="web",
        )
        Patient.objects.filter(pk=bea.pk).update(sms_consent=False)
        now.move_to(ny(23, 10, 30))
        assert waitlist.do_expire_offers() == 1  # the first one; nobody else is waiting
        with django_capture_on_commit_callbacks(execute=True):
            actions.do_cancel(second, user=world.front_desk, via="web")
        assert WaitlistOffer.objects.filter(status="offered").count() == 1
        assert provider.received == []

    def test_an_expired_offer_passes_to_the_next_patient(
        self,
        world: World,
        patient: Patient,
        booked: Course,
        now: Any,
        monkeypatch: pytest.MonkeyPatch,
        django_capture_on_commit_callbacks: Any,
    ) -> None:
        sent: list[tuple[WaitlistOffer, str]] = []
        monkeypatch.setattr(waitlist, "_send", lambda offer, token: sent.append((offer, token)))
        scene = self._scene(world, patient, booked)
        cara = another_patient(world, "Cara", "cara@example.com")
        cara_course = plan(world, cara)
        book_late(world, cara_course, 15)
        waitlist.do_join(scene["course"], user=None)
        waitlist.do_join(cara_course, user=None)
        with pytest.raises(IntegrityError), transaction.atomic():
            WaitlistRequest.objects.create(
                clinic=world.clinic, patient=cara, course=cara_course
            )  # one open request per course
        with django_capture_on_commit_callbacks(execute=True):
            actions.do_cancel(scene["held"], user=world.front_desk, via="web")
        [(first, first_token)] = sent
        assert first.request.patient == scene["bea"]
        now.shift(dt.timedelta(minutes=121))
        assert Client().get(f"/my/offer/{first_token}/").status_code == 410
        assert waitlist.do_expire_offers() == 1
        assert [o.request.patient for o, _ in sent] == [scene["bea"], cara]
        first.refresh_from_db()
        assert first.status == "expired"
        # The expired link says so.
        r = Client().post(f"/my/offer/{first_token}/")
        assert r.status_code == 409 and "expired" in r.content.decode()
        # Cara takes it.
        answer = waitlist.do_accept(sent[1][1])
        assert answer is not None and answer.ok, answer

    def test_a_hard_stop_answered_after_the_offer_refuses_it(
        self,
        world: World,
        patient: Patient,
        booked: Course,
        monkeypatch: pytest.MonkeyPatch,
        django_capture_on_commit_callbacks: Any,
    ) -> None:
        sent: list[str] = []
        monkeypatch.setattr(waitlist, "_send", lambda offer, token: sent.append(token))
        scene = self._scene(world, patient, booked)
        waitlist.do_join(scene["course"], user=None)
        with django_capture_on_commit_callbacks(execute=True):
            actions.do_cancel(scene["held"], user=world.front_desk, via="web")
        [token] = sent
        bea_client = signed_in_patient(scene["bea"])
        bea_client.post(
            "/my/intake/screening/", {**no_to_everything(world.clinic), "pregnant": "yes"}
        )
        r = Client().post(f"/my/offer/{token}/")
        assert r.status_code == 409
        assert "stop online booking of treatment" in r.content.decode()
        scene["second"].refresh_from_db()
        assert scene["second"].starts_at == ny(27, 14)

    def test_a_slot_later_than_the_booked_session_is_offered_to_nobody(
        self,
        world: World,
        patient: Patient,
        booked: Course,
        monkeypatch: pytest.MonkeyPatch,
        django_capture_on_commit_callbacks: Any,
    ) -> None:
        sent: list[Any] = []
        monkeypatch.setattr(waitlist, "_send", lambda offer, token: sent.append(offer))
        scene = self._scene(world, patient, booked)
        waitlist.do_join(scene["course"], user=None)
        late = scene["second"].starts_at + dt.timedelta(hours=2)
        far = actions.do_book(
            patient,
            kind="session",
            practitioner=scene["second"].practitioner,
            starts_at=late,
            ends_at=late + dt.timedelta(minutes=30),
            user=world.front_desk,
            via="web",
        )
        with django_capture_on_commit_callbacks(execute=True):
            actions.do_cancel(far, user=world.front_desk, via="web")  # later than Bea's own
        assert sent == [] and not WaitlistOffer.objects.exists()
        # The same patient's earlier slot, freed, is offered: the test above can fail.
        with django_capture_on_commit_callbacks(execute=True):
            actions.do_cancel(scene["held"], user=world.front_desk, via="web")
        assert len(sent) == 1


@pytest.mark.skipif(
    "postgres" not in __import__("os").environ.get("DATABASE_URL", ""),
    reason="the race is proven on PostgreSQL",
)
@pytest.mark.django_db(transaction=True)
def test_two_patients_accepting_the_same_slot_at_once_one_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.conftest import build_clinic

    assert connection.vendor == "postgresql"
    world = set_up_calendar(build_clinic("Race clinic", "wl_"))
    with time_machine.travel(NOW, tick=False):
        ana = another_patient(world, "Ana", "ana@example.com")
        bea = another_patient(world, "Bea", "bea@example.com")
        cara = another_patient(world, "Cara", "cara@example.com")
        courses = [plan(world, p) for p in (bea, cara)]
        bea_first = book_late(world, courses[0], 14)
        book_late(world, courses[1], 15)
        freed_at = ny(25, 11)
        held = actions.do_book(
            ana,
            kind="session",
            practitioner=bea_first.practitioner,
            starts_at=freed_at,
            ends_at=freed_at + dt.timedelta(minutes=30),
            user=world.front_desk,
            via="web",
        )
        sent: list[str] = []
        monkeypatch.setattr(waitlist, "_send", lambda offer, token: sent.append(token))
        for c in courses:
            waitlist.do_join(c, user=None)
        actions.do_cancel(held, user=world.front_desk, via="web")
        # A second offer of the same slot, as when the first is thought expired.
        waitlist._offer(world.clinic.pk, held.starts_at, held.practitioner, held)
    assert len(sent) == 2
    barrier = threading.Barrier(2)
    answers: list[Any] = []

    def accept(token: str) -> None:
        try:
            with time_machine.travel(NOW + dt.timedelta(minutes=5), tick=False):
                barrier.wait()
                answers.append(waitlist.do_accept(token))
        finally:
            connection.close()

    threads = [threading.Thread(target=accept, args=(t,)) for t in sent]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(a.ok for a in answers) == [False, True], answers
    lost = next(a for a in answers if not a.ok)
    assert "Someone else took this time" in lost.message
    assert (
        Appointment.objects.filter(starts_at=freed_at, status__in=("booked", "confirmed")).count()
        == 1
    )
    assert WaitlistOffer.objects.filter(status="accepted").count() == 1
    assert WaitlistOffer.objects.filter(status="taken").count() == 1
