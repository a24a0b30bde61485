"""The patient portal's accounts and home page: staff invite a patient from the chart by a
single-use, expiring sign-in link sent by real email; a patient registers with their address
verified, matched to the clinic's record only when name, date of birth and email agree; the
portal's sign-in is throttled like the staff's; a staff account is never a patient; and a
patient sees their own visits, plan, aftercare, documents and photos, and nobody else's."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent, LoginThrottle, User
from mesoclinic.courses.models import Course, Session
from mesoclinic.outcomes import photo_actions
from mesoclinic.patients.models import Consent, Patient, PatientChange
from mesoclinic.portal.models import PortalLink
from mesoclinic.scheduling.models import Appointment
from tests.conftest import Scene, World
from tests.test_reminders import Mailbox
from tests.test_reminders import mail as mail  # noqa: F401 - a fixture
from tests.test_reminders import smtp_server as smtp_server  # noqa: F401 - a fixture

LINK = re.compile(r"https?://\S+/my/link/(\S+)/")


def link_in(message: Any) -> str:
    found = LINK.findall(message.text)
    assert len(found) == 1, message.text
    return f"/my/link/{found[0]}/"


def staff_client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def invite(world: World, patient: Patient, mailbox: Mailbox, by: User | None = None) -> str:
    r = staff_client(by or world.manager).post(f"/my/invite/{patient.pk}/")
    assert r.status_code == 302 and r["Location"] == f"/patients/{patient.pk}/", r
    [message] = mailbox.wait_for(1)[-1:]
    assert message.rcpt_tos == [patient.email]
    return link_in(message)


def signed_in_patient(patient: Patient, password: str = "a long pass phrase 42") -> Client:
    """A patient with a login and a password, signed in through the portal's own form."""
    user = User.objects.create_user(patient.email.lower(), email=patient.email, password=password)
    Patient.objects.filter(pk=patient.pk).update(user=user)
    client = Client()
    r = client.post("/my/login/", {"username": patient.email, "password": password})
    assert r.status_code == 302 and r["Location"] == "/my/", r.content[:400]
    return client


class InviteTests:
    def test_an_invitation_signs_the_patient_in_once(
        self, world: World, patient: Patient, mail: Mailbox
    ) -> None:
        path = invite(world, patient, mail)
        patient.refresh_from_db()
        assert patient.user is not None and patient.user.username == "ana@example.com"
        assert not patient.user.has_usable_password()
        message = mail.received[0]
        assert "Demo Mesotherapy Clinic" in message.message["Subject"]
        # No health details in the email: it names the clinic and the link, nothing else.
        assert "cellulite" not in message.text.lower()
        assert str(patient.date_of_birth.year) not in message.text

        browser = Client()
        # Opening the link (as a mail program checking it would) does not use it up.
        assert browser.get(path).status_code == 200
        assert browser.get(path).status_code == 200
        r = browser.post(path)
        assert r.status_code == 302 and r["Location"] == "/my/password/"
        home = browser.get("/my/")
        assert home.status_code == 200 and b"Hello Ana" in home.content

        # Used once: a second press, in any browser, is refused.
        assert Client().post(path).status_code == 410
        assert Client().get(path).status_code == 410
        rows = AuditEvent.objects.filter(patient_id=patient.pk, object_type="portal.PortalLink")
        assert {(r.action, r.detail["portal"]) for r in rows} == {
            ("create", "invited"),
            ("update", "invitation used"),
        }

    def test_an_invitation_expires(self, world: World, patient: Patient, mail: Mailbox) -> None:
        path = invite(world, patient, mail)
        with time_machine.travel(timezone.now() + dt.timedelta(hours=73)):
            assert Client().post(path).status_code == 410
        assert PortalLink.objects.get().used_at is None

    def test_a_second_invitation_keeps_the_login_and_sends_a_new_link(
        self, world: World, patient: Patient, mail: Mailbox
    ) -> None:
        first = invite(world, patient, mail)
        second = invite(world, patient, mail, by=world.front_desk)
        assert first != second
        assert User.objects.filter(username="ana@example.com").count() == 1
        assert Client().post(second).status_code == 302

    def test_it_refuses_a_patient_without_email_or_with_a_staff_address(
        self, world: World, patient: Patient, mail: Mailbox
    ) -> None:
        Patient.objects.filter(pk=patient.pk).update(email="")
        r = staff_client(world.manager).post(f"/my/invite/{patient.pk}/", follow=True)
        assert b"Add the patient&#x27;s email address first" in r.content
        world.practitioner.email = "ana@example.com"
        world.practitioner.save()
        Patient.objects.filter(pk=patient.pk).update(email="ANA@example.com")
        r = staff_client(world.manager).post(f"/my/invite/{patient.pk}/", follow=True)
        assert b"already signs in to another account" in r.content
        patient.refresh_from_db()
        assert patient.user is None and mail.received == []
        assert not PortalLink.objects.exists()

    def test_only_staff_of_the_patients_clinic_may_invite(
        self, world: World, other: World, patient: Patient, mail: Mailbox
    ) -> None:
        assert staff_client(other.manager).post(f"/my/invite/{patient.pk}/").status_code == 404
        someone = Patient.objects.create(
            clinic=world.clinic,
            first_name="Otto",
            last_name="Other",
            date_of_birth=dt.date(1970, 1, 1),
            email="otto@example.com",
        )
        client = signed_in_patient(someone)
        assert client.post(f"/my/invite/{patient.pk}/").status_code == 403
        assert Client().post(f"/my/invite/{patient.pk}/").status_code == 302
        assert not PortalLink.objects.filter(patient=patient).exists()

    def test_the_chart_offers_the_invitation(self, world: World, patient: Patient) -> None:
        page = staff_client(world.front_desk).get(f"/patients/{patient.pk}/")
        assert b"Invite to the patient portal" in page.content
        assert f'action="/my/invite/{patient.pk}/"'.encode() in page.content


