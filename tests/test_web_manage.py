"""The manager's pages: formulary and lots, recalls and tracing, staff and licences."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from typing import Any

import pytest
from django.contrib.auth import authenticate
from django.core import mail
from django.test import Client

from mesoclinic.accounts.licences import local_today
from mesoclinic.accounts.models import AuditEvent, Membership, PractitionerLicence, User
from mesoclinic.courses import actions
from mesoclinic.courses.models import Course
from mesoclinic.formulary.models import Ingredient, Lot, Product
from mesoclinic.patients.actions import do_screen_patient, do_sign_consent
from mesoclinic.patients.models import Patient, ScreeningForm
from mesoclinic.protocols.models import ClinicProtocol
from mesoclinic.protocols.vocab import Indication
from tests.conftest import World, ago, give_baseline

TODAY = dt.date.today()


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def web_audits(action: str, object_type: str) -> Any:
    return AuditEvent.objects.filter(action=action, object_type=object_type, via="web")


def plan(world: World, patient: Patient) -> Course:
    return actions.do_plan_course(
        patient,
        ClinicProtocol.current(world.clinic, "cellulite"),
        indication="cellulite",
        areas=["thighs"],
        cadence_days=7,
        planned_sessions=15,
        user=world.practitioner,
    )


def give_session(world: World, patient: Patient, lot: Lot, performed_at: dt.datetime) -> Course:
    """A course for `patient` with a read allergy test (from the lidocaine lot) and one
    session from `lot`, the screening and consent dated before both."""
    before = performed_at - dt.timedelta(days=3)
    form = ScreeningForm.current(world.clinic)
    do_screen_patient(
        patient, {q["key"]: False for q in form.questions}, world.practitioner, screened_at=before
    )
    do_sign_consent(
        patient,
        products=[lot.product],
        signed_name=str(patient),
        method="typed",
        indication="cellulite",
        areas=["thighs"],
        user=world.practitioner,
        signed_at=before,
    )
    course = plan(world, patient)
    test = actions.do_give_allergy_test(
        course,
        given_at=before,
        user=world.practitioner,
        injections=[
            actions.TestInjection(world.lidocaine_lot, "left arm"),
            actions.TestInjection(world.lidocaine_lot, "right arm"),
        ],
    )
    actions.do_read_allergy_test(
        test, read_at=before + dt.timedelta(hours=25), result="none", user=world.practitioner
    )
    give_baseline(course, before)
    actions.do_record_session(
        course,
        performed_at=performed_at,
        practitioner=world.practitioner,
        injections=[actions.InjectionInput("thighs", lot, 2)],
        stimulants_avoided=True,
        user=world.practitioner,
    )
    return course


def give_allergy_test(world: World, patient: Patient, lot: Lot) -> None:
    actions.do_give_allergy_test(
        plan(world, patient),
        given_at=ago(hours=5),
        user=world.practitioner,
        injections=[
            actions.TestInjection(lot, "left inner forearm"),
            actions.TestInjection(world.lidocaine_lot, "right inner forearm"),
        ],
    )


def new_patient(world: World, first: str, last: str, **contact: str) -> Patient:
    return Patient.objects.create(
        clinic=world.clinic,
        first_name=first,
        last_name=last,
        date_of_birth=dt.date(1985, 3, 3),
        **contact,
    )


def product_post(name: str = "Slim mix", **changes: str) -> dict[str, str]:
    deoxy = Ingredient.objects.get(key="phosphatidylcholine", clinic=None)
    carnitine = Ingredient.objects.get(key="l_carnitine", clinic=None)
    data = {
        "name": name,
        "supplier": "Acme Pharma",
        "vial": Product.Vial.SINGLE_DOSE,
        "components-TOTAL_FORMS": "4",
        "components-INITIAL_FORMS": "0",
        "components-MIN_NUM_FORMS": "1",
        "components-MAX_NUM_FORMS": "1000",
        "components-0-ingredient": str(deoxy.pk),
        "components-0-concentration": "50",
        "components-0-unit": "mg/mL",
        "components-1-ingredient": str(carnitine.pk),
        "components-1-concentration": "12.5",
        "components-1-unit": "mg/mL",
        "components-2-unit": "mg/mL",
        "components-3-unit": "mg/mL",
    }
    data.update(changes)
    return data


def lot_post(**changes: str) -> dict[str, str]:
    data = {
        "lot_number": "NEW-7",
        "expires_on": str(TODAY + dt.timedelta(days=300)),
        "received_on": str(TODAY),
    }
    data.update(changes)
    return data


def invite_post(**changes: str) -> dict[str, str]:
    data = {
        "username": "nina",
        "first_name": "Nina",
        "last_name": "Park",
        "email": "nina@example.com",
        "role": Membership.Role.PRACTITIONER,
    }
    data.update(changes)
    return data


def licence_post(**changes: str) -> dict[str, str]:
    data = {
        "kind": PractitionerLicence.Kind.REGISTERED_NURSE,
        "number": "RN-555",
        "jurisdiction": "New Jersey",
        "expires_on": str(TODAY + dt.timedelta(days=400)),
    }
    data.update(changes)
    return data


def member_of(world: World, user: User) -> Membership:
    return Membership.objects.get(clinic=world.clinic, user=user)


def errors_of(response: Any) -> str:
    """The text of every error list on a page."""
    page = response.content.decode()
    return " ".join(re.findall(r'<ul class="errorlist"[^>]*>(.*?)</ul>', page, re.S))


class AccessTests:
    """Every page and every POST: 403 for the other roles, 404 for another clinic's object."""

    def pages(self, world: World) -> list[str]:
        return [
            "/manage/formulary/",
            "/manage/formulary/products/new/",
            f"/manage/formulary/products/{world.product.pk}/lots/new/",
            f"/manage/lots/{world.lot.pk}/",
            f"/manage/lots/{world.lot.pk}/patients.csv",
            "/manage/staff/",
            "/manage/staff/invite/",
            f"/manage/staff/{member_of(world, world.practitioner).pk}/licences/new/",
        ]

    def posts(self, world: World) -> list[tuple[str, dict[str, str]]]:
        member = member_of(world, world.practitioner)
        return [
            ("/manage/formulary/products/new/", product_post()),
            (f"/manage/formulary/products/{world.product.pk}/lots/new/", lot_post()),
            (f"/manage/lots/{world.lot.pk}/", {"reason": "Supplier notice"}),
            ("/manage/staff/invite/", invite_post()),
            (f"/manage/staff/{member.pk}/role/", {f"m{member.pk}-role": "manager"}),
            (f"/manage/staff/{member.pk}/licences/new/", licence_post()),
        ]

    @pytest.mark.parametrize("role", ["practitioner", "front_desk"])
    def test_other_roles_are_forbidden_every_page(self, world: World, role: str) -> None:
        client = signed_in(getattr(world, role))
        for url in self.pages(world):
            assert client.get(url).status_code == 403, url

    @pytest.mark.parametrize("role", ["practitioner", "front_desk"])
    def test_other_roles_are_forbidden_every_post_and_nothing_changes(
        self, world: World, role: str
    ) -> None:
        client = signed_in(getattr(world, role))
        before = AuditEvent.objects.count()
        for url, data in self.posts(world):
            assert client.post(url, data).status_code == 403, url
        assert AuditEvent.objects.count() == before
        assert not Product.objects.filter(name="Slim mix").exists()
        assert not Lot.objects.filter(lot_number="NEW-7").exists()
        assert not User.objects.filter(username="nina").exists()
        world.lot.refresh_from_db()
        assert world.lot.recalled is False
        assert member_of(world, world.practitioner).role == Membership.Role.PRACTITIONER
        assert not PractitionerLicence.objects.filter(number="RN-555").exists()
        assert mail.outbox == []

    def test_a_visitor_is_sent_to_sign_in(self, world: World) -> None:
        response = Client().get("/manage/formulary/")
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")

    def test_another_clinics_manager_gets_404_for_every_object(
        self, world: World, other: World
    ) -> None:
        client = signed_in(other.manager)
        object_pages = [u for u in self.pages(world) if re.search(r"/\d+/", u)]
        assert len(object_pages) == 4
        for url in object_pages:
            assert client.get(url).status_code == 404, url

    def test_another_clinics_manager_gets_404_for_every_post_and_nothing_changes(
        self, world: World, other: World
    ) -> None:
        client = signed_in(other.manager)
        for url, data in self.posts(world):
            if re.search(r"/\d+/", url):
                assert client.post(url, data).status_code == 404, url
        world.lot.refresh_from_db()
        assert world.lot.recalled is False
        assert not Lot.objects.filter(lot_number="NEW-7").exists()
        assert member_of(world, world.practitioner).role == Membership.Role.PRACTITIONER
        assert not PractitionerLicence.objects.filter(number="RN-555").exists()

    def test_another_clinics_manager_sees_only_their_own_formulary_and_staff(
        self, world: World, other: World
    ) -> None:
        client = signed_in(other.manager)
        formulary = client.get("/manage/formulary/").content.decode()
        assert "o_Lipo mix" in formulary
        assert "Lipo mix" not in formulary.replace("o_Lipo mix", "")
        staff = client.get("/manage/staff/").content.decode()
        assert "O_Manager" in staff
        assert ">Manager<" not in staff and "MD-practitioner" not in staff

    def test_the_lot_link_names_resolve_in_the_web_namespace(self, world: World) -> None:
        from django.urls import reverse

        assert reverse("web:manage_formulary") == "/manage/formulary/"
        assert reverse("web:manage_lot_csv", args=[7]) == "/manage/lots/7/patients.csv"


