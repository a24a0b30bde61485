"""SMART App Launch: a clinic registers an app, a person allows it on the product's own page,
the app trades the code for a token (PKCE) and reads FHIR no further than its scopes and the
person's own reach; withdrawing or removing the app ends it."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
import sys
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone
from oauth2_provider.models import AccessToken, Application

from mesoclinic.accounts.models import AuditEvent, User
from mesoclinic.fhir.models import SmartApp
from mesoclinic.patients.models import Patient
from tests.conftest import Scene, World
from tests.scheduling_fixtures import race_processes, run_script

CHILD = [sys.executable, "-m", "tests.booking_race_child"]

REDIRECT = "https://app.example.com/callback"
BASE = "http://testserver/fhir/R4B"


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def register(world: World, name: str = "Skin Diary", confidential: bool = False) -> Application:
    response = signed_in(world.manager).post(
        "/manage/apps/",
        {
            "action": "register",
            "name": name,
            "redirect_uris": REDIRECT,
            "confidential": "on" if confidential else "",
        },
    )
    assert response.status_code == 200, response.content
    app = Application.objects.get(name=name, smart_app__clinic=world.clinic)
    assert app.client_id in response.content.decode()
    return app


def patient_user(patient: Patient) -> User:
    user = User.objects.create_user(f"patient{patient.pk}", first_name=patient.first_name)
    Patient.objects.filter(pk=patient.pk).update(user=user)
    return user


class Launch:
    """An app's side of the authorization code flow with PKCE."""

    def __init__(self, app: Application, scope: str):
        self.app = app
        self.scope = scope
        self.verifier = secrets.token_urlsafe(48)
        digest = hashlib.sha256(self.verifier.encode()).digest()
        self.challenge = base64.urlsafe_b64encode(digest).decode().rstrip("=")
        self.state = secrets.token_urlsafe(8)

    def authorize_url(self) -> str:
        query = {
            "response_type": "code",
            "client_id": self.app.client_id,
            "redirect_uri": REDIRECT,
            "scope": self.scope,
            "state": self.state,
            "aud": BASE,
            "code_challenge": self.challenge,
            "code_challenge_method": "S256",
        }
        return f"/oauth/authorize/?{urlencode(query)}"

    def allow(self, browser: Client) -> str:
        page = browser.get(self.authorize_url())
        assert page.status_code == 200, page.content
        form = page.context["form"]
        data = {f.name: f.value() or "" for f in form if f.is_hidden}
        done = browser.post(self.authorize_url(), {**data, "allow": "Authorize"})
        assert done.status_code == 302, done.content
        back = urlsplit(done["Location"])
        assert f"{back.scheme}://{back.netloc}{back.path}" == REDIRECT
        query = parse_qs(back.query)
        assert query["state"] == [self.state]
        return query["code"][0]

    def token(self, code: str, verifier: str | None = None) -> Any:
        return Client().post(
            "/oauth/token/",
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT,
                "client_id": self.app.client_id,
                "code_verifier": verifier or self.verifier,
            },
        )


def fhir(token: str, path: str, **params: Any) -> Any:
    return Client().get(f"/fhir/R4B/{path}", params, headers={"Authorization": f"Bearer {token}"})


def granted(app: Application, user: User, scope: str) -> dict[str, Any]:
    launch = Launch(app, scope)
    response = launch.token(launch.allow(signed_in(user)))
    assert response.status_code == 200, response.content
    body: dict[str, Any] = json.loads(response.content)
    return body


class DiscoveryTests:
    def test_the_smart_configuration_says_where_to_go(self, db: Any) -> None:
        response = Client().get("/fhir/R4B/.well-known/smart-configuration")
        assert response.status_code == 200
        data = json.loads(response.content)
        assert data["authorization_endpoint"] == "http://testserver/oauth/authorize/"
        assert data["token_endpoint"] == "http://testserver/oauth/token/"
        assert data["code_challenge_methods_supported"] == ["S256"]
        assert {"patient/*.read", "user/*.read", "patient/Observation.rs"} <= set(
            data["scopes_supported"]
        )
        assert "permission-patient" in data["capabilities"]

    def test_the_capability_statement_names_smart_and_its_addresses(self, db: Any) -> None:
        data = json.loads(Client().get("/fhir/R4B/metadata").content)
        security = data["rest"][0]["security"]
        assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
        uris = {e["url"]: e["valueUri"] for e in security["extension"][0]["extension"]}
        assert uris["token"] == "http://testserver/oauth/token/"