class PasswordTests:
    def test_a_patient_sets_a_password_and_signs_in_with_their_email(
        self, world: World, patient: Patient, mail: Mailbox
    ) -> None:
        browser = Client()
        browser.post(invite(world, patient, mail))
        r = browser.post(
            "/my/password/",
            {"new_password1": "violet harbour 1972", "new_password2": "violet harbour 1972"},
        )
        assert r.status_code == 302 and r["Location"] == "/my/"
        again = Client()
        r = again.post(
            "/my/login/", {"username": "Ana@Example.com", "password": "violet harbour 1972"}
        )
        assert r.status_code == 302 and r["Location"] == "/my/"
        assert again.get("/my/").status_code == 200

    def test_a_weak_password_is_refused_beside_the_field(
        self, world: World, patient: Patient, mail: Mailbox
    ) -> None:
        browser = Client()
        browser.post(invite(world, patient, mail))
        r = browser.post("/my/password/", {"new_password1": "abc", "new_password2": "abc"})
        assert r.status_code == 400
        assert b'id="id_new_password2_error"' in r.content


class SignInLinkTests:
    def test_a_patient_without_a_password_gets_a_sign_in_link(
        self, world: World, patient: Patient, mail: Mailbox
    ) -> None:
        Client().post(invite(world, patient, mail))
        r = Client().post("/my/login/link/", {"email": "ANA@example.com"})
        assert r.status_code == 200 and b"Check your email" in r.content
        message = mail.wait_for(2)[1]
        assert message.rcpt_tos == ["ana@example.com"]
        browser = Client()
        assert browser.post(link_in(message)).status_code == 302
        assert b"Hello Ana" in browser.get("/my/").content
        assert Client().post(link_in(message)).status_code == 410

    def test_nothing_is_sent_to_staff_or_unknown_addresses_and_the_page_says_the_same(
        self, world: World, patient: Patient, mail: Mailbox
    ) -> None:
        world.practitioner.email = "maria@example.com"
        world.practitioner.save()
        User.objects.filter(pk=world.practitioner.pk).update(username="maria@example.com")
        staff = Client().post("/my/login/link/", {"email": "maria@example.com"})
        unknown = Client().post("/my/login/link/", {"email": "who@example.com"})
        assert staff.content.replace(b"maria@", b"X@") == unknown.content.replace(b"who@", b"X@")
        assert mail.wait_for(1, timeout=1) == [] and not PortalLink.objects.exists()