class RecallTests:
    def test_it_lists_every_patient_who_received_a_recalled_lot(
        self, world: World, patient: Patient
    ) -> None:
        give_session(world, patient, world.lot, ago(days=2))
        bo = new_patient(world, "Bo", "Berg", phone="+1 212 555 0199", email="bo@example.com")
        give_allergy_test(world, bo, world.lot)
        # Only the lidocaine lot: not exposed to the recalled lot.
        cy = new_patient(world, "Cy", "Clean", phone="+1 212 555 0000")
        give_session(world, cy, world.lidocaine_lot, ago(days=1))

        client = signed_in(world.manager)
        response = client.post(f"/manage/lots/{world.lot.pk}/", {"reason": "Supplier notice 12"})
        assert response.status_code == 302
        assert response["Location"] == f"/manage/lots/{world.lot.pk}/"
        page = client.get(response["Location"]).content.decode()

        world.lot.refresh_from_db()
        assert world.lot.recalled and world.lot.recall_reason == "Supplier notice 12"
        assert world.lot.recalled_by == world.manager
        assert "Recalled" in page and "Supplier notice 12" in page
        listed = page[page.index("Patients who received this lot") :]
        assert "Ana Lopez" in listed and "+1 212 555 0101" in listed
        assert "ana@example.com" in listed and "session, thighs" in listed
        assert "Bo Berg" in listed and "+1 212 555 0199" in listed and "bo@example.com" in listed
        assert "allergy test, left inner forearm" in listed
        assert "Cy Clean" not in listed
        assert listed.index("Ana Lopez") > listed.index("Bo Berg")  # sorted by last name
        assert f"/manage/lots/{world.lot.pk}/patients.csv" in listed
        assert "Recall this lot" not in page

    def test_the_recall_is_audited(self, world: World) -> None:
        signed_in(world.manager).post(f"/manage/lots/{world.lot.pk}/", {"reason": "Notice"})
        event = web_audits("update", "formulary.Lot").get()
        assert event.object_id == str(world.lot.pk)
        assert event.user == world.manager and event.clinic == world.clinic
        assert event.detail == {"recalled": True, "reason": "Notice"}

    @pytest.mark.parametrize("reason", ["", "   "])
    def test_a_recall_needs_a_reason(self, world: World, reason: str) -> None:
        response = signed_in(world.manager).post(
            f"/manage/lots/{world.lot.pk}/", {"reason": reason}
        )
        assert response.status_code == 200
        assert "reason" in errors_of(response).lower() or "required" in errors_of(response)
        world.lot.refresh_from_db()
        assert world.lot.recalled is False
        assert not web_audits("update", "formulary.Lot").exists()

    def test_a_lot_recalled_twice_keeps_its_first_reason(self, world: World) -> None:
        client = signed_in(world.manager)
        client.post(f"/manage/lots/{world.lot.pk}/", {"reason": "First"})
        client.post(f"/manage/lots/{world.lot.pk}/", {"reason": "Second"})
        world.lot.refresh_from_db()
        assert world.lot.recall_reason == "First"
        assert web_audits("update", "formulary.Lot").count() == 1

    def test_a_lot_nobody_received_says_so(self, world: World) -> None:
        page = signed_in(world.manager).get(f"/manage/lots/{world.lot.pk}/").content.decode()
        assert "No patient has received this lot." in page
        assert 'for="id_reason"' in page

    def test_reading_the_exposed_patients_is_audited(self, world: World, patient: Patient) -> None:
        give_allergy_test(world, patient, world.lot)
        signed_in(world.manager).get(f"/manage/lots/{world.lot.pk}/")
        event = web_audits("view", "formulary.Lot").get()
        assert event.detail == {"patients": [patient.pk]}