class RegisterTests:
    def test_a_manager_registers_an_app_and_a_server_app_sees_its_secret_once(
        self, world: World
    ) -> None:
        app = register(world, "Clinic Reports", confidential=True)
        assert app.client_type == Application.CLIENT_CONFIDENTIAL
        assert SmartApp.objects.get(application=app).registered_by == world.manager
        assert AuditEvent.objects.filter(
            action=AuditEvent.Action.CREATE, object_type="fhir.SmartApp"
        ).exists()
        page = signed_in(world.manager).get("/manage/apps/").content.decode()
        assert "Clinic Reports" in page and "Client secret" not in page

    def test_the_form_names_a_wrong_address(self, world: World) -> None:
        response = signed_in(world.manager).post(
            "/manage/apps/",
            {"action": "register", "name": "X", "redirect_uris": "http://app.example.com/cb"},
        )
        assert response.status_code == 422
        assert "must use https" in response.content.decode()
        assert not Application.objects.exists()

    def test_only_managers_register_and_only_their_clinics_apps(
        self, world: World, other: World
    ) -> None:
        assert signed_in(world.practitioner).get("/manage/apps/").status_code == 403
        app = register(world)
        theirs = signed_in(other.manager).post(
            "/manage/apps/", {"action": "remove", "app": app.smart_app.pk}
        )
        assert theirs.status_code == 404
        assert "Skin Diary" not in signed_in(other.manager).get("/manage/apps/").content.decode()
        assert Application.objects.filter(pk=app.pk).exists()