class RegistrationTests:
    def register(self, client: Client, **changes: str) -> Any:
        data = {
            "first_name": "Ana",
            "last_name": "Lopez",
            "date_of_birth": "1990-05-17",
            "email": "ana@example.com",
            **changes,
        }
        return client.post("/my/register/", data)

    def test_the_account_works_only_after_the_email_is_verified(
        self, world: World, mail: Mailbox
    ) -> None:
        r = self.register(Client(), email="new@example.com", first_name="Nia", last_name="Neu")
        assert r.status_code == 200 and b"Check your email" in r.content
        # Nothing exists until the address is verified.
        assert not User.objects.filter(username="new@example.com").exists()
        assert not Patient.objects.filter(email="new@example.com").exists()
        [message] = mail.wait_for(1)
        path = link_in(message)
        browser = Client()
        assert browser.post(path)["Location"] == "/my/password/"
        patient = Patient.objects.get(email="new@example.com")
        assert (patient.first_name, patient.date_of_birth) == ("Nia", dt.date(1990, 5, 17))
        assert patient.clinic == world.clinic and patient.user is not None
        change = PatientChange.objects.get(patient=patient)
        assert "Registered online" in change.summary
        row = AuditEvent.objects.get(patient_id=patient.pk, action="create")
        assert row.detail == {"portal": "registered", "matched_existing_record": False}
        assert b"Hello Nia" in browser.get("/my/").content
        # The link works once.
        assert Client().post(path).status_code == 410

    def test_it_links_the_clinics_record_when_name_birth_date_and_email_agree(
        self, world: World, patient: Patient, mail: Mailbox
    ) -> None:
        self.register(Client(), first_name="ANA", last_name="López", email="Ana@Example.com")
        Client().post(link_in(mail.wait_for(1)[0]))
        patient.refresh_from_db()
        assert patient.user is not None and patient.user.username == "ana@example.com"
        assert Patient.objects.filter(clinic=world.clinic).count() == 1

    def test_a_different_birth_date_makes_a_new_record(
        self, world: World, patient: Patient, mail: Mailbox
    ) -> None:
        self.register(Client(), date_of_birth="1991-05-17")
        Client().post(link_in(mail.wait_for(1)[0]))
        patient.refresh_from_db()
        assert patient.user is None
        new = Patient.objects.exclude(pk=patient.pk).get()
        assert new.user is not None and new.date_of_birth == dt.date(1991, 5, 17)

    def test_the_page_never_says_whether_an_address_has_an_account(
        self, world: World, patient: Patient, mail: Mailbox
    ) -> None:
        User.objects.create_user("ana@example.com", email="ana@example.com", password="x y z 123")
        known = self.register(Client())
        unknown = self.register(Client(), email="nobody@example.com")
        assert known.status_code == unknown.status_code == 200
        assert known.content.replace(b"ana@example.com", b"X") == unknown.content.replace(
            b"nobody@example.com", b"X"
        )
        messages = {m.rcpt_tos[0]: m.text for m in mail.wait_for(2)}
        assert "already has an account" in messages["ana@example.com"]
        assert "/my/link/" not in messages["ana@example.com"]
        assert "/my/link/" in messages["nobody@example.com"]
        assert PortalLink.objects.filter(email="ana@example.com").count() == 0

    def test_bad_input_is_named_beside_its_field(self, world: World) -> None:
        r = self.register(Client(), date_of_birth="2999-01-01", email="not an address")
        assert r.status_code == 400
        assert b'id="id_date_of_birth_error"' in r.content
        assert b'id="id_email_error"' in r.content
        assert not PortalLink.objects.exists()

    def test_registration_is_throttled_per_email(
        self, world: World, mail: Mailbox, settings: Any
    ) -> None:
        settings.LOGIN_FAILURE_LIMIT = 3
        for _ in range(3):
            assert self.register(Client(), email="flood@example.com").status_code == 200
        r = self.register(Client(), email="flood@example.com")
        assert r.status_code == 429 and "Retry-After" in r
        assert b"Too many attempts" in r.content
        assert len(mail.wait_for(3)) == 3