class LotCsvTests:
    def test_it_exports_one_row_per_injection_with_contact_details(
        self, world: World, patient: Patient
    ) -> None:
        give_session(world, patient, world.lot, ago(days=2))
        bo = new_patient(world, "Bo", "Berg", phone="+1 212 555 0199", email="=cmd@example.com")
        give_allergy_test(world, bo, world.lot)
        world.lot.do_recall("Notice", world.manager)

        response = signed_in(world.manager).get(f"/manage/lots/{world.lot.pk}/patients.csv")
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/csv")
        assert response["Content-Disposition"] == (
            f'attachment; filename="lot-{world.lot.pk}-patients.csv"'
        )
        rows = list(csv.reader(io.StringIO(response.content.decode())))
        assert rows[0] == [
            "patient_id",
            "last_name",
            "first_name",
            "phone",
            "email",
            "kind",
            "at",
            "where",
            "volume_ml",
            "vial",
        ]
        body = rows[1:]
        assert [(r[1], r[5], r[7]) for r in body] == [
            ("Berg", "allergy_test", "left inner forearm"),
            ("Lopez", "session", "thighs"),
        ]
        assert body[1][:5] == [
            str(patient.pk),
            "Lopez",
            "Ana",
            "+1 212 555 0101",
            "ana@example.com",
        ]
        assert body[1][8] == "2.00"
        # Each injection names the vial it was drawn from: a single-dose vial for each visit
        # (Lopez's session was charted first).
        assert [r[9] for r in body] == ["2", "1"]
        # A value a spreadsheet would run as a formula is quoted.
        assert body[0][4] == "'=cmd@example.com"

    def test_the_export_is_audited(self, world: World, patient: Patient) -> None:
        give_allergy_test(world, patient, world.lot)
        signed_in(world.manager).get(f"/manage/lots/{world.lot.pk}/patients.csv")
        event = web_audits("export", "formulary.Lot").get()
        assert event.object_id == str(world.lot.pk)
        assert event.detail == {"patients": [patient.pk]}

    def test_a_lot_nobody_received_exports_only_the_header(self, world: World) -> None:
        response = signed_in(world.manager).get(f"/manage/lots/{world.lot.pk}/patients.csv")
        assert len(list(csv.reader(io.StringIO(response.content.decode())))) == 1


