"""The staff web app: sign-in, Today, finding and registering patients."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from mesoclinic.accounts.models import AuditEvent, Membership, User
from mesoclinic.courses import actions
from mesoclinic.patients.actions import do_screen_patient, do_sign_consent
from mesoclinic.patients.models import Patient, ScreeningForm
from mesoclinic.protocols.models import ClinicProtocol
from tests.conftest import World, ago, give_baseline


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def course_with_sessions(world: World, patient: Patient, sessions: int, first: dt.datetime) -> Any:
    before = first - dt.timedelta(days=3)
    form = ScreeningForm.current(world.clinic)
    do_screen_patient(
        patient, {q["key"]: False for q in form.questions}, world.practitioner, screened_at=before
    )
    do_sign_consent(
        patient,
        products=[world.product],
        signed_name=str(patient),
        method="typed",
        indication="cellulite",
        areas=["thighs"],
        user=world.practitioner,
        signed_at=before,
    )
    protocol = ClinicProtocol.current(world.clinic, "cellulite")
    course = actions.do_plan_course(
        patient,
        protocol,
        indication="cellulite",
        areas=["thighs"],
        cadence_days=7,
        planned_sessions=15,
        first_session_on=first.date(),
        user=world.practitioner,
    )
    test = actions.do_give_allergy_test(
        course,
        given_at=before,
        user=world.practitioner,
        injections=[
            actions.TestInjection(world.lot, "arm"),
            actions.TestInjection(world.lot, "arm"),
        ],
    )
    actions.do_read_allergy_test(
        test, read_at=before + dt.timedelta(hours=25), result="none", user=world.practitioner
    )
    give_baseline(course, before)
    for n in range(sessions):
        actions.do_record_session(
            course,
            performed_at=first + dt.timedelta(days=7 * n),
            practitioner=world.practitioner,
            injections=[actions.InjectionInput("thighs", world.lot, 2)],
            stimulants_avoided=True,
            user=world.practitioner,
        )
    return course


class SignInTests:
    def test_a_visitor_is_sent_to_sign_in(self, world: World) -> None:
        response = Client().get("/today/")
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")

    def test_signing_in_lands_on_today(self, world: World) -> None:
        client = Client()
        response = client.post("/accounts/login/", {"username": "practitioner", "password": "pw"})
        assert response.status_code == 302
        assert response["Location"] == "/today/"
        assert "Demo Mesotherapy Clinic" in client.get("/today/").content.decode()

    def test_only_a_manager_sees_the_manager_links(self, world: World) -> None:
        manager_page = signed_in(world.manager).get("/today/").content.decode()
        assert (
            'href="/manage/formulary/"' in manager_page and 'href="/manage/staff/"' in manager_page
        )
        practitioner_page = signed_in(world.practitioner).get("/today/").content.decode()
        assert "/manage/" not in practitioner_page

    def test_a_wrong_password_is_a_clear_error(self, world: World) -> None:
        response = Client().post("/accounts/login/", {"username": "practitioner", "password": "no"})
        assert response.status_code == 200
        assert "enter a correct username and password" in response.content.decode()

    def test_signing_out_needs_a_post_and_ends_the_session(self, world: World) -> None:
        client = signed_in(world.practitioner)
        assert client.post("/accounts/logout/").status_code == 302
        assert client.get("/today/").status_code == 302

    def test_password_reset_sends_a_link_that_sets_a_new_password(self, world: World) -> None:
        world.practitioner.email = "pr@example.com"
        world.practitioner.save()
        client = Client()
        response = client.post("/accounts/password_reset/", {"email": "pr@example.com"})
        assert response.status_code == 302
        assert len(mail.outbox) == 1
        link = re.search(r"http://\S+/accounts/reset/\S+/", mail.outbox[0].body)
        assert link is not None
        page = client.get(link.group(0).split("testserver", 1)[1], follow=True)
        form_url = page.redirect_chain[-1][0]
        client.post(
            form_url, {"new_password1": "a-new-long-pass-77", "new_password2": "a-new-long-pass-77"}
        )
        assert Client().login(username="practitioner", password="a-new-long-pass-77")

    def test_a_user_without_a_clinic_is_forbidden(self, world: World, patient: Patient) -> None:
        person = User.objects.create_user("ana", password="pw")
        patient.user = person
        patient.save()
        client = signed_in(person)
        assert client.get("/today/").status_code == 403
        assert client.get(f"/patients/{patient.pk}/").status_code == 403


class ClinicSwitchTests:
    """A member of several clinics acts in one at a time, with the role they have there."""

    def in_both(self, world: World, other: World) -> User:
        Membership.objects.create(
            user=world.practitioner, clinic=other.clinic, role=Membership.Role.FRONT_DESK
        )
        return world.practitioner

    def test_the_header_offers_only_the_users_clinics(self, world: World, other: World) -> None:
        page = signed_in(self.in_both(world, other)).get("/today/").content.decode()
        options = re.findall(r'<option value="(\d+)"( selected)?>([^<]+)</option>', page)
        assert [(int(pk), name) for pk, _, name in options] == sorted(
            [(world.clinic.pk, world.clinic.name), (other.clinic.pk, other.clinic.name)],
            key=lambda o: o[1],
        )
        assert [int(pk) for pk, selected, _ in options if selected] == [world.clinic.pk]
        single = signed_in(world.manager).get("/today/").content.decode()
        assert 'name="clinic"' not in single

    def test_switching_changes_what_the_user_sees_and_may_do(
        self, world: World, other: World, patient: Patient
    ) -> None:
        client = signed_in(self.in_both(world, other))
        elsewhere = Patient.objects.create(
            clinic=other.clinic,
            first_name="Jo",
            last_name="Roux",
            date_of_birth=dt.date(1980, 1, 1),
        )
        assert client.get(f"/patients/{patient.pk}/").status_code == 200
        assert client.get(f"/patients/{elsewhere.pk}/").status_code == 404

        response = client.post("/clinic/", {"clinic": other.clinic.pk})
        assert response.status_code == 302 and response["Location"] == "/today/"
        assert client.get(f"/patients/{patient.pk}/").status_code == 404
        assert client.get(f"/patients/{elsewhere.pk}/").status_code == 200
        # There they are front desk: they may read the chart but not screen.
        assert client.get(f"/patients/{elsewhere.pk}/screening/").status_code == 403
        assert other.clinic.name in client.get("/today/").content.decode()

    def test_a_clinic_the_user_is_not_in_cannot_be_chosen(
        self, world: World, other: World, patient: Patient
    ) -> None:
        client = signed_in(world.practitioner)
        for value in (other.clinic.pk, "nonsense", ""):
            response = client.post("/clinic/", {"clinic": value}, follow=True)
            assert "You are not a member of that clinic." in response.content.decode()
        assert client.get(f"/patients/{patient.pk}/").status_code == 200
        assert client.get("/clinic/").status_code == 405


class TodayTests:
    def test_it_lists_follow_ups_urgent_first_tests_to_read_and_lots(
        self, world: World, patient: Patient
    ) -> None:
        course = course_with_sessions(world, patient, 2, ago(days=10))
        session = course.sessions.order_by("number").last()
        actions.do_report_side_effect(
            session,
            kind="other",
            description="Itch",
            onset_at=ago(days=2),
            grade=1,
            user=world.practitioner,
        )
        actions.do_report_side_effect(
            session, kind="infection", onset_at=ago(days=1), grade=2, user=world.practitioner
        )
        world.lidocaine_lot.do_recall("Supplier notice", world.manager)
        page = signed_in(world.front_desk).get("/today/").content.decode()
        assert page.index("Infection (grade 2) is urgent") < page.index(
            "Other (grade 1) is beyond expected"
        )
        assert "LD1" in page and "Recalled" in page
        assert "L-OLD" in page and "Expired" in page
        # Last session 3 days ago on a weekly cadence: not yet due.
        assert "Overdue" not in page

    def test_it_shows_a_patient_due_and_one_overdue(self, world: World, patient: Patient) -> None:
        course_with_sessions(world, patient, 1, ago(days=12))
        other = Patient.objects.create(
            clinic=world.clinic, first_name="Bo", last_name="Due", date_of_birth=dt.date(1980, 1, 1)
        )
        course_with_sessions(world, other, 1, ago(days=6))
        page = signed_in(world.practitioner).get("/today/").content.decode()
        due = page[page.index("Due or overdue") : page.index("Allergy tests to read")]
        assert "Ana Lopez" in due and "Overdue" in due
        assert "Bo Due" in due

    def test_it_shows_an_allergy_test_waiting_with_the_time_it_can_be_read(
        self, world: World, patient: Patient
    ) -> None:
        protocol = ClinicProtocol.current(world.clinic, "cellulite")
        course = actions.do_plan_course(
            patient,
            protocol,
            indication="cellulite",
            areas=["thighs"],
            cadence_days=7,
            planned_sessions=15,
            user=world.practitioner,
        )
        actions.do_give_allergy_test(
            course,
            given_at=ago(hours=2),
            user=world.practitioner,
            injections=[
                actions.TestInjection(world.lot, "arm"),
                actions.TestInjection(world.lot, "arm"),
            ],
        )
        page = signed_in(world.practitioner).get("/today/").content.decode()
        tests = page[page.index("Allergy tests to read") :]
        assert "Ana Lopez" in tests and "Wait" in tests

    def test_another_clinics_data_never_shows(
        self, world: World, other: World, patient: Patient
    ) -> None:
        course_with_sessions(world, patient, 1, ago(days=12))
        page = signed_in(other.practitioner).get("/today/").content.decode()
        assert "Ana Lopez" not in page
        assert "L-OLD" not in page.replace("o_L-OLD", "")

    def test_the_number_of_queries_does_not_grow_with_the_patients(
        self, world: World, patient: Patient
    ) -> None:
        course_with_sessions(world, patient, 2, ago(days=12))
        client = signed_in(world.manager)
        with CaptureQueriesContext(connection) as few:
            client.get("/today/")
        for n in range(4):
            extra = Patient.objects.create(
                clinic=world.clinic,
                first_name=f"P{n}",
                last_name="More",
                date_of_birth=dt.date(1980, 1, 1),
            )
            course_with_sessions(world, extra, 2, ago(days=12))
        with CaptureQueriesContext(connection) as many:
            client.get("/today/")
        assert len(many) == len(few)


class PatientPagesTests:
    def test_it_finds_a_patient_by_name_phone_email_or_birth_date(
        self, world: World, patient: Patient
    ) -> None:
        client = signed_in(world.front_desk)
        for query in ("lopez", "Ana Lopez", "555 0101", "ana@example", "1990-05-17"):
            page = client.get("/patients/", {"q": query}).content.decode()
            assert "Lopez, Ana" in page, query
        assert "No patient matches" in client.get("/patients/", {"q": "nobody"}).content.decode()

    def test_htmx_gets_only_the_results(self, world: World, patient: Patient) -> None:
        page = signed_in(world.front_desk).get(
            "/patients/", {"q": "lopez"}, headers={"HX-Request": "true"}
        )
        body = page.content.decode()
        assert "Lopez, Ana" in body and "<html" not in body

    def test_another_clinics_patient_is_not_found(
        self, world: World, other: World, patient: Patient
    ) -> None:
        client = signed_in(other.front_desk)
        assert "Lopez" not in client.get("/patients/", {"q": "lopez"}).content.decode()
        assert client.get(f"/patients/{patient.pk}/").status_code == 404

    def test_registering_with_bad_input_names_each_field(self, world: World) -> None:
        response = signed_in(world.front_desk).post(
            "/patients/new/",
            {
                "first_name": "  ",
                "last_name": "Kim",
                "date_of_birth": "2999-01-01",
                "sex": "female",
                "phone": "call me",
                "email": "not-an-email",
            },
        )
        assert response.status_code == 200
        errors = response.context["form"].errors
        assert set(errors) == {"first_name", "date_of_birth", "phone", "email"}
        assert "A date of birth cannot be in the future." in response.content.decode()
        assert not Patient.objects.filter(last_name="Kim").exists()

    def test_registering_opens_the_chart_and_is_audited(self, world: World) -> None:
        client = signed_in(world.front_desk)
        response = client.post(
            "/patients/new/",
            {
                "first_name": "Mina",
                "last_name": "Kim",
                "date_of_birth": "1991-02-03",
                "sex": "female",
                "phone": "+1 212 555 0199",
                "email": "mina@example.com",
                "address": "",
            },
        )
        patient = Patient.objects.get(last_name="Kim")
        assert patient.clinic == world.clinic
        assert response["Location"] == f"/patients/{patient.pk}/"
        assert client.get(response["Location"]).status_code == 200
        actions_seen = set(
            AuditEvent.objects.filter(patient_id=patient.pk, via="web").values_list(
                "action", flat=True
            )
        )
        assert actions_seen == {"create", "view"}


class PresentationTests:
    def test_times_are_shown_in_the_clinics_time_zone(self, world: World, patient: Patient) -> None:
        protocol = ClinicProtocol.current(world.clinic, "cellulite")
        course = actions.do_plan_course(
            patient,
            protocol,
            indication="cellulite",
            areas=["thighs"],
            cadence_days=7,
            planned_sessions=15,
            user=world.practitioner,
        )
        given = ago(hours=2)
        actions.do_give_allergy_test(
            course,
            given_at=given,
            user=world.practitioner,
            injections=[
                actions.TestInjection(world.lot, "arm"),
                actions.TestInjection(world.lot, "arm"),
            ],
        )
        page = signed_in(world.manager).get("/today/").content.decode()
        tests = page[page.index("Allergy tests to read") :]
        assert given.astimezone(world.clinic.tz).strftime("%H:%M") in tests  # New York
        assert given.astimezone(dt.UTC).strftime("%H:%M") not in tests

    def test_the_stylesheet_and_htmx_are_served_from_the_app(self, world: World) -> None:
        client = Client()
        page = client.get("/accounts/login/").content.decode()
        for url in re.findall(r'(?:href|src)="(/static/[^"]+)"', page):
            response = client.get(url)
            assert response.status_code == 200, url
        assert "/static/vendor/htmx/htmx.min.js" in page


def test_a_search_with_a_nul_character_finds_nothing_instead_of_failing(
    world: World, patient: Patient
) -> None:
    page = signed_in(world.front_desk).get("/patients/", {"q": "lo\x00pez"})
    assert page.status_code == 200
    assert "Lopez, Ana" in page.content.decode()