class SignInTests:
    def test_sign_in_is_throttled_like_the_staffs(
        self, world: World, patient: Patient, settings: Any
    ) -> None:
        settings.LOGIN_FAILURE_LIMIT = 3
        signed_in_patient(patient, "right horse battery 9")
        client = Client()
        for _ in range(3):
            r = client.post("/my/login/", {"username": patient.email, "password": "wrong"})
            assert r.status_code == 200
        # Locked: even the right password is refused, with the time to try again.
        r = client.post(
            "/my/login/", {"username": patient.email, "password": "right horse battery 9"}
        )
        assert r.status_code == 200 and "Retry-After" in r
        assert b"Too many attempts" in r.content
        assert LoginThrottle.objects.get(key="account:ana@example.com").locked_until is not None
        # Recorded on the patient's clinic, so its manager sees it in the audit viewer.
        assert AuditEvent.objects.filter(
            action="lockout", clinic=world.clinic, detail__key="account"
        ).exists()

    def test_a_staff_account_is_never_a_patient(self, world: World, patient: Patient) -> None:
        # Even linked to a patient record, a staff login acts as staff and the portal refuses it.
        Patient.objects.filter(pk=patient.pk).update(user=world.practitioner)
        assert staff_client(world.practitioner).get("/my/").status_code == 403
        r = Client().post("/my/login/", {"username": "practitioner", "password": "pw"})
        assert r.status_code == 200 and b"staff account" in r.content

    def test_a_patient_may_not_open_staff_pages(self, world: World, patient: Patient) -> None:
        client = signed_in_patient(patient)
        for path in ("/today/", f"/patients/{patient.pk}/", "/patients/", "/calendar/"):
            assert client.get(path).status_code == 403, path

    def test_anonymous_is_sent_to_the_portals_sign_in(self, db: Any) -> None:
        r = Client().get("/my/")
        assert r.status_code == 302 and r["Location"].startswith("/my/login/?next=")

    def test_a_patient_who_signs_in_on_the_staff_page_lands_on_their_portal(
        self, world: World, patient: Patient
    ) -> None:
        signed_in_patient(patient, "right horse battery 9")
        r = Client().post(
            "/accounts/login/", {"username": patient.email, "password": "right horse battery 9"}
        )
        assert r.status_code == 302 and r["Location"] == "/my/"


# The home page and the documents, for the scene's patient (a course with one session, a
# signed consent, visits) and another patient of the same clinic.


@pytest.fixture
def ana(scene: Scene) -> Client:
    return signed_in_patient(scene.patient)


@pytest.fixture
def otto(scene: Scene) -> Client:
    other = Patient.objects.create(
        clinic=scene.world.clinic,
        first_name="Otto",
        last_name="Other",
        date_of_birth=dt.date(1970, 1, 1),
        email="otto@example.com",
    )
    return signed_in_patient(other)


def session_visit(scene: Scene) -> Appointment:
    """A session the day after tomorrow at 10:00 in the clinic's zone (New York)."""
    clinic = scene.world.clinic
    day = timezone.localtime(timezone.now(), clinic.tz).date() + dt.timedelta(days=2)
    start = dt.datetime.combine(day, dt.time(10), tzinfo=clinic.tz)
    return Appointment.objects.create(
        clinic=clinic,
        patient=scene.patient,
        course_id=scene.course["id"],
        kind=Appointment.Kind.SESSION,
        practitioner=scene.world.practitioner,
        starts_at=start,
        ends_at=start + dt.timedelta(minutes=45),
    )


