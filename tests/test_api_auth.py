"""API authentication: bearer tokens, the clinic a token acts in, and the public schema and docs.

A token is exchanged for a username and password at POST /api/v1/auth/token. It names one
clinic and the caller's role there; every other endpoint needs it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.test import Client
from django.utils import timezone

from mesoclinic.accounts.models import Clinic, Membership, User
from mesoclinic.api.models import ApiToken
from mesoclinic.patients.models import Patient
from tests.conftest import Api, World, ago, api_for, problem_of

# Every operation of the API, as the OpenAPI schema must list it.
ENDPOINTS = {
    ("post", "/api/v1/auth/token"),
    ("post", "/api/v1/auth/logout"),
    ("get", "/api/v1/auth/tokens"),
    ("delete", "/api/v1/auth/tokens/{token_id}"),
    ("get", "/api/v1/audit"),
    ("get", "/api/v1/patients/{patient_id}/photo-consents"),
    ("post", "/api/v1/patients/{patient_id}/photo-consents"),
    ("get", "/api/v1/courses/{course_id}/photos"),
    ("post", "/api/v1/courses/{course_id}/photos"),
    ("get", "/api/v1/photos/{photo_id}/image"),
    ("get", "/api/v1/photos/marketing"),
    ("post", "/api/v1/adverse-events"),
    ("get", "/api/v1/adverse-events"),
    ("get", "/api/v1/adverse-events/{event_id}"),
    ("patch", "/api/v1/adverse-events/{event_id}"),
    ("get", "/api/v1/courses/{course_id}/watch"),
    ("get", "/api/v1/safety/alerts"),
    ("get", "/api/v1/safety/alerts/{alert_id}"),
    ("post", "/api/v1/safety/alerts/{alert_id}/acknowledge"),
    ("post", "/api/v1/safety/alerts/{alert_id}/close"),
    ("post", "/api/v1/safety/alerts/{alert_id}/recall"),
    ("post", "/api/v1/safety/surveil"),
    ("get", "/api/v1/analytics"),
    ("get", "/api/v1/protocols"),
    ("get", "/api/v1/protocols/{key}"),
    ("put", "/api/v1/protocols/{key}"),
    ("post", "/api/v1/patients"),
    ("get", "/api/v1/patients"),
    ("get", "/api/v1/patients/{patient_id}"),
    ("post", "/api/v1/patients/{patient_id}/allergies"),
    ("get", "/api/v1/screening-form"),
    ("post", "/api/v1/patients/{patient_id}/screenings"),
    ("get", "/api/v1/patients/{patient_id}/consent-text"),
    ("post", "/api/v1/patients/{patient_id}/consents"),
    ("post", "/api/v1/patients/{patient_id}/courses"),
    ("get", "/api/v1/courses/{course_id}"),
    ("post", "/api/v1/courses/{course_id}/stop"),
    ("post", "/api/v1/courses/{course_id}/allergy-tests"),
    ("post", "/api/v1/allergy-tests/{test_id}/reading"),
    ("get", "/api/v1/courses/{course_id}/session-check"),
    ("post", "/api/v1/courses/{course_id}/sessions"),
    ("get", "/api/v1/sessions/{session_id}"),
    ("post", "/api/v1/sessions/{session_id}/side-effects"),
    ("post", "/api/v1/side-effects/{effect_id}/resolve"),
    ("get", "/api/v1/follow-ups"),
    ("post", "/api/v1/follow-ups/{follow_up_id}/close"),
    ("get", "/api/v1/ingredients"),
    ("get", "/api/v1/products"),
    ("post", "/api/v1/products"),
    ("post", "/api/v1/products/{product_id}/lots"),
    ("get", "/api/v1/lots"),
    ("post", "/api/v1/lots/{lot_id}/recall"),
    ("get", "/api/v1/lots/{lot_id}/patients"),
    ("get", "/api/v1/lots/{lot_id}/stock"),
    ("post", "/api/v1/lots/{lot_id}/stock"),
    ("post", "/api/v1/lots/{lot_id}/vials"),
    ("post", "/api/v1/vials/{vial_id}/close"),
    ("get", "/api/v1/stock"),
    ("get", "/api/v1/prices"),
    ("post", "/api/v1/prices"),
    ("get", "/api/v1/patients/{patient_id}/account"),
    ("post", "/api/v1/patients/{patient_id}/invoices"),
    ("post", "/api/v1/courses/{course_id}/packages"),
    ("get", "/api/v1/invoices/{invoice_id}"),
    ("post", "/api/v1/invoices/{invoice_id}/payments"),
    ("post", "/api/v1/invoices/{invoice_id}/credit-notes"),
    ("post", "/api/v1/payments/{payment_id}/refunds"),
    ("get", "/api/v1/reports/daily-close"),
    ("get", "/api/v1/reports/revenue"),
    ("post", "/api/v1/courses/{course_id}/quotes"),
    ("get", "/api/v1/quotes/{quote_id}"),
    ("post", "/api/v1/quotes/{quote_id}/accept"),
    ("post", "/api/v1/invoices/{invoice_id}/checkout"),
    ("post", "/api/v1/appointments/{appointment_id}/fee"),
    ("post", "/api/v1/packages/{package_id}/settle"),
    ("get", "/api/v1/payment-policy"),
    ("put", "/api/v1/payment-policy"),
    ("get", "/api/v1/appointments"),
    ("post", "/api/v1/appointments"),
    ("get", "/api/v1/appointments/{appointment_id}"),
    ("post", "/api/v1/appointments/{appointment_id}/cancel"),
    ("post", "/api/v1/appointments/{appointment_id}/no-show"),
    ("post", "/api/v1/appointments/{appointment_id}/arrived"),
    ("get", "/api/v1/staff"),
    ("get", "/api/v1/staff/{membership_id}/licences"),
    ("post", "/api/v1/appointments/{appointment_id}/move"),
    ("post", "/api/v1/courses/{course_id}/booking"),
    ("get", "/api/v1/courses/{course_id}/maintenance"),
    ("post", "/api/v1/courses/{course_id}/maintenance"),
    ("get", "/api/v1/calendar/next-free"),
    ("get", "/api/v1/calendar/cadence-flags"),
    ("get", "/api/v1/courses/{course_id}/measurements"),
    ("post", "/api/v1/courses/{course_id}/measurements"),
    ("post", "/api/v1/courses/{course_id}/visits"),
    ("get", "/api/v1/courses/{course_id}/progress"),
}


def issue(username: str, password: str = "pw", **extra: Any) -> Any:
    return Api(None).post("/auth/token", {"username": username, "password": password, **extra})


def assert_unauthorized(response: Any) -> None:
    body = problem_of(response, 401)
    assert body["title"] == "Not signed in"
    assert "Bearer" in body["detail"]
    assert response["WWW-Authenticate"] == "Bearer"


@pytest.fixture
def patient_user(patient: Patient) -> User:
    """A patient who has their own login and no staff membership."""
    user = User.objects.create_user("ana", password="pw", first_name="Ana")
    patient.user = user
    patient.save(update_fields=["user"])
    return user


class ApiAuthTests:
    def test_it_issues_a_token_that_works(self, world: World) -> None:
        before = timezone.now()
        r = issue("manager")
        assert r.status_code == 200, r.content
        body = r.json()
        assert body["clinic"] == world.clinic.pk
        assert body["role"] == Membership.Role.MANAGER
        assert len(body["token"]) >= 32
        expires = dt.datetime.fromisoformat(body["expires_at"])
        ttl = dt.timedelta(hours=settings.API_TOKEN_TTL_HOURS)
        assert before + ttl <= expires <= timezone.now() + ttl

        listed = Api(body["token"]).get("/products")
        assert listed.status_code == 200
        assert {p["name"] for p in listed.json()} == {"Lipo mix", "Lidocaine 1%"}

    def test_it_stores_only_a_hash_of_the_token(self, world: World) -> None:
        raw = issue("practitioner").json()["token"]
        stored = ApiToken.objects.get(user=world.practitioner)
        assert stored.key_hash == hashlib.sha256(raw.encode()).hexdigest()
        assert not ApiToken.objects.filter(key_hash=raw).exists()

    def test_it_gives_each_role_its_own_role_in_the_token(self, world: World) -> None:
        assert issue("practitioner").json()["role"] == "practitioner"
        assert issue("frontdesk").json()["role"] == "front_desk"

    def test_it_refuses_a_bad_password(self, world: World) -> None:
        r = issue("manager", password="wrong")
        assert_unauthorized(r)
        assert "token" not in r.json()
        assert not ApiToken.objects.filter(user=world.manager).exists()

    def test_it_refuses_an_unknown_user(self, world: World) -> None:
        assert_unauthorized(issue("nobody"))

    def test_it_refuses_an_inactive_user_and_their_old_token(self, world: World) -> None:
        api = api_for(world.manager)
        world.manager.is_active = False
        world.manager.save(update_fields=["is_active"])
        assert_unauthorized(issue("manager"))
        assert_unauthorized(api.get("/protocols"))

    def test_it_refuses_token_input_that_is_not_a_login(self, world: World) -> None:
        r = Api(None).post("/auth/token", {"username": "manager"})
        body = problem_of(r, 422)
        assert {e["field"] for e in body["errors"]} == {"password"}

    def test_it_refuses_a_request_without_a_token(self, world: World, patient: Patient) -> None:
        anonymous = Api(None)
        for path in ("/protocols", "/patients", f"/patients/{patient.pk}", "/follow-ups"):
            assert_unauthorized(anonymous.get(path))
        r = anonymous.post("/patients", {"first_name": "A", "last_name": "B"})
        assert_unauthorized(r)
        assert Patient.objects.count() == 1

    def test_it_refuses_a_token_it_did_not_issue(self, world: World) -> None:
        assert_unauthorized(Api("not-a-token").get("/protocols"))
        client = Client()
        r = client.get("/api/v1/protocols", headers={"Authorization": "Basic bWFuYWdlcjpwdw=="})
        assert_unauthorized(r)

    def test_it_refuses_an_expired_token(self, world: World) -> None:
        token = issue("manager").json()["token"]
        api = Api(token)
        assert api.get("/protocols").status_code == 200
        later = timezone.now() + dt.timedelta(hours=settings.API_TOKEN_TTL_HOURS, minutes=1)
        with time_machine.travel(later, tick=False):
            assert_unauthorized(api.get("/protocols"))

    def test_it_refuses_a_token_whose_expiry_has_passed_in_the_database(self, world: World) -> None:
        api = api_for(world.practitioner)
        ApiToken.objects.filter(user=world.practitioner).update(expires_at=ago(seconds=1))
        assert_unauthorized(api.get("/protocols"))

    def test_it_makes_a_user_of_two_clinics_name_the_clinic(
        self, world: World, other: World
    ) -> None:
        Membership.objects.create(
            user=world.practitioner, clinic=other.clinic, role=Membership.Role.MANAGER
        )
        r = issue("practitioner")
        body = problem_of(r, 422)
        assert body["errors"] == [
            {"field": "clinic", "message": "You belong to several clinics: say which one."}
        ]
        assert not ApiToken.objects.filter(user=world.practitioner).exists()

        here = issue("practitioner", clinic=world.clinic.pk).json()
        there = issue("practitioner", clinic=other.clinic.pk).json()
        assert (here["clinic"], here["role"]) == (world.clinic.pk, "practitioner")
        assert (there["clinic"], there["role"]) == (other.clinic.pk, "manager")

        # Each token acts in its own clinic only, with the role it has there.
        products_there = Api(there["token"]).get("/products").json()
        assert {p["name"] for p in products_there} == {"o_Lipo mix", "o_Lidocaine 1%"}
        products_here = Api(here["token"]).get("/products").json()
        assert {p["name"] for p in products_here} == {"Lipo mix", "Lidocaine 1%"}
        recall = Api(here["token"]).post(f"/lots/{world.lot.pk}/recall", {"reason": "test"})
        assert problem_of(recall, 403)["detail"].startswith("Your role (practitioner)")

    def test_it_refuses_a_clinic_the_user_is_not_in(self, world: World, other: World) -> None:
        Membership.objects.create(
            user=world.practitioner, clinic=other.clinic, role=Membership.Role.PRACTITIONER
        )
        third = Clinic.objects.create(name="Third", timezone="UTC")
        r = issue("practitioner", clinic=third.pk)
        assert problem_of(r, 403)["detail"] == "You are not a member of that clinic."
        # A user of one clinic cannot name another one either.
        r = issue("frontdesk", clinic=other.clinic.pk)
        assert problem_of(r, 403)["detail"] == "You are not a member of that clinic."
        assert not ApiToken.objects.exists()

    def test_a_patient_with_a_login_gets_a_token_but_no_staff_endpoint(
        self, world: World, patient: Patient, patient_user: User
    ) -> None:
        r = issue("ana")
        assert r.status_code == 200, r.content
        body = r.json()
        assert body["clinic"] is None and body["role"] is None
        api = Api(body["token"])
        lot = world.lot.pk
        calls = [
            api.get("/protocols"),
            api.get("/protocols/cellulite"),
            api.get("/patients"),
            api.get(f"/patients/{patient.pk}"),
            api.get("/screening-form"),
            api.get(f"/patients/{patient.pk}/consent-text"),
            api.get("/follow-ups"),
            api.get("/ingredients"),
            api.get("/products"),
            api.get("/lots"),
            api.get(f"/lots/{lot}/patients"),
            api.post(
                "/patients", {"first_name": "X", "last_name": "Y", "date_of_birth": "1990-01-01"}
            ),
            api.post(f"/patients/{patient.pk}/screenings", {"answers": {}}),
            api.post(f"/lots/{lot}/recall", {"reason": "because"}),
        ]
        for response in calls:
            body = problem_of(response, 403)
            assert body["detail"] == "This account is not a member of a clinic."
        assert Patient.objects.count() == 1
        world.lot.refresh_from_db()
        assert world.lot.recalled is False


class ApiSchemaTests:
    def test_the_openapi_schema_lists_every_endpoint(self, db: Any) -> None:
        r = Client().get("/api/v1/openapi.json")
        assert r.status_code == 200
        schema = r.json()
        assert schema["info"]["title"] == "mesoclinic API"
        listed = {
            (method, path)
            for path, operations in schema["paths"].items()
            for method in operations
            if method in {"get", "post", "put", "patch", "delete"}
        }
        assert listed == ENDPOINTS
        # Every endpoint but the token endpoint needs the bearer token.
        assert schema["components"]["securitySchemes"]["BearerAuth"]["scheme"] == "bearer"
        token_op = schema["paths"]["/api/v1/auth/token"]["post"]
        assert "security" not in token_op
        assert "security" in schema["paths"]["/api/v1/patients"]["get"]

    def test_the_openapi_schema_documents_the_request_shapes(self, db: Any) -> None:
        schema = Client().get("/api/v1/openapi.json").json()
        session_in = schema["components"]["schemas"]["SessionIn"]
        assert {"performed_at", "injections", "stimulants_avoided"} <= set(session_in["required"])
        assert "409" in schema["paths"]["/api/v1/courses/{course_id}/sessions"]["post"]["responses"]

    def test_the_docs_page_answers(self, db: Any) -> None:
        r = Client().get("/api/v1/docs")
        assert r.status_code == 200
        page = r.content.decode()
        assert "<title>mesoclinic API</title>" in page
        assert "openapi.json" in page


class OpenApiShapeTests:
    def test_the_schema_has_no_duplicate_keys(self, db) -> None:
        """Swagger UI parses the schema as YAML, which refuses a key given twice."""
        from django.test import Client

        raw = Client().get("/api/v1/openapi.json").content.decode()
        duplicates: list[str] = []

        def hook(pairs: list[tuple[str, object]]) -> dict[str, object]:
            keys = [k for k, _ in pairs]
            duplicates.extend(k for k in set(keys) if keys.count(k) > 1)
            return dict(pairs)

        json.loads(raw, object_pairs_hook=hook)
        assert duplicates == []

    def test_the_refusal_is_documented_with_its_reasons(self, db) -> None:
        from django.test import Client

        schema = Client().get("/api/v1/openapi.json").json()
        refused = schema["paths"]["/api/v1/courses/{course_id}/sessions"]["post"]["responses"][
            "409"
        ]
        ref = refused["content"]["application/problem+json"]["schema"]["$ref"].split("/")[-1]
        assert "reasons" in schema["components"]["schemas"][ref]["properties"]