class FormularyTests:
    def test_it_lists_products_with_ingredients_status_and_lots(self, world: World) -> None:
        world.lidocaine_lot.do_recall("Notice", world.manager)
        page = signed_in(world.manager).get("/manage/formulary/").content.decode()
        assert "Lipo mix" in page and "Acme Pharma" in page and "Single-dose vial" in page
        assert "Phosphatidylcholine" in page or "phosphatidylcholine" in page.lower()
        assert "50 mg/mL" in page
        lido = Ingredient.objects.get(key="lidocaine", clinic=None)
        assert lido.get_fda_status_display() in page
        assert "L100" in page and "L-OLD" in page and "LD1" in page
        assert "Expired" in page and "Recalled" in page
        assert f'href="/manage/lots/{world.lot.pk}/"' in page
        assert '<th scope="col">' in page

    def test_it_adds_a_product_with_its_components(self, world: World) -> None:
        response = signed_in(world.manager).post("/manage/formulary/products/new/", product_post())
        assert response.status_code == 302, errors_of(response)
        product = Product.objects.get(clinic=world.clinic, name="Slim mix")
        assert product.vial == Product.Vial.SINGLE_DOSE
        parts = {c.ingredient.key: (c.concentration, c.unit) for c in product.components.all()}
        assert parts == {
            "phosphatidylcholine": (50, "mg/mL"),
            "l_carnitine": (12.5, "mg/mL"),
        }
        event = web_audits("create", "formulary.Product").get()
        assert event.object_id == str(product.pk)
        assert len(event.detail["components"]) == 2

    def test_the_product_form_labels_every_input(self, world: World) -> None:
        page = signed_in(world.manager).get("/manage/formulary/products/new/").content.decode()
        fields = re.findall(
            r'<(?:input|select|textarea)(?![^>]*type="hidden")[^>]*id="([^"]+)"', page
        )
        # Name, supplier, vial, the three stock settings, a checkbox per indication, and
        # three component rows.
        assert len(fields) == 3 + 3 + len(Indication.values) + 4 * 3
        for found in fields:
            assert f'for="{found}"' in page, found

    def test_a_duplicate_product_name_is_refused_by_name(self, world: World) -> None:
        response = signed_in(world.manager).post(
            "/manage/formulary/products/new/", product_post(name="lipo MIX")
        )
        assert response.status_code == 200
        assert "already has a product with this name" in errors_of(response)
        assert Product.objects.filter(clinic=world.clinic).count() == 2

    def test_another_clinic_may_use_the_same_product_name(self, world: World, other: World) -> None:
        response = signed_in(other.manager).post(
            "/manage/formulary/products/new/", product_post(name="Lipo mix")
        )
        assert response.status_code == 302
        assert Product.objects.filter(clinic=other.clinic, name="Lipo mix").exists()

    def test_a_product_needs_a_component(self, world: World) -> None:
        data = product_post()
        for n in (0, 1):
            data[f"components-{n}-ingredient"] = ""
            data[f"components-{n}-concentration"] = ""
        response = signed_in(world.manager).post("/manage/formulary/products/new/", data)
        assert response.status_code == 200
        assert not Product.objects.filter(name="Slim mix").exists()

    def test_an_ingredient_listed_twice_is_refused(self, world: World) -> None:
        data = product_post()
        data["components-1-ingredient"] = data["components-0-ingredient"]
        response = signed_in(world.manager).post("/manage/formulary/products/new/", data)
        assert response.status_code == 200
        assert "listed twice" in errors_of(response)
        assert not Product.objects.filter(name="Slim mix").exists()

    def test_a_negative_concentration_is_refused(self, world: World) -> None:
        response = signed_in(world.manager).post(
            "/manage/formulary/products/new/", product_post(**{"components-0-concentration": "-1"})
        )
        assert response.status_code == 200
        assert "greater than or equal to 0" in errors_of(response)

    def test_it_receives_a_lot(self, world: World) -> None:
        response = signed_in(world.manager).post(
            f"/manage/formulary/products/{world.product.pk}/lots/new/", lot_post()
        )
        assert response.status_code == 302, errors_of(response)
        lot = Lot.objects.get(product=world.product, lot_number="NEW-7")
        assert lot.expires_on == TODAY + dt.timedelta(days=300)
        assert web_audits("create", "formulary.Lot").get().object_id == str(lot.pk)

    def test_a_duplicate_lot_number_is_refused_by_name(self, world: World) -> None:
        response = signed_in(world.manager).post(
            f"/manage/formulary/products/{world.product.pk}/lots/new/",
            lot_post(lot_number="L100"),
        )
        assert response.status_code == 200
        assert "already has a lot with this number" in errors_of(response)
        assert 'id="id_lot_number"' in response.content.decode()

    def test_the_same_lot_number_on_another_product_is_fine(self, world: World) -> None:
        response = signed_in(world.manager).post(
            f"/manage/formulary/products/{world.lidocaine_product.pk}/lots/new/",
            lot_post(lot_number="L100"),
        )
        assert response.status_code == 302

    def test_an_expiry_before_the_received_date_is_refused(self, world: World) -> None:
        response = signed_in(world.manager).post(
            f"/manage/formulary/products/{world.product.pk}/lots/new/",
            lot_post(expires_on=str(TODAY - dt.timedelta(days=1))),
        )
        assert response.status_code == 200
        assert "expiry date is before" in errors_of(response)
        assert not Lot.objects.filter(lot_number="NEW-7").exists()