class HomeTests:
    def test_it_shows_the_next_visits_with_what_to_do_before_them(
        self, scene: Scene, ana: Client
    ) -> None:
        session_visit(scene)
        page = ana.get("/my/").content.decode()
        assert "Do not take caffeine or any other stimulant" in page
        # The cellulite protocol's 30 minutes of numbing cream, before a 10:00 start.
        assert "Arrive by 09:30, 30 minutes before your appointment" in page
        # On the clinic's clock.
        scene.world.clinic.time_format = "12h"
        scene.world.clinic.save()
        page = ana.get("/my/").content.decode()
        assert "Arrive by 9:30 am, 30 minutes before your appointment" in page

    def test_it_shows_the_plan_its_cost_and_the_insurance_notice(
        self, scene: Scene, ana: Client
    ) -> None:
        course = Course.objects.get(pk=scene.course["id"])
        plan = course.plan()
        page = ana.get("/my/").content.decode()
        cost = plan["cost"]
        assert f"USD {cost['total_min']:.0f} to {cost['total_max']:.0f}" in page  # type: ignore[index]
        assert str(plan["insurance"]["text"]) in page  # type: ignore[index]
        # Facts name their source by the article's title, never a file name.
        assert ".txt" not in page

    def test_it_shows_each_sessions_aftercare_in_the_clinics_clock(
        self, scene: Scene, ana: Client
    ) -> None:
        session = Session.objects.get(pk=scene.session["id"])
        shower = (session.performed_at + dt.timedelta(hours=8)).astimezone(scene.world.clinic.tz)
        page = ana.get("/my/").content.decode()
        assert f"No hot shower until {shower:%H:%M}" in page

    def test_reading_the_page_is_audited_as_the_patients_own_view(
        self, scene: Scene, ana: Client
    ) -> None:
        before = AuditEvent.objects.count()
        ana.get("/my/")
        row = AuditEvent.objects.filter(action="view").order_by("-id").first()
        assert AuditEvent.objects.count() > before and row is not None
        assert row.patient_id == scene.patient.pk and row.via == "web"
        assert row.user == Patient.objects.get(pk=scene.patient.pk).user
        assert row.clinic_id == scene.world.clinic.pk

    def test_the_documents_are_the_patients_own_pdfs(
        self, scene: Scene, ana: Client, otto: Client
    ) -> None:
        consent = Consent.objects.get(patient=scene.patient)
        paths = [
            f"/my/courses/{scene.course['id']}/plan.pdf",
            f"/my/consents/{consent.pk}.pdf",
            f"/my/sessions/{scene.session['id']}/aftercare.pdf",
        ]
        page = ana.get("/my/").content.decode()
        for path in paths:
            assert path in page
            r = ana.get(path)
            assert r.status_code == 200 and r["Content-Type"] == "application/pdf", path
            assert r.content.startswith(b"%PDF")
            # Another patient of the same clinic may not know the document exists.
            assert otto.get(path).status_code == 404, path
        exports = AuditEvent.objects.filter(action="export", patient_id=scene.patient.pk)
        assert {e.detail["document"] for e in exports} == {"course_plan", "consent", "aftercare"}

    def test_clinical_photos_are_the_patients_own(
        self, scene: Scene, ana: Client, otto: Client, settings: Any, tmp_path: Any
    ) -> None:
        from tests.test_photos import jpeg

        settings.STORAGES = {
            **settings.STORAGES,
            "clinical_photos": {
                "BACKEND": "django.core.files.storage.FileSystemStorage",
                "OPTIONS": {"location": tmp_path / "photos", "base_url": None},
            },
        }
        world = scene.world
        photo_actions.do_record_photo_consent(
            scene.patient, purpose="clinical", granted=True, user=world.practitioner
        )
        course = Course.objects.get(pk=scene.course["id"])
        [photo] = photo_actions.do_upload_photos(
            course, area="thighs", images={"front": jpeg()}, user=world.practitioner
        )
        assert f"/my/photos/{photo.pk}/" in ana.get("/my/").content.decode()
        r = ana.get(f"/my/photos/{photo.pk}/")
        assert r.status_code == 200 and r["Content-Type"] == "image/jpeg"
        assert otto.get(f"/my/photos/{photo.pk}/").status_code == 404
        assert AuditEvent.objects.filter(
            action="view", object_type="outcomes.Photo", object_id=str(photo.pk)
        ).exists()

    def test_another_patients_home_shows_none_of_this_patients_records(
        self, scene: Scene, otto: Client
    ) -> None:
        session_visit(scene)
        page = otto.get("/my/").content.decode()
        assert "Hello Otto" in page and "Lopez" not in page
        assert "No course is planned yet." in page and "No visit is booked" in page

    def test_staff_are_refused_the_patients_pages(self, scene: Scene) -> None:
        for user in (scene.world.manager, scene.world.front_desk):
            client = staff_client(user)
            assert client.get("/my/").status_code == 403
            path = f"/my/courses/{scene.course['id']}/plan.pdf"
            assert client.get(path).status_code == 403


# The online intake.


def no_to_everything(clinic: Any) -> dict[str, str]:
    from mesoclinic.patients.models import ScreeningForm

    return {q["key"]: "no" for q in ScreeningForm.current(clinic).questions}


