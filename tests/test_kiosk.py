"""The tablet handover (kiosk): staff hand their signed-in browser to a patient from the chart;
it then shows only that patient's intake forms, served by the portal's own views and audited
with "kiosk" as the channel; every other address is refused; a consent signed there is
witnessed by the staff member; and only the staff member's PIN (hashed, throttled, audited)
takes the browser back. A few wrong tries lock the PIN until a password sign-in."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client, override_settings

from mesoclinic.accounts.models import AuditEvent, KioskPin, User
from mesoclinic.outcomes.models import PhotoConsent
from mesoclinic.patients.models import Consent, Patient, PatientChange
from tests.conftest import Scene, World
from tests.routes import (
    Objects,
    api_operations,
    objects_fixture,  # noqa: F401 - the `objects` fixture
    web_routes,
)
from tests.test_portal import no_to_everything

PIN = "482913"


def staff_with_pin(user: User, pin: str = PIN) -> Client:
    """A staff member signed in with their password who has set a tablet PIN."""
    client = Client()
    r = client.post("/accounts/login/", {"username": user.username, "password": "pw"})
    assert r.status_code == 302, r.content[:300]
    r = client.post("/account/pin/", {"password": "pw", "pin": pin, "pin_again": pin})
    assert r.status_code == 302 and r["Location"] == "/account/tokens/", r.content[:500]
    return client


def hand_over(client: Client, patient: Patient) -> None:
    r = client.post(f"/patients/{patient.pk}/kiosk/")
    assert r.status_code == 302 and r["Location"] == "/my/intake/", r


@pytest.fixture
def tablet(scene: Scene) -> Client:
    """The practitioner's browser, handed to the scene's patient."""
    client = staff_with_pin(scene.world.practitioner)
    hand_over(client, scene.patient)
    return client


class PinTests:
    def test_the_pin_is_stored_hashed_and_needs_the_password(self, world: World) -> None:
        client = Client()
        client.force_login(world.front_desk)
        r = client.post("/account/pin/", {"password": "wrong", "pin": "1234", "pin_again": "1234"})
        assert r.status_code == 400 and b"That is not your password." in r.content
        r = client.post("/account/pin/", {"password": "pw", "pin": "12a4", "pin_again": "12a4"})
        assert r.status_code == 400 and b"Enter 4 to 8 digits." in r.content
        r = client.post("/account/pin/", {"password": "pw", "pin": "1234", "pin_again": "1243"})
        assert r.status_code == 400 and b"The two PINs differ." in r.content
        assert not KioskPin.objects.exists()
        r = client.post("/account/pin/", {"password": "pw", "pin": "1234", "pin_again": "1234"})
        assert r.status_code == 302
        row = KioskPin.objects.get(user=world.front_desk)
        assert "1234" not in row.pin_hash and row.pin_hash.startswith("md5$")
        page = client.get("/account/tokens/").content.decode()
        assert "Your PIN is set." in page and "Change my PIN" in page

    def test_a_patient_login_has_no_pin(self, scene: Scene, world: World) -> None:
        user = User.objects.create_user("ana-login", password="pw")
        Patient.objects.filter(pk=scene.patient.pk).update(user=user)
        client = Client()
        client.force_login(user)
        r = client.post("/account/pin/", {"password": "pw", "pin": "1234", "pin_again": "1234"})
        assert r.status_code == 403 and not KioskPin.objects.exists()

    def test_no_handover_without_a_pin(self, scene: Scene) -> None:
        client = Client()
        client.force_login(scene.world.front_desk)
        r = client.post(f"/patients/{scene.patient.pk}/kiosk/", follow=True)
        assert b"Set a tablet PIN on your account page first" in r.content
        # Still the staff's browser.
        assert client.get("/today/").status_code == 200


class HandoverTests:
    def test_the_chart_offers_the_handover_and_it_is_audited(self, scene: Scene) -> None:
        client = staff_with_pin(scene.world.front_desk)
        chart = client.get(f"/patients/{scene.patient.pk}/").content.decode()
        assert "Hand the tablet to the patient" in chart
        hand_over(client, scene.patient)
        row = AuditEvent.objects.get(action=AuditEvent.Action.HANDOVER)
        assert row.user == scene.world.front_desk and row.patient_id == scene.patient.pk
        page = client.get("/my/intake/").content.decode()
        assert "Fill these in on this tablet" in page and "Ana Lopez" in page
        # The portal's other sections and the sign-out are not offered.
        assert 'href="/my/"' not in page and "Sign out" not in page
        assert "Hand back to the clinic" in page

    def test_every_other_address_is_refused(self, scene: Scene, tablet: Client) -> None:
        other = Patient.objects.create(
            clinic=scene.world.clinic,
            first_name="Otto",
            last_name="Other",
            date_of_birth=dt.date(1970, 1, 1),
        )
        for path in (
            "/today/",
            f"/patients/{scene.patient.pk}/",
            f"/patients/{other.pk}/",
            "/patients/",
            "/account/tokens/",
            "/my/",
            "/my/password/",
            f"/my/courses/{scene.course['id']}/plan.pdf",
            "/admin/",
            "/no/such/page/",
            f"/patients/{scene.patient.pk}/courses/{scene.course['id']}/consent/",
        ):
            r = tablet.get(path)
            assert r.status_code == 403, path
            assert b"Only your forms on this tablet" in r.content, path
        for path in ("/my/logout/", "/accounts/logout/", f"/patients/{other.pk}/kiosk/"):
            assert tablet.post(path).status_code == 403, path
        # The API with the session cookie: refused, as a problem.
        r = tablet.get("/api/v1/patients")
        assert r.status_code == 403 and r["Content-Type"] == "application/problem+json"
        assert "only their forms" in r.json()["detail"]
        # Still handed over after all that.
        assert tablet.get("/my/intake/").status_code == 200

    def test_the_intake_steps_are_the_portals_audited_as_kiosk(
        self, scene: Scene, tablet: Client
    ) -> None:
        patient = scene.patient
        staff = scene.world.practitioner
        data = {
            "first_name": "Ana",
            "last_name": "Lopez",
            "date_of_birth": "1990-05-17",
            "sex": "female",
            "phone": "+1 212 555 0199",
            "emergency_name": "Rui Lopez",
            "emergency_phone": "+1 212 555 0102",
        }
        r = tablet.post("/my/intake/details/", data)
        assert r.status_code == 302 and r["Location"] == "/my/intake/", r.content[:800]
        change = PatientChange.objects.get(patient=patient)
        assert change.via == "kiosk" and change.changed_by == staff
        r = tablet.post("/my/intake/screening/", no_to_everything(scene.world.clinic))
        assert r.status_code == 302, r.content[:800]
        r = tablet.post("/my/intake/photos/", {"clinical": "yes", "marketing": "no"})
        assert r.status_code == 302
        assert (
            AuditEvent.objects.filter(
                object_type="outcomes.PhotoConsent", via="kiosk", user=staff
            ).count()
            == PhotoConsent.objects.filter(patient=patient).count()
            == 2
        )
        assert not AuditEvent.objects.filter(action=AuditEvent.Action.VIEW, via="kiosk").exists()
        assert tablet.get("/my/intake/details/").status_code == 200
        assert AuditEvent.objects.filter(
            action=AuditEvent.Action.VIEW, via="kiosk", patient_id=patient.pk, user=staff
        ).exists()

    def test_a_consent_signed_on_the_tablet_is_witnessed_by_the_staff_member(
        self, scene: Scene, tablet: Client
    ) -> None:
        path = f"/my/intake/consent/{scene.course['id']}/"
        assert tablet.get(path).status_code == 200
        r = tablet.post(path, {"signed_name": "Ana Lopez", "read_to_end": "on"}, follow=True)
        assert b"The clinic will give you a copy." in r.content
        assert b"Signed. The clinic will give you a copy." in r.content
        assert b"in your documents" not in r.content
        signed = Consent.objects.filter(patient=scene.patient).latest("recorded_at")
        assert signed.method == Consent.Method.TYPED
        assert signed.witnessed_by == scene.world.practitioner
        row = AuditEvent.objects.get(object_type="patients.Consent", object_id=str(signed.pk))
        assert row.via == "kiosk" and row.user == scene.world.practitioner

    def test_a_front_desk_handover_leaves_the_consent_to_a_practitioner(self, scene: Scene) -> None:
        client = staff_with_pin(scene.world.front_desk)
        hand_over(client, scene.patient)
        path = f"/my/intake/consent/{scene.course['id']}/"
        r = client.get(path)
        assert r.status_code == 403 and b"signed with a practitioner" in r.content
        assert client.post(path, {"signed_name": "Ana", "read_to_end": "on"}).status_code == 403
        assert not Consent.objects.filter(patient=scene.patient, signed_name="Ana").exists()
        assert client.get("/my/intake/details/").status_code == 200

    def test_another_patients_course_is_not_found(self, scene: Scene, tablet: Client) -> None:
        other = Patient.objects.create(
            clinic=scene.world.clinic,
            first_name="Otto",
            last_name="Other",
            date_of_birth=dt.date(1970, 1, 1),
        )
        from mesoclinic.courses.models import Course

        theirs = Course.objects.get(pk=scene.course["id"])
        theirs.pk = None
        theirs.patient = other
        theirs.save()
        assert tablet.get(f"/my/intake/consent/{theirs.pk}/").status_code == 404


# The only pages a handed-over browser reaches (their names as tests/routes.py gives them).
KIOSK_PAGES = {
    "portal:intake",
    "portal:intake_details",
    "portal:intake_screening",
    "portal:intake_photos",
    "portal:intake_consent",
    "kiosk_return",
    "kiosk_sign_out",
}


class EveryRouteTests:
    def test_every_other_page_and_api_operation_is_refused(self, objects: Objects) -> None:
        """Every route of the URL conf and every API operation, read from them so that a new
        one is tried without anyone listing it, by GET and by POST with the session cookie."""
        client = staff_with_pin(objects.scene.world.practitioner)
        hand_over(client, objects.scene.patient)
        tried, served = 0, []
        for route, name in web_routes():
            if name in KIOSK_PAGES:
                continue
            url = objects.fill(route)
            for method in (client.get, client.post):
                r = method(url)
                tried += 1
                if r.status_code != 403 or b"Only your forms on this tablet" not in r.content:
                    served.append(f"{method.__name__.upper()} {url} {r.status_code}")
        for method_name, path in api_operations():
            url = "/api/v1" + objects.fill(path)
            r = client.generic(method_name, url, b"{}", content_type="application/json")
            tried += 1
            if r.status_code != 403 or r["Content-Type"] != "application/problem+json":
                served.append(f"{method_name} {url} {r.status_code}")
        for path in ("/admin/", "/admin/patients/patient/", "/static/../admin/"):
            tried += 1
            if client.get(path).status_code != 403:
                served.append(f"GET {path}")
        assert served == [], f"a handed-over tablet reached: {served}"
        assert tried > 300
        # Still handed over, and the forms still answer.
        assert client.get("/my/intake/").status_code == 200


class TakeBackTests:
    def test_the_right_pin_gives_the_staff_view_back(self, scene: Scene, tablet: Client) -> None:
        assert tablet.get("/kiosk/return/").status_code == 200
        r = tablet.post("/kiosk/return/", {"pin": PIN})
        assert r.status_code == 302 and r["Location"] == f"/patients/{scene.patient.pk}/"
        assert tablet.get("/today/").status_code == 200
        assert AuditEvent.objects.filter(
            action=AuditEvent.Action.TAKEBACK, user=scene.world.practitioner
        ).exists()
        # The staff member is the caller again: the patient's own pages refuse them.
        assert tablet.get("/my/intake/").status_code == 403

    def test_another_staff_members_pin_does_not_open_it(self, scene: Scene, tablet: Client) -> None:
        staff_with_pin(scene.world.manager, "111111")
        r = tablet.post("/kiosk/return/", {"pin": "111111"})
        assert r.status_code == 400 and b"That PIN is not right. 4 tries are left" in r.content
        assert tablet.get("/today/").status_code == 403

    @override_settings(KIOSK_PIN_ATTEMPTS=3)
    def test_wrong_pins_lock_it_until_a_password_sign_in(
        self, scene: Scene, tablet: Client
    ) -> None:
        staff = scene.world.practitioner
        assert tablet.post("/kiosk/return/", {"pin": "000000"}).status_code == 400
        r = tablet.post("/kiosk/return/", {"pin": "000001"})
        assert r.status_code == 400 and b"1 try is left" in r.content
        r = tablet.post("/kiosk/return/", {"pin": "000002"})
        assert r.status_code == 403 and b"The tablet is locked" in r.content
        assert AuditEvent.objects.filter(action=AuditEvent.Action.PIN_FAILED).count() == 2
        assert AuditEvent.objects.filter(
            action=AuditEvent.Action.LOCKOUT, user=staff, via="kiosk"
        ).exists()
        # Signed out: nothing of the staff's or the patient's is reachable.
        assert tablet.get("/today/").status_code == 302
        assert tablet.get("/my/intake/").status_code == 302
        assert KioskPin.objects.get(user=staff).locked_at is not None
        # Even the right PIN is refused while it is locked, in another handed-over browser.
        other = Client()
        other.force_login(staff)
        KioskPin.objects.filter(user=staff).update(locked_at=dt.datetime.now(dt.UTC))
        session = other.session
        session["kiosk"] = {
            "staff_id": staff.pk,
            "patient_id": scene.patient.pk,
            "clinic_id": scene.world.clinic.pk,
            "clinical": True,
        }
        session.save()
        r = other.post("/kiosk/return/", {"pin": PIN})
        assert r.status_code == 403 and b"The tablet is locked" in r.content
        # A password sign-in unlocks it.
        fresh = Client()
        assert (
            fresh.post("/accounts/login/", {"username": staff.username, "password": "pw"})
        ).status_code == 302
        row = KioskPin.objects.get(user=staff)
        assert row.locked_at is None and row.failures == 0
        hand_over(fresh, scene.patient)
        assert fresh.post("/kiosk/return/", {"pin": PIN}).status_code == 302

    def test_a_handover_needs_an_unlocked_pin(self, scene: Scene) -> None:
        client = staff_with_pin(scene.world.practitioner)
        KioskPin.objects.filter(user=scene.world.practitioner).update(
            locked_at=dt.datetime.now(dt.UTC)
        )
        r = client.post(f"/patients/{scene.patient.pk}/kiosk/", follow=True)
        assert b"Your tablet PIN is locked" in r.content
        assert client.get("/today/").status_code == 200

    def test_signing_the_tablet_out_ends_the_session(self, scene: Scene, tablet: Client) -> None:
        r = tablet.post("/kiosk/sign-out/")
        assert r.status_code == 302 and r["Location"] == "/accounts/login/"
        assert tablet.get("/today/").status_code == 302
        assert tablet.get("/my/intake/").status_code == 302

    def test_outside_a_handover_the_way_back_goes_to_today(self, world: World) -> None:
        client = Client()
        client.force_login(world.manager)
        assert client.get("/kiosk/return/")["Location"] == "/today/"
        assert client.post("/kiosk/sign-out/")["Location"] == "/today/"
        assert client.get("/today/").status_code == 200