class StaffTests:
    def test_it_lists_members_with_roles_and_licences_flagging_expired_ones(
        self, world: World
    ) -> None:
        PractitionerLicence.objects.create(
            user=world.practitioner,
            clinic=world.clinic,
            kind=PractitionerLicence.Kind.NURSE_PRACTITIONER,
            number="NP-OLD",
            jurisdiction="Vermont",
            # Yesterday in the clinic's time zone, which the page judges expiry by.
            expires_on=local_today(world.clinic) - dt.timedelta(days=1),
        )
        page = signed_in(world.manager).get("/manage/staff/").content.decode()
        for name in ("Manager", "Practitioner", "Frontdesk"):
            assert name in page
        assert "MD-practitioner" in page and "New York" in page
        row = page[page.index("NP-OLD") :]
        assert "Vermont" in row[:200] and "Expired" in row[:300]
        assert page.count("Expired") == 1
        assert "selected>Practitioner</option>" in page

    def test_inviting_sends_one_email_with_a_reset_link_and_adds_the_member(
        self, world: World
    ) -> None:
        client = signed_in(world.manager)
        response = client.post("/manage/staff/invite/", invite_post())
        assert response.status_code == 302, errors_of(response)
        user = User.objects.get(username="nina")
        assert not user.has_usable_password()
        assert user.email == "nina@example.com" and user.get_full_name() == "Nina Park"
        member = member_of(world, user)
        assert member.role == Membership.Role.PRACTITIONER

        assert len(mail.outbox) == 1
        message = mail.outbox[0]
        assert message.to == ["nina@example.com"]
        assert "Demo Mesotherapy Clinic" in message.subject
        link = re.search(r"http://testserver(/accounts/reset/\S+/)", message.body)
        assert link is not None

        page = client.get("/manage/staff/").content.decode()
        assert "Nina Park" in page
        event = web_audits("create", "accounts.Membership").get()
        assert event.object_id == str(member.pk)
        assert event.detail == {"username": "nina", "role": "practitioner"}

        # The invitee follows the link and chooses their password.
        invitee = Client()
        landed = invitee.get(link.group(1), follow=True)
        invitee.post(
            landed.redirect_chain[-1][0],
            {"new_password1": "a-new-long-pass-77", "new_password2": "a-new-long-pass-77"},
        )
        assert authenticate(username="nina", password="a-new-long-pass-77") is not None

    def test_an_invite_with_a_taken_username_is_refused_by_name(self, world: World) -> None:
        response = signed_in(world.manager).post(
            "/manage/staff/invite/", invite_post(username="Practitioner")
        )
        assert response.status_code == 200
        assert "username is taken" in errors_of(response)
        assert mail.outbox == []

    def test_an_invite_needs_a_valid_email_and_role(self, world: World) -> None:
        response = signed_in(world.manager).post(
            "/manage/staff/invite/", invite_post(email="nope", role="owner")
        )
        assert response.status_code == 200
        errors = errors_of(response)
        assert "valid email" in errors and "Select a valid choice" in errors
        assert not User.objects.filter(username="nina").exists()
        assert mail.outbox == []

    def test_the_invite_form_labels_every_input(self, world: World) -> None:
        page = signed_in(world.manager).get("/manage/staff/invite/").content.decode()
        ids = re.findall(r'<(?:input|select)[^>]*id="([^"]+)"', page)
        assert len(ids) == 5
        for found in ids:
            assert f'for="{found}"' in page

    def test_it_changes_a_members_role(self, world: World) -> None:
        member = member_of(world, world.front_desk)
        response = signed_in(world.manager).post(
            f"/manage/staff/{member.pk}/role/", {f"m{member.pk}-role": "practitioner"}
        )
        assert response.status_code == 302
        member.refresh_from_db()
        assert member.role == Membership.Role.PRACTITIONER
        event = web_audits("update", "accounts.Membership").get()
        assert event.detail == {"role_before": "front_desk", "role": "practitioner"}

    def test_the_last_manager_cannot_step_down(self, world: World) -> None:
        member = member_of(world, world.manager)
        client = signed_in(world.manager)
        response = client.post(
            f"/manage/staff/{member.pk}/role/", {f"m{member.pk}-role": "front_desk"}
        )
        assert response.status_code == 302
        member.refresh_from_db()
        assert member.role == Membership.Role.MANAGER
        assert "at least one manager" in client.get("/manage/staff/").content.decode()
        assert not web_audits("update", "accounts.Membership").exists()

    def test_a_role_change_needs_a_post_and_a_real_role(self, world: World) -> None:
        member = member_of(world, world.front_desk)
        client = signed_in(world.manager)
        assert client.get(f"/manage/staff/{member.pk}/role/").status_code == 405
        client.post(f"/manage/staff/{member.pk}/role/", {f"m{member.pk}-role": "owner"})
        member.refresh_from_db()
        assert member.role == Membership.Role.FRONT_DESK

    def test_it_adds_a_licence_to_a_member(self, world: World) -> None:
        member = member_of(world, world.front_desk)
        response = signed_in(world.manager).post(
            f"/manage/staff/{member.pk}/licences/new/", licence_post()
        )
        assert response.status_code == 302, errors_of(response)
        licence = PractitionerLicence.objects.get(number="RN-555")
        assert licence.user == world.front_desk and licence.clinic == world.clinic
        assert licence.jurisdiction == "New Jersey"
        event = web_audits("create", "accounts.PractitionerLicence").get()
        assert event.object_id == str(licence.pk)
        assert "RN-555" in signed_in(world.manager).get("/manage/staff/").content.decode()

    def test_a_licence_needs_its_fields(self, world: World) -> None:
        member = member_of(world, world.front_desk)
        response = signed_in(world.manager).post(
            f"/manage/staff/{member.pk}/licences/new/",
            licence_post(number="", expires_on="not a date"),
        )
        assert response.status_code == 200
        errors = errors_of(response)
        assert "required" in errors and "valid date" in errors
        assert not PractitionerLicence.objects.filter(user=world.front_desk).exists()