class IntakeTests:
    def test_details_are_saved_versioned_and_audited(self, world: World, patient: Patient) -> None:
        client = signed_in_patient(patient)
        page = client.get("/my/intake/details/")
        assert page.status_code == 200 and b'name="email"' not in page.content
        data = {
            "first_name": "Ana",
            "last_name": "Lopez",
            "date_of_birth": "1990-05-17",
            "sex": "female",
            "phone": "+1 212 555 0199",
            "address": "1 Main St",
            "emergency_name": "Rui Lopez",
            "emergency_relation": "brother",
            "emergency_phone": "+1 212 555 0102",
            "email": "mallory@example.com",
        }
        r = client.post("/my/intake/details/", data)
        assert r.status_code == 302 and r["Location"] == "/my/intake/"
        patient.refresh_from_db()
        assert (patient.phone, patient.emergency_name) == ("+1 212 555 0199", "Rui Lopez")
        # The email address is the sign-in: not changed from here.
        assert patient.email == "ana@example.com"
        change = PatientChange.objects.get(patient=patient)
        assert change.via == "portal" and change.changed_by == patient.user
        assert AuditEvent.objects.filter(
            action="update", patient_id=patient.pk, via="portal", object_type="patients.Patient"
        ).exists()

    def test_a_bad_phone_is_named_beside_its_field(self, world: World, patient: Patient) -> None:
        client = signed_in_patient(patient)
        r = client.post(
            "/my/intake/details/",
            {
                "first_name": "Ana",
                "last_name": "Lopez",
                "date_of_birth": "1990-05-17",
                "sex": "female",
                "phone": "call me maybe",
            },
        )
        assert r.status_code == 400 and b'id="id_phone_error"' in r.content
        assert not PatientChange.objects.filter(patient=patient).exists()

    def test_screening_records_answers_allergies_and_medicines_as_the_staffs_does(
        self, world: World, patient: Patient
    ) -> None:
        from mesoclinic.patients import records
        from mesoclinic.patients.models import Allergy, Medication, Screening

        client = signed_in_patient(patient)
        lidocaine = records.ingredients_for(world.clinic).get(key="lidocaine")
        answers = {
            **no_to_everything(world.clinic),
            "ingredient_allergy": "yes",
            "allergy_ingredients": [str(lidocaine.pk)],
            "allergy_other": "Sticking plasters",
            "allergy_reaction": "Hives",
            "medications": "Metformin 500 mg\n\nVitamin D",
        }
        r = client.post("/my/intake/screening/", answers)
        assert r.status_code == 302, r.content[:600]
        patient.refresh_from_db()
        screening = Screening.objects.get(patient=patient)
        assert screening.result == "caution" and screening.screened_by == patient.user
        allergies = Allergy.objects.filter(patient=patient)
        assert {a.what for a in allergies} >= {"Sticking plasters"}
        assert allergies.filter(ingredient=lidocaine).exists()
        assert sorted(
            Medication.objects.filter(patient=patient).values_list("name", flat=True)
        ) == [
            "Metformin 500 mg",
            "Vitamin D",
        ]
        assert AuditEvent.objects.filter(
            action="create", object_type="patients.Screening", via="portal", patient_id=patient.pk
        ).exists()

    def test_an_allergy_without_what_is_asked_in_the_patients_words(
        self, world: World, patient: Patient
    ) -> None:
        from mesoclinic.patients.models import Screening

        client = signed_in_patient(patient)
        r = client.post(
            "/my/intake/screening/",
            {**no_to_everything(world.clinic), "ingredient_allergy": "yes"},
        )
        assert r.status_code == 400
        assert b"You answered yes: choose what you are allergic to" in r.content
        assert b"The patient" not in r.content
        assert not Screening.objects.exists()

    def test_a_hard_stop_stops_online_booking_and_offers_a_consultation(
        self, world: World, patient: Patient
    ) -> None:
        client = signed_in_patient(patient)
        client.post("/my/intake/screening/", {**no_to_everything(world.clinic), "pregnant": "yes"})
        for path in ("/my/intake/", "/my/"):
            page = client.get(path).content.decode()
            assert "Online booking of treatment is stopped" in page, path
            assert "Are you pregnant, or could you be?" in page
            assert "Book a consultation instead" in page
            # The consultation is booked online on the clinic's public site.
            assert f'href="/site/{world.clinic.slug}/book/"' in page
        # An answer given again without the hard stop lifts it.
        client.post("/my/intake/screening/", no_to_everything(world.clinic))
        assert "Online booking of treatment is stopped" not in client.get("/my/").content.decode()

    def test_photo_consents_record_each_decision_once(self, world: World, patient: Patient) -> None:
        from mesoclinic.outcomes.models import PhotoConsent

        client = signed_in_patient(patient)
        patient.refresh_from_db()
        assert (
            client.post("/my/intake/photos/", {"clinical": "yes", "marketing": "no"}).status_code
            == 302
        )
        client.post("/my/intake/photos/", {"clinical": "yes", "marketing": "no"})
        rows = PhotoConsent.objects.filter(patient=patient)
        assert sorted((c.purpose, c.granted) for c in rows) == [
            ("clinical", True),
            ("marketing", False),
        ]
        client.post("/my/intake/photos/", {"clinical": "yes", "marketing": "yes"})
        assert photo_actions.consent_state(patient).may_market
        assert PhotoConsent.objects.filter(patient=patient).count() == 3
        assert (
            AuditEvent.objects.filter(
                object_type="outcomes.PhotoConsent", via="portal", user=patient.user
            ).count()
            == 3
        )
        assert client.post("/my/intake/photos/", {"clinical": "maybe"}).status_code == 400

    def test_the_course_consent_is_read_to_its_end_and_signed_on_the_patients_device(
        self, scene: Scene, ana: Client, otto: Client
    ) -> None:
        course_id = scene.course["id"]
        path = f"/my/intake/consent/{course_id}/"
        page = ana.get(path).content.decode()
        # The place to sign comes after the whole text.
        assert page.index("End of the consent text.") < page.index('name="signed_name"')
        before = Consent.objects.filter(patient=scene.patient).count()
        r = ana.post(path, {"signed_name": "Ana Lopez"})
        assert r.status_code == 400 and b'id="id_read_to_end_error"' in r.content
        assert Consent.objects.filter(patient=scene.patient).count() == before
        r = ana.post(path, {"signed_name": "Ana Lopez", "read_to_end": "on"})
        assert r.status_code == 302
        signed = Consent.objects.filter(patient=scene.patient).latest("recorded_at")
        assert signed.method == "typed" and signed.witnessed_by is None
        assert signed.signed_name == "Ana Lopez"
        row = AuditEvent.objects.get(object_type="patients.Consent", object_id=str(signed.pk))
        assert row.via == "portal" and row.user == Patient.objects.get(pk=scene.patient.pk).user
        assert "Signed. A copy is in your documents." in ana.get("/my/intake/").content.decode()
        # Another patient may not know the course exists.
        assert otto.get(path).status_code == 404
        assert otto.post(path, {"signed_name": "Otto", "read_to_end": "on"}).status_code == 404

    def test_staff_may_not_post_the_patients_intake(self, scene: Scene) -> None:
        from mesoclinic.outcomes.models import PhotoConsent
        from mesoclinic.patients.models import Screening

        client = staff_client(scene.world.manager)
        posts = {
            "/my/intake/details/": {"first_name": "X", "last_name": "Y", "phone": "1"},
            "/my/intake/screening/": no_to_everything(scene.world.clinic),
            "/my/intake/photos/": {"clinical": "yes", "marketing": "yes"},
            f"/my/intake/consent/{scene.course['id']}/": {"signed_name": "X", "read_to_end": "on"},
        }
        counts = (Screening.objects.count(), PhotoConsent.objects.count(), Consent.objects.count())
        for path, data in posts.items():
            assert client.post(path, data).status_code == 403, path
        assert (
            Screening.objects.count(),
            PhotoConsent.objects.count(),
            Consent.objects.count(),
        ) == counts
        assert Patient.objects.get(pk=scene.patient.pk).first_name == "Ana"


