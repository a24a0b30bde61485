"""A child process for tests/test_booking_races.py: it seeds a clinic in a database that other
processes can open, or sends a batch of requests through the whole Django stack (middleware,
authentication, the API's and the web app's views) from threads that each have their own test
Client and their own database connection, all released at one moment.

Run as `python -m tests.booking_race_child <mode> <json>` with DJANGO_SETTINGS_MODULE and
DATABASE_URL set (tests/scheduling_fixtures.process_env). Modes:

- `seed`: the race clinic (tests.conftest.build_clinic with the calendar of
  tests.scheduling_fixtures), two more practitioners, a patient, a course planned and not yet
  booked, and a completed course; prints their ids and an API token for each member.
- `race`: `{"requests": [...]}`, each `{"method", "path", "body", "token" | "login"}`; prints
  "ready", waits for a line on stdin, sends every request at once, prints each response's
  status and body.
- `vials`: a clinic with two patients, each with a course ready for sessions, and one
  single-dose vial opened; prints the courses, the vial, the lot and a practitioner's token.
- `money`: a clinic with a patient, a price list item and a front-desk token.
- `quotes`: a clinic whose patient has a quote waiting, a missed visit under accepted terms,
  and an online payment waiting for the card provider's notice; prints their ids, the notice
  signed as the provider signs it, and a front-desk token.
- `smart`: a clinic with an app registered for SMART App Launch and a patient who allowed it
  twice through the authorize page: one code not yet exchanged, and a refresh token; prints
  them with the app's client id, the code's verifier and its redirect address.
- `smart_count`: the app's access tokens made from a code and from a refresh token, and its
  live refresh tokens.
- `count`: the active appointments of each course and of the patient.
- `slot`: the first free consultation time the clinic's public site offers.
- `consultations`: the active consultations, and the patients registered from the site.

A request with `"form": true` is a form posted with no login, as a visitor of the public site
posts it.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import threading
import traceback
from typing import Any

import django

django.setup()

from django.test.utils import setup_test_environment  # noqa: E402

# As the test runner does: the test client's host is allowed, and no email leaves.
setup_test_environment()

from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402

from mesoclinic.accounts.models import Membership, User  # noqa: E402
from mesoclinic.api.models import ApiToken  # noqa: E402
from mesoclinic.courses.actions import do_plan_course  # noqa: E402
from mesoclinic.courses.models import Course, Session  # noqa: E402
from mesoclinic.patients.models import Patient  # noqa: E402
from mesoclinic.protocols.models import ClinicProtocol  # noqa: E402
from mesoclinic.scheduling.models import Appointment, WorkingHours  # noqa: E402
from tests.conftest import build_clinic, make_user  # noqa: E402
from tests.scheduling_fixtures import set_up_calendar  # noqa: E402


def seed() -> dict[str, Any]:
    world = set_up_calendar(build_clinic("Race clinic", "race_"))
    clinic = world.clinic
    practitioners = [world.practitioner, world.manager]
    for name in ("race_second", "race_third"):
        user = make_user(clinic, name, Membership.Role.PRACTITIONER)
        for weekday in range(5):
            for starts, ends in ((9, 13), (14, 18)):
                WorkingHours.objects.create(
                    clinic=clinic,
                    user=user,
                    weekday=weekday,
                    starts=dt.time(starts),
                    ends=dt.time(ends),
                )
        practitioners.append(user)
    patient = Patient.objects.create(
        clinic=clinic, first_name="Ana", last_name="Lopez", date_of_birth=dt.date(1990, 5, 17)
    )
    course = do_plan_course(
        patient,
        ClinicProtocol.current(clinic, "cellulite"),  # type: ignore[arg-type]
        indication="cellulite",
        areas=["thighs", "buttocks"],
        cadence_days=7,
        planned_sessions=15,
        user=world.manager,
    )
    completed = do_plan_course(
        patient,
        ClinicProtocol.current(clinic, "hair_loss"),  # type: ignore[arg-type]
        indication="hair_loss",
        areas=["scalp"],
        cadence_days=7,
        planned_sessions=10,
        user=world.manager,
    )
    # Charted through the ORM on purpose, as tests.conftest.Scene.completed_course does: the
    # race is about the maintenance visit, not the session gates.
    now = timezone.now()
    Session.objects.bulk_create(
        Session(
            course=completed,
            number=n,
            performed_at=now - dt.timedelta(days=7 * (11 - n)),
            practitioner=world.practitioner,
            stimulants_avoided=True,
        )
        for n in range(1, 11)
    )
    Course.objects.filter(pk=completed.pk).update(status=Course.Status.COMPLETED)
    tokens = {}
    for user in [world.front_desk, *practitioners]:
        _, raw = ApiToken.issue(user, user.memberships.get(clinic=clinic))
        tokens[str(user.pk)] = raw
    return {
        "clinic": clinic.pk,
        "front_desk": world.front_desk.pk,
        "practitioners": [u.pk for u in practitioners],
        "patient": patient.pk,
        "course": course.pk,
        "completed_course": completed.pk,
        "tokens": tokens,
    }


def race(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    clients = []
    for r in requests:
        client = Client()
        if "login" in r:
            client.force_login(User.objects.get(pk=r["login"]))
        clients.append(client)
    connection.close()  # Each thread opens its own.
    results: list[dict[str, Any]] = [{} for _ in requests]
    barrier = threading.Barrier(len(requests))

    def send(i: int) -> None:
        r, client = requests[i], clients[i]
        headers = {"Authorization": f"Bearer {r['token']}"} if "token" in r else {}
        try:
            barrier.wait()
            if "raw" in r:
                response = client.generic(
                    r["method"],
                    r["path"],
                    r["raw"],
                    content_type="application/json",
                    headers=r["headers"],
                )
            elif "login" in r or r.get("form"):
                response = client.post(r["path"], r["body"])
            else:
                response = client.generic(
                    r["method"],
                    r["path"],
                    json.dumps(r["body"]),
                    content_type="application/json",
                    headers=headers,
                )
            body = response.content.decode()
            if "json" in response.get("Content-Type", ""):
                results[i] = {"status": response.status_code, "json": json.loads(body)}
            else:
                results[i] = {"status": response.status_code, "text": body}
        except Exception as exc:  # Reported to the test, which fails on it.
            results[i] = {"status": 0, "error": repr(exc), "trace": traceback.format_exc()}
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(requests))]
    print("ready", flush=True)
    sys.stdin.readline()  # Every process waits here until all are ready.
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def count(args: dict[str, Any]) -> dict[str, Any]:
    active = Appointment.objects.exclude(status__in=Appointment.INACTIVE)
    return {
        "course": active.filter(course_id=args["course"]).count(),
        "maintenance": active.filter(course_id=args["completed_course"]).count(),
        "patient": active.filter(patient_id=args["patient"]).count(),
    }


def slot(args: dict[str, Any]) -> dict[str, Any]:
    from mesoclinic.accounts.models import Clinic
    from mesoclinic.site.booking import free_slots

    clinic = Clinic.objects.get(pk=args["clinic"])
    first = free_slots(clinic)[0]
    return {"value": first.value, "slug": clinic.slug}


def consultations(args: dict[str, Any]) -> dict[str, Any]:
    active = Appointment.objects.exclude(status__in=Appointment.INACTIVE)
    return {
        "consultations": active.filter(kind=Appointment.Kind.CONSULTATION).count(),
        "visitors": Patient.objects.filter(last_name__startswith="Visitor").count(),
    }


def vials() -> dict[str, Any]:
    from mesoclinic.formulary import stock
    from tests.conftest import api_for, ready_course

    world = build_clinic("Vial race clinic", "vr_")
    courses = []
    for n in range(2):
        patient = Patient.objects.create(
            clinic=world.clinic,
            first_name="Vial",
            last_name=f"Race {n}",
            date_of_birth=dt.date(1990, 5, 17),
        )
        courses.append(ready_course(api_for(world.practitioner), world, patient)["id"])
    vial = stock.open_vial(
        world.lot, user=world.practitioner, at=timezone.now() - dt.timedelta(hours=3)
    )
    _, token = ApiToken.issue(
        world.practitioner, world.practitioner.memberships.get(clinic=world.clinic)
    )
    return {"courses": courses, "vial": vial.pk, "lot": world.lot.pk, "token": token}


def money() -> dict[str, Any]:
    from mesoclinic.billing.models import PriceItem

    world = build_clinic("Money race clinic", "mr_")
    patient = Patient.objects.create(
        clinic=world.clinic, first_name="Money", last_name="Race", date_of_birth=dt.date(1990, 1, 1)
    )
    price = PriceItem.objects.create(
        clinic=world.clinic, kind="session", name="Session, one area", amount="500"
    )
    _, token = ApiToken.issue(
        world.front_desk, world.front_desk.memberships.get(clinic=world.clinic)
    )
    return {"patient": patient.pk, "price": price.pk, "token": token, "clinic": world.clinic.pk}


def quotes() -> dict[str, Any]:
    from decimal import Decimal

    from mesoclinic.billing import actions
    from mesoclinic.billing import quotes as quoting
    from mesoclinic.billing.models import OnlineCheckout, PolicyAcceptance
    from mesoclinic.billing.policy import policy_for
    from tests.fake_stripe import FakeStripe, sign
    from tests.test_courses import plan

    world = build_clinic("Quote race clinic", "qr_")
    policy = policy_for(world.clinic)
    policy.no_show_fee = Decimal("80")
    policy.stripe_secret_key, policy.stripe_webhook_secret = "sk_test_race", "whsec_race"
    policy.save()
    patient = Patient.objects.create(
        clinic=world.clinic, first_name="Quote", last_name="Race", date_of_birth=dt.date(1990, 1, 1)
    )
    course = plan(world, patient)
    quote = quoting.issue(
        course, kind="package", user=world.front_desk, package_price=Decimal("4000")
    )
    PolicyAcceptance.objects.create(
        clinic=world.clinic,
        patient=patient,
        text="Terms",
        text_sha256="0" * 64,
        late_cancel_hours=48,
        late_cancel_fee=Decimal("0"),
        no_show_fee=Decimal("80"),
        currency="USD",
        accepted_at=timezone.now() - dt.timedelta(days=9),
    )
    missed = timezone.now() - dt.timedelta(days=2)
    visit = Appointment.objects.create(
        clinic=world.clinic,
        patient=patient,
        course=course,
        kind="session",
        practitioner=world.practitioner,
        starts_at=missed,
        ends_at=missed + dt.timedelta(minutes=45),
        status="no_show",
        no_show_at=missed,
    )
    invoice = actions.issue_invoice(
        patient, [actions.LineInput("Deposit", Decimal("500"), Decimal("0"))], user=world.manager
    )
    OnlineCheckout.objects.create(
        clinic=world.clinic,
        patient=patient,
        invoice=invoice,
        amount=Decimal("500"),
        currency="USD",
        provider_id="cs_test_race",
        url="https://checkout.stripe.com/c/pay/cs_test_race",
        created_at=timezone.now(),
        created_by=world.front_desk,
    )
    fake = FakeStripe(webhook_secret="whsec_race")
    event = fake.event(
        "checkout.session.completed",
        {
            "id": "cs_test_race",
            "object": "checkout.session",
            "amount_total": 50000,
            "currency": "usd",
            "payment_status": "paid",
            "status": "complete",
            "payment_intent": "pi_test_race",
        },
    )
    payload = fake.events[event].decode()
    _, token = ApiToken.issue(
        world.front_desk, world.front_desk.memberships.get(clinic=world.clinic)
    )
    return {
        "clinic": world.clinic.pk,
        "quote": quote.pk,
        "sha": quote.text_sha256,
        "visit": visit.pk,
        "invoice": invoice.pk,
        "payload": payload,
        "signature": sign(payload.encode(), "whsec_race"),
        "token": token,
    }


def money_count(args: dict[str, Any]) -> dict[str, Any]:
    from mesoclinic.billing.models import FeeCharge, Package, Payment, ProviderEvent

    return {
        "packages": Package.objects.filter(clinic_id=args["clinic"]).count(),
        "fees": FeeCharge.objects.filter(appointment_id=args["visit"]).count(),
        "payments": Payment.objects.filter(invoice_id=args["invoice"]).count(),
        "events": ProviderEvent.objects.filter(clinic_id=args["clinic"]).count(),
    }


def smart() -> dict[str, Any]:
    import base64
    import hashlib
    import secrets
    from urllib.parse import parse_qs, urlencode, urlsplit

    from mesoclinic.fhir import smart as smart_apps

    world = build_clinic("SMART race clinic", "sr_")
    user = User.objects.create_user("sr_patient")
    Patient.objects.create(
        clinic=world.clinic,
        first_name="Race",
        last_name="Patient",
        date_of_birth=dt.date(1985, 3, 4),
        user=user,
    )
    redirect = "https://app.example.com/callback"
    app, _ = smart_apps.register(world.clinic, world.manager, "Race App", redirect, False)
    browser = Client()
    browser.force_login(user)

    def code(verifier: str) -> str:
        challenge = hashlib.sha256(verifier.encode()).digest()
        query = urlencode(
            {
                "response_type": "code",
                "client_id": app.client_id,
                "redirect_uri": redirect,
                "scope": "patient/*.read offline_access",
                "state": "s",
                "code_challenge": base64.urlsafe_b64encode(challenge).decode().rstrip("="),
                "code_challenge_method": "S256",
            }
        )
        form = browser.get(f"/oauth/authorize/?{query}").context["form"]
        data = {f.name: f.value() or "" for f in form if f.is_hidden}
        done = browser.post(f"/oauth/authorize/?{query}", {**data, "allow": "Authorize"})
        return parse_qs(urlsplit(done["Location"]).query)["code"][0]

    first = secrets.token_urlsafe(48)
    exchanged = Client().post(
        "/oauth/token/",
        {
            "grant_type": "authorization_code",
            "code": code(first),
            "redirect_uri": redirect,
            "client_id": app.client_id,
            "code_verifier": first,
        },
    )
    verifier = secrets.token_urlsafe(48)
    return {
        "app": app.pk,
        "client_id": app.client_id,
        "redirect": redirect,
        "code": code(verifier),
        "verifier": verifier,
        "refresh_token": json.loads(exchanged.content)["refresh_token"],
    }


def smart_count(args: dict[str, Any]) -> dict[str, Any]:
    from oauth2_provider.models import AccessToken, RefreshToken

    tokens = AccessToken.objects.filter(application_id=args["app"])
    return {
        "from_codes": tokens.filter(source_refresh_token__isnull=True).count(),
        "from_refresh": tokens.filter(source_refresh_token__isnull=False).count(),
        "live_refresh": RefreshToken.objects.filter(
            application_id=args["app"], revoked__isnull=True
        ).count(),
    }


if __name__ == "__main__":
    mode, args = sys.argv[1], json.loads(sys.argv[2])
    if mode == "seed":
        out: Any = seed()
    elif mode == "race":
        out = race(args["requests"])
    elif mode == "slot":
        out = slot(args)
    elif mode == "consultations":
        out = consultations(args)
    elif mode == "vials":
        out = vials()
    elif mode == "money":
        out = money()
    elif mode == "quotes":
        out = quotes()
    elif mode == "money_count":
        out = money_count(args)
    elif mode == "smart":
        out = smart()
    elif mode == "smart_count":
        out = smart_count(args)
    else:
        out = count(args)
    print(json.dumps(out, default=str), flush=True)