class PatientLaunchTests:
    def test_a_patient_allows_an_app_and_it_reads_their_own_records(self, scene: Scene) -> None:
        app = register(scene.world)
        user = patient_user(scene.patient)
        # Not signed in: the page offers both ways to sign in, and comes back.
        launch = Launch(app, "patient/*.read openid fhirUser launch/patient offline_access")
        choice = Client().get(launch.authorize_url())
        assert choice.status_code == 200
        assert "/my/login/?next=%2Foauth%2Fauthorize%2F" in choice.content.decode()
        page = signed_in(user).get(launch.authorize_url()).content.decode()
        assert "Allow Skin Diary?" in page and "Read all of your records" in page
        body = granted(app, user, "patient/*.read openid fhirUser offline_access")
        assert body["patient"] == str(scene.patient.pk)
        assert body["fhirUser"] == f"Patient/{scene.patient.pk}"
        assert body["refresh_token"]
        token = body["access_token"]
        own = fhir(token, f"Patient/{scene.patient.pk}")
        assert own.status_code == 200
        assert json.loads(own.content)["id"] == str(scene.patient.pk)
        bundle = json.loads(fhir(token, "Procedure").content)
        assert bundle["total"] >= 1
        assert all(
            e["resource"]["subject"]["reference"] == f"Patient/{scene.patient.pk}"
            for e in bundle["entry"]
        )
        stranger = Patient.objects.create(
            clinic=scene.world.clinic,
            first_name="Other",
            last_name="Person",
            date_of_birth=dt.date(1970, 1, 1),
        )
        assert fhir(token, f"Patient/{stranger.pk}").status_code == 404
        # Reads through the app are audited as the patient's, with the app's channel.
        assert AuditEvent.objects.filter(
            user=user, via="smart", patient_id=scene.patient.pk, detail__app="Skin Diary"
        ).exists()

    def test_a_token_reads_only_the_types_it_was_allowed(self, scene: Scene) -> None:
        app = register(scene.world)
        user = patient_user(scene.patient)
        token = granted(app, user, "patient/Observation.read")["access_token"]
        assert fhir(token, "Observation").status_code == 200
        refused = fhir(token, "Procedure")
        assert refused.status_code == 403
        issue = json.loads(refused.content)["issue"][0]
        assert issue["diagnostics"] == "This app was not allowed to read Procedure."
        assert fhir(token, "$export").status_code == 403

    def test_the_code_needs_its_verifier_and_works_once(self, scene: Scene) -> None:
        app = register(scene.world)
        user = patient_user(scene.patient)
        launch = Launch(app, "patient/*.read")
        code = launch.allow(signed_in(user))
        assert launch.token(code, verifier=secrets.token_urlsafe(48)).status_code == 400
        launch = Launch(app, "patient/*.read")
        code = launch.allow(signed_in(user))
        assert launch.token(code).status_code == 200
        assert launch.token(code).status_code == 400

    def test_refusing_sends_the_app_away_with_no_code(self, scene: Scene) -> None:
        app = register(scene.world)
        browser = signed_in(patient_user(scene.patient))
        launch = Launch(app, "patient/*.read")
        form = browser.get(launch.authorize_url()).context["form"]
        data = {f.name: f.value() or "" for f in form if f.is_hidden}
        done = browser.post(launch.authorize_url(), data)
        assert done.status_code == 302
        query = parse_qs(urlsplit(done["Location"]).query)
        assert query["error"] == ["access_denied"] and "code" not in query

    def test_a_refreshed_token_reads_and_a_replayed_refresh_token_revokes_its_family(
        self, scene: Scene
    ) -> None:
        app = register(scene.world)
        body = granted(app, patient_user(scene.patient), "patient/*.read offline_access")
        refresh = {
            "grant_type": "refresh_token",
            "refresh_token": body["refresh_token"],
            "client_id": app.client_id,
        }
        again = Client().post("/oauth/token/", refresh)
        assert again.status_code == 200, again.content
        fresh = json.loads(again.content)
        assert fhir(fresh["access_token"], f"Patient/{scene.patient.pk}").status_code == 200
        assert Client().post("/oauth/token/", refresh).status_code == 400
        # A refresh token used twice revokes what it led to: the new tokens stop working.
        assert fhir(fresh["access_token"], f"Patient/{scene.patient.pk}").status_code == 401
        again = {**refresh, "refresh_token": fresh["refresh_token"]}
        assert Client().post("/oauth/token/", again).status_code == 400

    def test_an_expired_token_reads_nothing(self, scene: Scene) -> None:
        app = register(scene.world)
        token = granted(app, patient_user(scene.patient), "patient/*.read")["access_token"]
        AccessToken.objects.update(expires=timezone.now() - dt.timedelta(seconds=1))
        assert fhir(token, f"Patient/{scene.patient.pk}").status_code == 401

    def test_withdrawing_the_app_ends_its_tokens(self, scene: Scene) -> None:
        app = register(scene.world)
        user = patient_user(scene.patient)
        token = granted(app, user, "patient/*.read")["access_token"]
        browser = signed_in(user)
        page = browser.get("/oauth/apps/").content.decode()
        assert "Skin Diary" in page and "Read all of your records" in page
        browser.post("/oauth/apps/", {"app": app.pk})
        assert fhir(token, f"Patient/{scene.patient.pk}").status_code == 401
        assert "You have allowed no app." in browser.get("/oauth/apps/").content.decode()

    def test_a_removed_app_reads_nothing(self, scene: Scene) -> None:
        app = register(scene.world)
        token = granted(app, patient_user(scene.patient), "patient/*.read")["access_token"]
        signed_in(scene.world.manager).post(
            "/manage/apps/", {"action": "remove", "app": app.smart_app.pk}
        )
        assert not Application.objects.filter(pk=app.pk).exists()
        assert fhir(token, f"Patient/{scene.patient.pk}").status_code == 401