class LoginAddressTests:
    def test_a_new_email_address_becomes_the_portal_login(
        self, world: World, patient: Patient
    ) -> None:
        from mesoclinic.patients.records import do_edit_patient

        signed_in_patient(patient, "right horse battery 9")
        do_edit_patient(patient, {"email": "Ana.New@Example.com"}, user=world.front_desk)
        login = User.objects.get(patient=patient)
        assert (login.username, login.email) == ("ana.new@example.com", "Ana.New@Example.com")
        client = Client()
        r = client.post(
            "/my/login/", {"username": "ana.new@example.com", "password": "right horse battery 9"}
        )
        assert r.status_code == 302 and r["Location"] == "/my/"

    def test_an_address_of_another_account_or_none_is_refused_and_nothing_changes(
        self, world: World, patient: Patient
    ) -> None:
        from django.core.exceptions import ValidationError

        from mesoclinic.patients.records import do_edit_patient

        signed_in_patient(patient)
        User.objects.create_user("taken@example.com", email="taken@example.com")
        for email in ("taken@example.com", ""):
            with pytest.raises(ValidationError) as refused:
                do_edit_patient(patient, {"email": email}, user=world.front_desk)
            assert "email" in refused.value.message_dict
        patient.refresh_from_db()
        assert patient.email == "ana@example.com"
        assert User.objects.get(patient=patient).username == "ana@example.com"