class StaffLaunchTests:
    def test_staff_read_what_they_may_see_with_user_scopes(self, scene: Scene) -> None:
        app = register(scene.world)
        body = granted(app, scene.world.practitioner, "user/*.read fhirUser")
        assert "patient" not in body
        assert body["fhirUser"] == f"Practitioner/{scene.world.practitioner.pk}"
        assert fhir(body["access_token"], f"Patient/{scene.patient.pk}").status_code == 200
        assert fhir(body["access_token"], "Location").status_code == 200

    def test_the_front_desk_reads_no_more_through_an_app_than_signed_in(self, scene: Scene) -> None:
        app = register(scene.world)
        token = granted(app, scene.world.front_desk, "user/*.read")["access_token"]
        assert fhir(token, "AllergyIntolerance").status_code == 403

    def test_staff_cannot_allow_a_patients_own_scopes(self, scene: Scene) -> None:
        app = register(scene.world)
        launch = Launch(app, "patient/*.read")
        page = signed_in(scene.world.practitioner).get(launch.authorize_url())
        assert page.status_code == 403
        assert "Only the patient can allow that" in page.content.decode()

    @pytest.mark.parametrize("who", ["manager", "patient"])
    def test_an_app_of_another_clinic_cannot_be_allowed(
        self, scene: Scene, other: World, who: str
    ) -> None:
        theirs = register(other, "Their App")
        user = scene.world.manager if who == "manager" else patient_user(scene.patient)
        launch = Launch(theirs, "user/*.read")
        page = signed_in(user).get(launch.authorize_url())
        assert page.status_code == 403
        assert "registered with another clinic" in page.content.decode()
        form_data = {
            "client_id": theirs.client_id,
            "redirect_uri": REDIRECT,
            "scope": "user/*.read",
            "response_type": "code",
            "allow": "Authorize",
        }
        assert signed_in(user).post(launch.authorize_url(), form_data).status_code == 403
        assert not AccessToken.objects.exists()


def test_the_admin_lists_no_apps_or_tokens_of_every_clinic(db: Any) -> None:
    from django.contrib import admin

    assert not [m for m in admin.site._registry if m._meta.app_label == "oauth2_provider"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="races are proved on PostgreSQL")
class SmartRaceTests:
    def test_a_code_and_a_refresh_token_each_work_once_under_concurrent_requests(
        self, shared_db: str
    ) -> None:
        seeded = run_script(CHILD, shared_db, "smart", {})
        exchange = {
            "method": "POST",
            "path": "/oauth/token/",
            "form": True,
            "body": {
                "grant_type": "authorization_code",
                "code": seeded["code"],
                "redirect_uri": seeded["redirect"],
                "client_id": seeded["client_id"],
                "code_verifier": seeded["verifier"],
            },
        }
        refresh = {
            "method": "POST",
            "path": "/oauth/token/",
            "form": True,
            "body": {
                "grant_type": "refresh_token",
                "refresh_token": seeded["refresh_token"],
                "client_id": seeded["client_id"],
            },
        }
        outputs = race_processes(
            CHILD, shared_db, [{"requests": [exchange, refresh] * 2} for _ in range(2)]
        )
        results = [r for output in outputs for r in output]
        exchanged = sorted(r["status"] for r in results[0::2])
        refreshed = sorted(r["status"] for r in results[1::2])
        # A request that raised carries its traceback, so a failure shows where.
        assert exchanged == [200, 400, 400, 400], [r.get("trace", r) for r in results]
        assert refreshed == [200, 400, 400, 400], [r.get("trace", r) for r in results]
        # The seed's token was replaced by the refresh, so one token made from a code is left:
        # the race's; no refused exchange left one behind. The refresh made at most one (none
        # when a request came after the winner had committed, found the token used, and
        # revoked what it led to, as a replayed refresh token does).
        counts = run_script(CHILD, shared_db, "smart_count", seeded)
        assert counts["from_codes"] == 1, counts
        assert counts["from_refresh"] <= 1 and counts["live_refresh"] <= 2, counts
