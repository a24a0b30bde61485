"""Every endpoint of the JSON API: what it answers, who may call it, and that one clinic never
sees another's data.

The first part checks all endpoints at once from two tables: the role each needs (a caller with
a lesser role gets 403) and its tenancy (a caller from the `other` clinic gets 404 for this
clinic's objects; lists and creations are checked by the isolation tests further down). The
rest goes endpoint by endpoint, asserting the fields of each answer.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent, Membership, User
from mesoclinic.courses.models import AllergyTest, Course, FollowUp, Session, SideEffect
from mesoclinic.formulary.models import Ingredient, Lot, Product, ProductIngredient
from mesoclinic.patients.models import Allergy, Consent, Patient, Screening, ScreeningForm
from mesoclinic.protocols.models import ClinicProtocol
from mesoclinic.scheduling.models import Appointment
from tests.conftest import (
    Api,
    Scene,
    World,
    ago,
    all_no,
    api_for,
    error_fields,
    give_baseline,
    iso,
    plan_course_body,
    problem_of,
    ready_course,
    session_body,
    shared_copy,
)

S002 = "002_fa4d881737f3a5fe.txt"
S004 = "004_775ed0aecb2fac00.txt"


def call(api: Api, method: str, path: str, body: Any = None) -> Any:
    if method == "GET":
        return api.get(path)
    if method == "PUT":
        return api.put(path, body)
    if method == "PATCH":
        return api.client.patch(
            f"/api/v1{path}", body, content_type="application/json", headers=api._headers()
        )
    return api.post(path, body)


def cellulite_document(world: World) -> dict[str, Any]:
    current = ClinicProtocol.current(world.clinic, "cellulite")
    assert current is not None
    return copy.deepcopy(current.document)


def make_patient(world: World, first: str, last: str, **extra: Any) -> Patient:
    extra.setdefault("date_of_birth", dt.date(1985, 1, 1))
    return Patient.objects.create(clinic=world.clinic, first_name=first, last_name=last, **extra)


def patient_login() -> User:
    """A user with no staff membership, such as a patient who has their own login."""
    return User.objects.create_user("patient-login", password="pw")


# The endpoints, each with a call that its allowed roles can make successfully, the role it
# needs, and how its tenancy is tested ("404": another clinic's caller gets 404 for these ids;
# otherwise the name of the isolation test that covers it).

MANAGER, CLINICAL, ALL_STAFF = "manager", "clinical", "all staff"
# Money: the front desk and managers; not practitioners.
MONEY = "money"
FORBIDDEN = {
    MANAGER: ("practitioner", "front_desk"),
    CLINICAL: ("front_desk",),
    ALL_STAFF: ("no_membership",),
    MONEY: ("practitioner", "no_membership"),
}
ALLOWED = {
    MANAGER: "manager",
    CLINICAL: "practitioner",
    ALL_STAFF: "front_desk",
    MONEY: "front_desk",
}

Body = Callable[[Scene], Any]


def _none(sc: Scene) -> None:
    return None


ENDPOINTS: list[tuple[str, str, Body, str, str]] = [
    ("GET", "/patients/{patient}/photo-consents", _none, CLINICAL, "404"),
    (
        "POST",
        "/patients/{patient}/photo-consents",
        lambda sc: {"purpose": "clinical", "granted": True},
        CLINICAL,
        "404",
    ),
    ("GET", "/courses/{course}/photos", _none, CLINICAL, "404"),
    ("GET", "/protocols", _none, ALL_STAFF, "test_protocol_lists_show_only_the_clinics_versions"),
    (
        "GET",
        "/protocols/{key}",
        _none,
        ALL_STAFF,
        "test_protocol_lists_show_only_the_clinics_versions",
    ),
    (
        "PUT",
        "/protocols/{key}",
        lambda sc: {"document": cellulite_document(sc.world), "change_note": "copy"},
        MANAGER,
        "test_a_protocol_edit_stays_in_its_clinic",
    ),
    (
        "POST",
        "/patients",
        lambda sc: {"first_name": "Bo", "last_name": "Berg", "date_of_birth": "1985-02-03"},
        ALL_STAFF,
        "test_patients_are_created_and_found_in_the_callers_clinic_only",
    ),
    (
        "GET",
        "/patients?q=Lopez",
        _none,
        ALL_STAFF,
        "test_patients_are_created_and_found_in_the_callers_clinic_only",
    ),
    ("GET", "/patients/{patient}", _none, ALL_STAFF, "404"),
    (
        "POST",
        "/patients/{patient}/allergies",
        lambda sc: {"ingredient": "caffeine", "reaction": "palpitations"},
        CLINICAL,
        "404",
    ),
    ("GET", "/screening-form", _none, ALL_STAFF, "test_the_screening_form_is_the_clinics_own"),
    (
        "POST",
        "/patients/{patient}/screenings",
        lambda sc: {"answers": all_no(sc.world.clinic)},
        CLINICAL,
        "404",
    ),
    ("GET", "/patients/{patient}/consent-text", _none, CLINICAL, "404"),
    (
        "POST",
        "/patients/{patient}/consents",
        lambda sc: {"signed_name": "Ana Lopez", "course": sc.course["id"]},
        CLINICAL,
        "404",
    ),
    ("POST", "/patients/{patient}/courses", lambda sc: plan_course_body(), CLINICAL, "404"),
    ("GET", "/courses/{course}", _none, ALL_STAFF, "404"),
    ("POST", "/courses/{course}/stop", lambda sc: {"reason": "moved away"}, CLINICAL, "404"),
    (
        "POST",
        "/courses/{course}/allergy-tests",
        lambda sc: {
            "given_at": iso(ago(hours=3)),
            "injections": [
                {"lot": sc.world.lot.pk, "site": "left forearm"},
                {"lot": sc.world.lidocaine_lot.pk, "site": "right forearm"},
            ],
        },
        CLINICAL,
        "404",
    ),
    (
        "POST",
        "/allergy-tests/{test}/reading",
        lambda sc: {"read_at": iso(ago(hours=1)), "result": "none"},
        CLINICAL,
        "404",
    ),
    ("GET", "/courses/{course}/session-check", _none, CLINICAL, "404"),
    (
        "POST",
        "/courses/{course}/sessions",
        lambda sc: session_body(
            sc.world.lot,
            ago(minutes=30),
            override_codes=["interval_too_short"],
            override_reason="The patient travels next week.",
        ),
        CLINICAL,
        "404",
    ),
    ("GET", "/sessions/{session}", _none, ALL_STAFF, "404"),
    (
        "POST",
        "/sessions/{session}/side-effects",
        lambda sc: {"kind": "bruising", "onset_at": iso(ago(minutes=10)), "grade": 1},
        CLINICAL,
        "404",
    ),
    (
        "POST",
        "/side-effects/{effect}/resolve",
        lambda sc: {"resolved_at": iso(ago(minutes=5))},
        CLINICAL,
        "404",
    ),
    ("GET", "/follow-ups", _none, CLINICAL, "test_follow_ups_are_listed_for_their_clinic_only"),
    (
        "POST",
        "/follow-ups/{follow_up}/close",
        lambda sc: {"outcome": "Called the patient; it settled."},
        CLINICAL,
        "404",
    ),
    ("GET", "/ingredients", _none, ALL_STAFF, "test_ingredients_include_only_the_clinics_own"),
    ("GET", "/products", _none, ALL_STAFF, "test_products_and_lots_stay_in_their_clinic"),
    (
        "POST",
        "/products",
        lambda sc: {
            "name": "Caffeine mix",
            "supplier": "Acme Pharma",
            "vial": "single",
            "components": [{"ingredient": "caffeine", "concentration": "5"}],
        },
        MANAGER,
        "test_products_and_lots_stay_in_their_clinic",
    ),
    (
        "POST",
        "/products/{product}/lots",
        lambda sc: {"lot_number": "NEW-1", "expires_on": dt.date.today() + dt.timedelta(days=90)},
        MANAGER,
        "404",
    ),
    ("GET", "/lots", _none, ALL_STAFF, "test_products_and_lots_stay_in_their_clinic"),
    ("POST", "/lots/{lot}/recall", lambda sc: {"reason": "Supplier notice 12"}, MANAGER, "404"),
    ("GET", "/lots/{lot}/patients", _none, CLINICAL, "404"),
    ("GET", "/lots/{lot}/stock", _none, ALL_STAFF, "404"),
    ("POST", "/lots/{lot}/stock", lambda sc: {"kind": "received", "vials": 5}, MANAGER, "404"),
    ("POST", "/lots/{lot}/vials", _none, CLINICAL, "404"),
    ("POST", "/vials/{vial}/close", lambda sc: {"reason": "used_up"}, CLINICAL, "404"),
    ("GET", "/stock", _none, MANAGER, "test_the_stock_and_its_value_are_the_clinics_own"),
    ("GET", "/prices", _none, MONEY, "test_prices_and_the_daily_close_are_the_clinics_own"),
    (
        "POST",
        "/prices",
        lambda sc: {"kind": "fee", "name": "No-show fee", "amount": "50"},
        MANAGER,
        "test_prices_and_the_daily_close_are_the_clinics_own",
    ),
    ("GET", "/patients/{patient}/account", _none, MONEY, "404"),
    (
        "POST",
        "/patients/{patient}/invoices",
        lambda sc: {"lines": [{"description": "Consultation", "unit_amount": "80"}]},
        MONEY,
        "404",
    ),
    (
        "POST",
        "/courses/{course}/packages",
        lambda sc: {"sessions": 10, "price": "4500"},
        MONEY,
        "404",
    ),
    ("GET", "/invoices/{invoice}", _none, MONEY, "404"),
    (
        "POST",
        "/invoices/{invoice}/payments",
        lambda sc: {"amount": "10", "method": "cash"},
        MONEY,
        "404",
    ),
    (
        "POST",
        "/invoices/{invoice}/credit-notes",
        lambda sc: {"amount": "10", "reason": "Goodwill"},
        MANAGER,
        "404",
    ),
    (
        "POST",
        "/payments/{payment}/refunds",
        lambda sc: {"amount": "5", "reason": "Change"},
        MANAGER,
        "404",
    ),
    (
        "POST",
        "/courses/{course}/quotes",
        lambda sc: {"kind": "package", "package_price": "4500"},
        MONEY,
        "404",
    ),
    ("GET", "/quotes/{quote}", _none, MONEY, "404"),
    (
        "POST",
        "/quotes/{quote}/accept",
        lambda sc: {"signed_name": "Ana Lopez", "text_sha256": _latest_quote_hash()},
        MONEY,
        "404",
    ),
    ("POST", "/appointments/{missed}/fee", _none, MONEY, "404"),
    ("POST", "/packages/{package}/settle", _none, MANAGER, "404"),
    ("GET", "/payment-policy", _none, MONEY, "test_the_payment_policy_is_the_clinics_own"),
    (
        "PUT",
        "/payment-policy",
        lambda sc: {
            "deposit_percent": "20",
            "quote_valid_days": 30,
            "late_cancel_hours": 48,
            "late_cancel_fee": "50",
            "no_show_fee": "100",
            "package_refund": "pro_rata",
        },
        MANAGER,
        "test_the_payment_policy_is_the_clinics_own",
    ),
    (
        "GET",
        "/reports/daily-close",
        _none,
        MANAGER,
        "test_prices_and_the_daily_close_are_the_clinics_own",
    ),
    (
        "GET",
        "/reports/revenue?start=2026-01-01&end=2026-12-31",
        _none,
        MANAGER,
        "test_revenue_is_the_clinics_own",
    ),
    (
        "GET",
        "/appointments?start=2026-01-01T00:00:00Z&end=2026-02-01T00:00:00Z",
        _none,
        ALL_STAFF,
        "test_appointments_are_listed_for_their_clinic_only",
    ),
    (
        "POST",
        "/appointments",
        lambda sc: {
            "patient": sc.patient.pk,
            "kind": "review",
            "practitioner": sc.world.practitioner.pk,
            "starts_at": iso(_tomorrow_at(sc, 15)),
            "ends_at": iso(_tomorrow_at(sc, 15) + dt.timedelta(minutes=20)),
        },
        ALL_STAFF,
        "404",
    ),
    ("GET", "/appointments/{appointment}", _none, ALL_STAFF, "404"),
    ("POST", "/appointments/{appointment}/cancel", lambda sc: {"reason": "ill"}, ALL_STAFF, "404"),
    ("POST", "/appointments/{started}/no-show", _none, ALL_STAFF, "404"),
    ("POST", "/appointments/{started}/arrived", _none, ALL_STAFF, "404"),
    (
        "POST",
        "/appointments/{appointment}/move",
        lambda sc: {"starts_at": iso(_tomorrow_at(sc, 16))},
        ALL_STAFF,
        "404",
    ),
    ("POST", "/courses/{course}/booking", lambda sc: {"dry_run": True}, ALL_STAFF, "404"),
    ("GET", "/courses/{done_course}/maintenance", _none, ALL_STAFF, "404"),
    ("POST", "/courses/{done_course}/maintenance", _none, ALL_STAFF, "404"),
    (
        "GET",
        "/calendar/next-free?practitioner={practitioner}",
        _none,
        ALL_STAFF,
        "test_the_calendar_knows_only_the_clinics_practitioners",
    ),
    (
        "GET",
        "/calendar/cadence-flags",
        _none,
        ALL_STAFF,
        "test_cadence_flags_are_the_clinics_own",
    ),
    ("GET", "/courses/{course}/measurements", _none, ALL_STAFF, "404"),
    (
        "POST",
        "/courses/{course}/measurements",
        lambda sc: {"kind": "weight", "value": 70, "taken_at": iso(timezone.now())},
        CLINICAL,
        "404",
    ),
    (
        "POST",
        "/courses/{course}/visits",
        lambda sc: {
            "taken_at": iso(timezone.now()),
            "measurements": [{"kind": "circumference", "site": "waist", "value": 80}],
        },
        CLINICAL,
        "404",
    ),
    ("GET", "/courses/{course}/progress", _none, ALL_STAFF, "404"),
    (
        "POST",
        "/adverse-events",
        lambda sc: {
            "session": sc.session["id"],
            "kind": "pigmentation_change",
            "ctcae_grade": 1,
            "onset_at": iso(timezone.now()),
        },
        CLINICAL,
        "test_adverse_events_stay_in_their_clinic",
    ),
    ("GET", "/adverse-events", _none, CLINICAL, "test_adverse_events_stay_in_their_clinic"),
    ("GET", "/adverse-events/{event}", _none, CLINICAL, "404"),
    ("PATCH", "/adverse-events/{event}", lambda sc: {"actions_taken": "Seen"}, CLINICAL, "404"),
    ("GET", "/courses/{course}/watch", _none, CLINICAL, "404"),
    ("GET", "/safety/alerts", _none, MANAGER, "test_safety_alerts_stay_in_their_clinic"),
    ("GET", "/safety/alerts/{alert}", _none, MANAGER, "404"),
    ("POST", "/safety/alerts/{alert}/acknowledge", _none, MANAGER, "404"),
    ("POST", "/safety/alerts/{alert}/close", lambda sc: {"note": "Reviewed"}, MANAGER, "404"),
    (
        "POST",
        "/safety/alerts/{alert}/recall",
        lambda sc: {"reason": "Supplier notice"},
        MANAGER,
        "404",
    ),
    (
        "POST",
        "/safety/surveil",
        lambda sc: {"dry_run": True},
        MANAGER,
        "test_safety_alerts_stay_in_their_clinic",
    ),
    ("GET", "/analytics", _none, MANAGER, "test_analytics_counts_only_the_callers_clinic"),
]


def _tomorrow_at(sc: Scene, hour: int) -> dt.datetime:
    tz = sc.world.clinic.tz
    tomorrow = timezone.localtime(timezone.now(), tz).date() + dt.timedelta(days=1)
    return dt.datetime.combine(tomorrow, dt.time(hour), tzinfo=tz)


def _adverse_event(sc: Scene) -> int:
    """A serious adverse event after the scene's session (made on demand)."""
    from mesoclinic.safety.actions import do_report_adverse_event

    session = Session.objects.select_related("course__clinic").get(pk=sc.session["id"])
    return do_report_adverse_event(
        session,
        kind="pigmentation_change",
        ctcae_grade=1,
        onset_at=timezone.now(),
        user=sc.world.practitioner,
    ).pk


def _alert(sc: Scene) -> int:
    """An open CUSUM alert on the scene's lot (made on demand, as surveillance would)."""
    from mesoclinic.safety.models import SafetyAlert

    lot = sc.world.lot
    return SafetyAlert.objects.create(
        clinic=sc.world.clinic,
        method=SafetyAlert.Method.CUSUM,
        subject=SafetyAlert.Subject.LOT,
        lot=lot,
        subject_key=f"lot:{lot.pk}",
        sessions=20,
        adverse_sessions=4,
        baseline_rate=0.01,
        statistic=6.1,
        threshold=5.5,
        message=f"{lot}: 4 sessions with an adverse event in 20",
    ).pk


def _invoice(sc: Scene) -> Any:
    """An invoice of 100 to the scene's patient (made on demand)."""
    from mesoclinic.billing import actions as billing

    line = billing.LineInput("Session, one area", Decimal("100"), Decimal("0"))
    return billing.issue_invoice(sc.patient, [line], user=sc.world.front_desk)


def _payment(sc: Scene) -> int:
    """A cash payment of 50 against a new invoice (made on demand)."""
    from mesoclinic.billing import actions as billing

    return billing.record_payment(_invoice(sc), Decimal("50"), "cash", user=sc.world.front_desk).pk


def _quote(sc: Scene) -> int:
    """A quote of the scene's course as a package (made on demand)."""
    from mesoclinic.billing import quotes

    course = Course.objects.get(pk=sc.ids["course"])
    return quotes.issue(
        course, kind="package", user=sc.world.front_desk, package_price=Decimal("4500")
    ).pk


def _latest_quote_hash() -> str:
    from mesoclinic.billing.models import Quote

    return Quote.objects.latest("pk").text_sha256


def _missed(sc: Scene) -> int:
    """A missed visit of the scene's patient, under terms with a no-show fee accepted before."""
    from mesoclinic.billing.models import PolicyAcceptance

    PolicyAcceptance.objects.create(
        clinic=sc.world.clinic,
        patient=sc.patient,
        text="Terms",
        text_sha256="0" * 64,
        late_cancel_hours=48,
        late_cancel_fee=Decimal("0"),
        no_show_fee=Decimal("80"),
        currency=sc.world.clinic.currency,
        accepted_at=ago(days=10),
    )
    starts = ago(days=2)
    return Appointment.objects.create(
        clinic=sc.world.clinic,
        patient=sc.patient,
        kind="session",
        practitioner=sc.world.practitioner,
        starts_at=starts,
        ends_at=starts + dt.timedelta(minutes=45),
        status="no_show",
        no_show_at=starts,
    ).pk


def _package(sc: Scene) -> int:
    """A package of the scene's course, whose course then stopped (made on demand)."""
    from mesoclinic.billing import packages

    course = Course.objects.get(pk=sc.ids["course"])
    package = packages.sell(course, 10, Decimal("4000"), user=sc.world.front_desk)
    Course.objects.filter(pk=course.pk).update(status="stopped")
    return package.pk


def _vial(sc: Scene) -> int:
    """A vial of the scene's lot, opened on demand."""
    from mesoclinic.formulary import stock

    return stock.open_vial(sc.world.lot, user=sc.world.practitioner).pk


def _path(template: str, sc: Scene) -> str:
    ids = sc.ids
    if "{alert}" in template:
        ids["alert"] = _alert(sc)
    if "{done_course}" in template:
        ids["done_course"] = sc.completed_course()
    if "{event}" in template:
        ids["event"] = _adverse_event(sc)
    if "{vial}" in template:
        ids["vial"] = _vial(sc)
    if "{invoice}" in template:
        ids["invoice"] = _invoice(sc).pk
    if "{payment}" in template:
        ids["payment"] = _payment(sc)
    if "{quote}" in template:
        ids["quote"] = _quote(sc)
    if "{missed}" in template:
        ids["missed"] = _missed(sc)
    if "{package}" in template:
        ids["package"] = _package(sc)
    return template.format(key="cellulite", **ids)


def _user(world: World, who: str) -> User:
    if who == "no_membership":
        return patient_login()
    return {
        "manager": world.manager,
        "practitioner": world.practitioner,
        "front_desk": world.front_desk,
    }[who]


ROLE_CASES = [
    pytest.param(method, path, body, who, id=f"{method} {path} as {who}")
    for method, path, body, need, _ in ENDPOINTS
    for who in FORBIDDEN[need]
]
ALLOWED_CASES = [
    pytest.param(method, path, body, ALLOWED[need], id=f"{method} {path} as {ALLOWED[need]}")
    for method, path, body, need, _ in ENDPOINTS
]
CLINIC_CASES = [
    pytest.param(method, path, body, id=f"{method} {path}")
    for method, path, body, _, tenancy in ENDPOINTS
    if tenancy == "404"
]


class EndpointAccessTests:
    # Every test here starts from the same scene and other clinic: they are built once for the
    # class (tests.conftest.class_scene), each test getting its own copy in its own savepoint.
    @pytest.fixture
    def scene(self, class_scene: Scene, db: Any) -> Scene:
        return shared_copy(class_scene)

    @pytest.fixture
    def other(self, class_other: World, db: Any) -> World:
        return shared_copy(class_other)

    def test_the_tables_cover_every_endpoint(self, db: Any) -> None:
        schema = Client().get("/api/v1/openapi.json").json()
        served = {
            (method.upper(), path.removeprefix("/api/v1"))
            for path, operations in schema["paths"].items()
            for method in operations
        }
        served.discard(("POST", "/auth/token"))  # covered by test_api_auth.py
        # Starting a card payment online needs the card provider's server on loopback:
        # tests/test_quotes.py::OnlineTests covers its roles and tenancy.
        served.discard(("POST", "/invoices/{invoice_id}/checkout"))
        # A caller's own tokens, and the manager's audit trail, are covered, roles and tenancy
        # alike, by tests/test_tokens.py and tests/test_audit_viewer.py.
        served -= {
            ("POST", "/auth/logout"),
            ("GET", "/auth/tokens"),
            ("DELETE", "/auth/tokens/{token_id}"),
            ("GET", "/audit"),
        }
        # The manager's staff list and a member's licences: tests/test_staff.py::StaffApiTests.
        served -= {("GET", "/staff"), ("GET", "/staff/{membership_id}/licences")}
        # A multipart upload, an image (not JSON) and the manager's marketing list are covered,
        # roles and tenancy alike, by tests/test_photos.py::PhotoApiTests.
        served -= {
            ("POST", "/courses/{course_id}/photos"),
            ("GET", "/photos/{photo_id}/image"),
            ("GET", "/photos/marketing"),
        }
        renamed = {
            "{patient}": "{patient_id}",
            "{course}": "{course_id}",
            "{test}": "{test_id}",
            "{session}": "{session_id}",
            "{effect}": "{effect_id}",
            "{follow_up}": "{follow_up_id}",
            "{product}": "{product_id}",
            "{lot}": "{lot_id}",
            "{appointment}": "{appointment_id}",
            "{started}": "{appointment_id}",
            "{done_course}": "{course_id}",
            "{event}": "{event_id}",
            "{alert}": "{alert_id}",
            "{vial}": "{vial_id}",
            "{invoice}": "{invoice_id}",
            "{payment}": "{payment_id}",
            "{quote}": "{quote_id}",
            "{missed}": "{appointment_id}",
            "{package}": "{package_id}",
        }
        tabled = set()
        for method, path, _, _, tenancy in ENDPOINTS:
            path = path.split("?")[0]
            for short, long in renamed.items():
                path = path.replace(short, long)
            tabled.add((method, path))
            if tenancy != "404":
                assert hasattr(EndpointIsolationTests, tenancy), tenancy
        assert tabled == served

    @pytest.mark.parametrize(("method", "path", "body"), [c.values[:3] for c in ALLOWED_CASES])
    def test_the_role_it_needs_may_call_it(
        self, scene: Scene, method: str, path: str, body: Body
    ) -> None:
        # The control for the wrong-role table: the least role allowed gets a 2xx.
        need = next(n for m, p, _, n, _ in ENDPOINTS if (m, p) == (method, path))
        api = api_for(_user(scene.world, ALLOWED[need]))
        r = call(api, method, _path(path, scene), body(scene))
        assert r.status_code in (200, 201), (r.status_code, r.content[:400])
        assert r["Content-Type"].startswith("application/json")

    @pytest.mark.parametrize(("method", "path", "body", "who"), ROLE_CASES)
    def test_a_lesser_role_is_forbidden(
        self, scene: Scene, method: str, path: str, body: Body, who: str
    ) -> None:
        api = api_for(_user(scene.world, who))
        path = _path(path, scene)
        events = AuditEvent.objects.count()
        r = call(api, method, path, body(scene))
        detail = problem_of(r, 403)["detail"]
        if who == "no_membership":
            assert detail == "This account is not a member of a clinic."
        else:
            role = str(Membership.Role(who).label).lower()
            assert detail.startswith(f"Your role ({role}) may not do this; it needs: ")
            assert "_" not in detail, "a role is named in words, not by its key"
        assert AuditEvent.objects.count() == events, "a refused call must change nothing"

    @pytest.mark.parametrize(("method", "path", "body"), CLINIC_CASES)
    def test_another_clinic_gets_404_for_this_clinics_objects(
        self, scene: Scene, other: World, method: str, path: str, body: Body
    ) -> None:
        api = api_for(other.manager)
        path = _path(path, scene)
        events = AuditEvent.objects.count()
        r = call(api, method, path, body(scene))
        assert problem_of(r, 404)["title"] == "Not found"
        assert AuditEvent.objects.count() == events, "a refused call must change nothing"


class EndpointIsolationTests:
    def test_the_stock_and_its_value_are_the_clinics_own(self, scene: Scene, other: World) -> None:
        from mesoclinic.formulary import stock

        stock.receive(scene.world.lot, 3, user=scene.world.manager, vial_cost=Decimal("7"))
        mine = api_for(scene.world.manager).get("/stock").json()
        # The allergy test and the session opened two of the three vials: one unopened vial at
        # $7.00, and the 9.90 and 7.50 mL left in the open ones at $0.70 a mL.
        assert mine["value"] == "19.18"
        theirs = api_for(other.manager).get("/stock").json()
        assert [p["name"] for p in theirs["products"]] == ["o_Lidocaine 1%", "o_Lipo mix"]
        assert theirs["value"] == "0.00"

    def test_prices_and_the_daily_close_are_the_clinics_own(
        self, scene: Scene, other: World
    ) -> None:
        from mesoclinic.billing.models import PriceItem

        PriceItem.objects.create(clinic=other.clinic, kind="fee", name="Theirs", amount=1)
        _payment(scene)
        mine = api_for(scene.world.manager)
        assert [p["name"] for p in mine.get("/prices").json()] == []
        r = mine.post("/prices", {"kind": "fee", "name": "Theirs", "amount": "2"})
        assert r.status_code == 201  # the other clinic's name does not clash
        theirs = api_for(other.manager).get("/reports/daily-close").json()
        assert theirs["taken"] == "0.00" and theirs["invoiced"] == "0.00"
        assert api_for(scene.world.manager).get("/reports/daily-close").json()["taken"] == "50.00"

    def test_the_payment_policy_is_the_clinics_own(self, scene: Scene, other: World) -> None:
        body = {
            "deposit_percent": "15",
            "quote_valid_days": 20,
            "late_cancel_hours": 24,
            "late_cancel_fee": "30",
            "no_show_fee": "60",
            "package_refund": "none",
        }
        assert api_for(other.manager).put("/payment-policy", body).status_code == 200
        mine = api_for(scene.world.front_desk).get("/payment-policy").json()
        assert (mine["deposit_percent"], mine["no_show_fee"]) == ("0", "0.00")
        assert "There is no fee for a missed visit." in mine["terms"]
        theirs = api_for(other.front_desk).get("/payment-policy").json()
        assert (theirs["deposit_percent"], theirs["package_refund"]) == ("15", "none")

    def test_revenue_is_the_clinics_own(self, scene: Scene, other: World) -> None:
        _payment(scene)
        theirs = api_for(other.manager).get("/reports/revenue").json()
        assert theirs["total"] == "0.00" and theirs["rows"] == []
        mine = api_for(scene.world.manager).get("/reports/revenue").json()
        assert mine["total"] != "0.00" and mine["rows"]

    """Lists show only the caller's clinic, and creations land in the caller's clinic."""

    def test_appointments_are_listed_for_their_clinic_only(
        self, scene: Scene, other: World
    ) -> None:
        tz = scene.world.clinic.tz
        today = timezone.localtime(timezone.now(), tz).date()
        start = dt.datetime.combine(today, dt.time(0), tzinfo=tz)
        window = {"start": iso(start), "end": iso(start + dt.timedelta(days=3))}
        ours = api_for(scene.world.front_desk).get("/appointments", **window).json()
        assert {a["id"] for a in ours} == {scene.appointment, scene.started}
        assert api_for(other.front_desk).get("/appointments", **window).json() == []

    def test_the_calendar_knows_only_the_clinics_practitioners(
        self, scene: Scene, other: World
    ) -> None:
        path = f"/calendar/next-free?practitioner={scene.world.practitioner.pk}"
        refused = problem_of(api_for(other.front_desk).get(path), 422)
        assert refused["errors"][0]["field"] == "practitioner"
        assert api_for(scene.world.front_desk).get(path).json()["starts_at"]

    def test_cadence_flags_are_the_clinics_own(self, scene: Scene, other: World) -> None:
        from mesoclinic.scheduling.actions import do_mark_no_show
        from mesoclinic.scheduling.models import Appointment

        started = Appointment.objects.get(pk=scene.started)
        Appointment.objects.filter(pk=started.pk).update(
            course_id=scene.course["id"], kind="session"
        )
        started.refresh_from_db()
        do_mark_no_show(started, user=scene.world.front_desk)
        ours = api_for(scene.world.front_desk).get("/calendar/cadence-flags").json()
        assert [f["course"] for f in ours] == [scene.course["id"]]
        assert api_for(other.front_desk).get("/calendar/cadence-flags").json() == []

    def test_protocol_lists_show_only_the_clinics_versions(
        self, world: World, other: World
    ) -> None:
        doc = cellulite_document(world)
        doc["sessions"]["choose"] = "general"
        assert (
            api_for(world.manager).put("/protocols/cellulite", {"document": doc}).status_code == 200
        )
        theirs = api_for(other.front_desk)
        listed = {p["key"]: p["version"] for p in theirs.get("/protocols").json()}
        assert listed["cellulite"] == 1
        one = theirs.get("/protocols/cellulite").json()
        assert one["version"] == 1
        assert [v["version"] for v in one["versions"]] == [1]
        mine = api_for(world.front_desk).get("/protocols/cellulite").json()
        assert [v["version"] for v in mine["versions"]] == [2, 1]

    def test_a_protocol_edit_stays_in_its_clinic(self, world: World, other: World) -> None:
        doc = cellulite_document(other)
        doc["price_per_session"]["value"] = {"min": 300, "max": 400, "currency": "EUR"}
        r = api_for(other.manager).put("/protocols/cellulite", {"document": doc})
        assert r.status_code == 200 and r.json()["version"] == 2
        assert ClinicProtocol.current(world.clinic, "cellulite").version == 1  # type: ignore[union-attr]
        plan = api_for(world.practitioner).post(
            f"/patients/{make_patient(world, 'Cy', 'Cole').pk}/courses", plan_course_body()
        )
        assert plan.json()["plan"]["cost"]["per_session_min"] == 500

    def test_patients_are_created_and_found_in_the_callers_clinic_only(
        self, world: World, other: World, patient: Patient
    ) -> None:
        body = {"first_name": "Ana", "last_name": "Lopez", "date_of_birth": "1990-05-17"}
        theirs = api_for(other.front_desk)
        created = theirs.post("/patients", body)
        assert created.status_code == 201
        assert Patient.objects.get(pk=created.json()["id"]).clinic == other.clinic
        mine = api_for(world.front_desk).get("/patients", q="Lopez").json()
        assert [p["id"] for p in mine] == [patient.pk]
        assert [p["id"] for p in theirs.get("/patients").json()] == [created.json()["id"]]

    def test_the_screening_form_is_the_clinics_own(self, world: World, other: World) -> None:
        form = ScreeningForm.current(world.clinic)
        document = copy.deepcopy(form.document)
        document["questions"].append(
            {"key": "recent_surgery", "text": "Surgery in the last month?", "when_yes": "caution"}
        )
        ScreeningForm.objects.create(clinic=world.clinic, version=2, document=document)
        mine = api_for(world.front_desk).get("/screening-form").json()
        theirs = api_for(other.front_desk).get("/screening-form").json()
        assert mine["version"] == 2
        assert "recent_surgery" in {q["key"] for q in mine["questions"]}
        assert theirs["version"] == 1
        assert "recent_surgery" not in {q["key"] for q in theirs["questions"]}

    def test_adverse_events_stay_in_their_clinic(self, scene: Scene, other: World) -> None:
        body = {
            "session": scene.session["id"],
            "kind": "pigmentation_change",
            "ctcae_grade": 1,
            "onset_at": iso(timezone.now()),
        }
        created = api_for(scene.world.practitioner).post("/adverse-events", body)
        assert created.status_code == 201
        assert api_for(other.manager).post("/adverse-events", body).status_code == 404
        assert api_for(other.manager).get("/adverse-events").json() == []
        mine = api_for(scene.world.manager).get("/adverse-events").json()
        assert [e["id"] for e in mine] == [created.json()["id"]]

    def test_safety_alerts_stay_in_their_clinic(self, scene: Scene, other: World) -> None:
        alert = _alert(scene)
        mine = api_for(scene.world.manager).get("/safety/alerts").json()
        assert [a["id"] for a in mine] == [alert]
        assert api_for(other.manager).get("/safety/alerts").json() == []
        # A run started by the other clinic's manager reads the other clinic only.
        run = api_for(other.manager).post("/safety/surveil", {"dry_run": True})
        assert run.status_code == 200, run.content
        assert run.json()["sessions"] == 0

    def test_analytics_counts_only_the_callers_clinic(self, scene: Scene, other: World) -> None:
        ours = api_for(scene.world.manager).get("/analytics").json()
        theirs = api_for(other.manager).get("/analytics").json()
        assert ours["courses"] >= 1
        assert theirs["courses"] == 0

    def test_follow_ups_are_listed_for_their_clinic_only(self, scene: Scene, other: World) -> None:
        assert len(api_for(scene.world.practitioner).get("/follow-ups").json()) == 1
        assert api_for(other.practitioner).get("/follow-ups").json() == []
        assert api_for(other.practitioner).get("/follow-ups", status="all").json() == []

    def test_ingredients_include_only_the_clinics_own(self, world: World, other: World) -> None:
        Ingredient.objects.create(
            clinic=world.clinic,
            key="house_extract",
            name="House extract",
            klass="plant_extract",
            fda_status=Ingredient.Status.UNAPPROVED,
            reference="Clinic's own entry.",
        )
        mine = {i["key"] for i in api_for(world.front_desk).get("/ingredients").json()}
        theirs = {i["key"] for i in api_for(other.front_desk).get("/ingredients").json()}
        assert "house_extract" in mine
        assert "house_extract" not in theirs
        assert {"phosphatidylcholine", "lidocaine"} <= mine & theirs

    def test_products_and_lots_stay_in_their_clinic(self, world: World, other: World) -> None:
        theirs = api_for(other.manager)
        # A product name is unique per clinic, so the other clinic may reuse this one's.
        created = theirs.post(
            "/products",
            {
                "name": "Lipo mix",
                "supplier": "Other supplier",
                "vial": "multi",
                "components": [{"ingredient": "caffeine", "concentration": "2"}],
            },
        )
        assert created.status_code == 201, created.content
        assert Product.objects.get(pk=created.json()["id"]).clinic == other.clinic
        mine = api_for(world.front_desk)
        products = {p["id"]: p["supplier"] for p in mine.get("/products").json()}
        assert products == {
            world.product.pk: "Acme Pharma",
            world.lidocaine_product.pk: "Acme Pharma",
        }
        lots = {lot["id"] for lot in mine.get("/lots").json()}
        assert lots == {world.lot.pk, world.expired_lot.pk, world.lidocaine_lot.pk}
        assert theirs.get("/lots", number="L100").json() == []


class ProtocolEndpointTests:
    def test_it_lists_the_clinics_protocols_with_their_facts(self, world: World) -> None:
        r = api_for(world.front_desk).get("/protocols")
        assert r.status_code == 200
        by_key = {p["key"]: p for p in r.json()}
        assert set(by_key) == {"cellulite", "facial_rejuvenation", "hair_loss", "localized_fat"}
        cellulite = by_key["cellulite"]
        assert cellulite["name"] == "Cellulite (body)"
        assert cellulite["version"] == 1
        assert cellulite["indications"] == ["cellulite"]
        assert {"hips", "buttocks", "thighs"} <= set(cellulite["areas"])
        assert cellulite["sessions"] == {"min": 15, "max": 20}
        assert cellulite["cadence_days"] == [7, 14]
        assert cellulite["document"]["price_per_session"]["source"] == [S002]

    def test_it_shows_one_protocol_with_its_versions(self, world: World) -> None:
        r = api_for(world.practitioner).get("/protocols/cellulite")
        assert r.status_code == 200
        body = r.json()
        assert body["key"] == "cellulite"
        assert len(body["versions"]) == 1
        assert body["versions"][0]["version"] == 1
        # The note says where the version came from in words, never by its file's name.
        assert body["versions"][0]["change_note"].startswith(
            "Installed from mesoclinic's standard protocols"
        )
        assert ".toml" not in body["versions"][0]["change_note"]

    def test_it_answers_404_for_an_unknown_protocol(self, world: World) -> None:
        api = api_for(world.manager)
        assert "nope" in problem_of(api.get("/protocols/nope"), 404)["detail"]
        r = api.put("/protocols/nope", {"document": cellulite_document(world)})
        problem_of(r, 404)
        assert not ClinicProtocol.objects.filter(key="nope").exists()

    def test_an_edit_creates_version_2_and_a_planned_course_keeps_version_1(
        self, world: World, patient: Patient
    ) -> None:
        api = api_for(world.manager)
        before = api.post(f"/patients/{patient.pk}/courses", plan_course_body()).json()
        assert before["protocol_version"] == 1

        doc = cellulite_document(world)
        doc["sessions"]["choose"] = "general"
        note = "We follow 000, 001 and 003: 10 to 15 sessions."
        r = api.put("/protocols/cellulite", {"document": doc, "change_note": note})
        assert r.status_code == 200, r.content
        assert r.json()["version"] == 2
        assert r.json()["sessions"] == {"min": 10, "max": 15}
        assert r.json()["document"]["sessions"]["choose"] == "general"

        versions = api.get("/protocols/cellulite").json()["versions"]
        assert [(v["version"], v["change_note"]) for v in versions][0] == (2, note)

        kept = api.get(f"/courses/{before['id']}").json()
        assert kept["protocol_version"] == 1
        assert kept["sessions_planned"] == 15
        assert len(kept["plan"]["sessions"]) == 15

        after = api.post(f"/patients/{patient.pk}/courses", plan_course_body(planned_sessions=12))
        assert after.status_code == 201, after.content
        assert after.json()["protocol_version"] == 2
        too_many = api.post(
            f"/patients/{patient.pk}/courses", plan_course_body(planned_sessions=16)
        )
        assert error_fields(too_many) == {"planned_sessions"}

    @pytest.mark.parametrize(
        ("edit", "field"),
        [
            (lambda d: d.pop("insurance"), "document.insurance"),
            (lambda d: d.update(key="cellulite_v2"), "document.key"),
            (
                lambda d: d["sessions"]["options"]["general"]["value"].update(min=30),
                "document.sessions.options.general.value",
            ),
            (
                lambda d: d["price_per_session"].update(value="cheap"),
                "document.price_per_session.value",
            ),
            (lambda d: d.update(overridable=["lot_recalled"]), "document.overridable"),
        ],
        ids=["missing", "other key", "min above max", "wrong type", "never overridable"],
    )
    def test_it_refuses_a_malformed_document_naming_the_field(
        self, world: World, edit: Callable[[dict[str, Any]], Any], field: str
    ) -> None:
        doc = cellulite_document(world)
        edit(doc)
        r = api_for(world.manager).put("/protocols/cellulite", {"document": doc})
        assert field in error_fields(r)
        assert ClinicProtocol.objects.filter(clinic=world.clinic, key="cellulite").count() == 1

    def test_it_refuses_an_overlong_change_note(self, world: World) -> None:
        r = api_for(world.manager).put(
            "/protocols/cellulite",
            {"document": cellulite_document(world), "change_note": "n" * 301},
        )
        assert error_fields(r) == {"change_note"}
        assert ClinicProtocol.objects.filter(clinic=world.clinic, key="cellulite").count() == 1

    def test_a_protocol_without_indications_is_refused_by_name(self, world: World) -> None:
        doc = cellulite_document(world)
        doc["indications"]["value"] = []
        r = api_for(world.manager).put("/protocols/cellulite", {"document": doc})
        assert "document.indications.value" in error_fields(r)
        assert ClinicProtocol.objects.filter(clinic=world.clinic, key="cellulite").count() == 1

    def test_it_refuses_an_absurd_allergy_wait(self, world: World) -> None:
        doc = cellulite_document(world)
        doc["allergy_test"]["wait_hours"]["value"] = 10**30
        r = api_for(world.manager).put("/protocols/cellulite", {"document": doc})
        assert "document.allergy_test.wait_hours.value" in error_fields(r)


class PatientEndpointTests:
    def test_it_records_the_patients_agreement_to_text_messages(self, world: World) -> None:
        api = api_for(world.front_desk)
        base = {"first_name": "Ana", "date_of_birth": "1990-05-17"}
        agreed = api.post(
            "/patients",
            {**base, "last_name": "Agrees", "phone": "+1 212 555 0100", "sms_consent": True},
        )
        assert agreed.status_code == 201, agreed.content
        assert agreed.json()["sms_consent"] is True and agreed.json()["sms_consent_at"]
        stored = Patient.objects.get(pk=agreed.json()["id"])
        assert stored.sms_consent and stored.sms_consent_at is not None
        silent = api.post("/patients", {**base, "last_name": "Silent", "phone": "+1 212 555 0199"})
        assert silent.status_code == 201, silent.content
        assert (silent.json()["sms_consent"], silent.json()["sms_consent_at"]) == (False, None)

    def test_it_creates_a_patient(self, world: World) -> None:
        r = api_for(world.front_desk).post(
            "/patients",
            {
                "first_name": "  Zoë ",
                "last_name": "Ñúñez-Łukasz 李",
                "date_of_birth": "1988-11-30",
                "sex": "female",
                "email": "zoe@example.org",
                "phone": "+33 (1) 42-68.53.00",
                "address": "1 rue de Rivoli, Paris",
            },
        )
        assert r.status_code == 201, r.content
        body = r.json()
        assert body["first_name"] == "Zoë"
        assert body["last_name"] == "Ñúñez-Łukasz 李"
        assert body["date_of_birth"] == "1988-11-30"
        assert (body["sex"], body["email"], body["phone"]) == (
            "female",
            "zoe@example.org",
            "+33 (1) 42-68.53.00",
        )
        assert body["allergies"] == body["consents"] == body["courses"] == []
        assert body["latest_screening"] is None
        assert Patient.objects.get(pk=body["id"]).clinic == world.clinic

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"first_name": "   "}, "first_name"),
            ({"last_name": ""}, "last_name"),
            ({"date_of_birth": str(dt.date.today() + dt.timedelta(days=1))}, "date_of_birth"),
            ({"date_of_birth": "1850-01-01"}, "date_of_birth"),
            ({"email": "not-an-email"}, "email"),
            ({"email": "ana@"}, "email"),
            ({"phone": "call me maybe"}, "phone"),
            ({"phone": "12"}, "phone"),
            ({"sex": "x"}, "sex"),
        ],
        ids=[
            "blank first name",
            "empty last name",
            "future birth",
            "birth before 1900",
            "bad email",
            "email without domain",
            "phone in words",
            "short phone",
            "unknown sex",
        ],
    )
    def test_it_refuses_bad_patient_input_naming_the_field(
        self, world: World, change: dict[str, str], field: str
    ) -> None:
        body = {"first_name": "Ana", "last_name": "Lopez", "date_of_birth": "1990-05-17"}
        body.update(change)
        r = api_for(world.front_desk).post("/patients", body)
        assert error_fields(r) == {field}
        assert field in problem_of(r, 422)["detail"]
        assert not Patient.objects.exists()

    @pytest.mark.parametrize(
        "q",
        ["Lopez", "lop", "ana", "Ana Lopez", "555 0101", "+1 212", "ANA@EXAMPLE.COM", "1990-05-17"],
    )
    def test_it_finds_a_patient_by_name_phone_email_or_date_of_birth(
        self, world: World, other: World, patient: Patient, q: str
    ) -> None:
        make_patient(world, "Bea", "Smith", email="bea@example.net", phone="+1 646 555 0199")
        # The same person registered at the other clinic must not appear.
        Patient.objects.create(
            clinic=other.clinic,
            first_name="Ana",
            last_name="Lopez",
            date_of_birth=patient.date_of_birth,
            email="ana@example.com",
            phone="+1 212 555 0101",
        )
        r = api_for(world.front_desk).get("/patients", q=q)
        assert r.status_code == 200
        assert r.json() == [
            {
                "id": patient.pk,
                "first_name": "Ana",
                "last_name": "Lopez",
                "date_of_birth": "1990-05-17",
                "phone": "+1 212 555 0101",
                "email": "ana@example.com",
            }
        ]

    def test_a_search_without_a_match_is_empty_and_without_a_query_lists_all(
        self, world: World, patient: Patient
    ) -> None:
        bea = make_patient(world, "Bea", "Smith")
        api = api_for(world.front_desk)
        assert api.get("/patients", q="zzz").json() == []
        assert api.get("/patients", q="1991-05-17").json() == []
        # Ordered by last name.
        assert [p["id"] for p in api.get("/patients").json()] == [patient.pk, bea.pk]

    def test_it_shows_a_chart_with_allergies_screening_consents_and_courses(
        self, scene: Scene
    ) -> None:
        api = api_for(scene.world.practitioner)
        assert (
            api.post(
                f"/patients/{scene.patient.pk}/allergies",
                {"ingredient": "caffeine", "reaction": "palpitations"},
            ).status_code
            == 201
        )
        r = api_for(scene.world.front_desk).get(f"/patients/{scene.patient.pk}")
        assert r.status_code == 200
        body = r.json()
        assert (body["id"], body["first_name"], body["last_name"]) == (
            scene.patient.pk,
            "Ana",
            "Lopez",
        )
        assert body["allergies"] == [
            {"ingredient": "caffeine", "name": "Caffeine", "reaction": "palpitations"}
        ]
        assert body["latest_screening"]["result"] == "eligible"
        assert body["latest_screening"]["reasons"] == []
        [consent] = body["consents"]
        assert (consent["template_version"], consent["signed_name"], consent["method"]) == (
            1,
            "Ana Lopez",
            "typed",
        )
        assert body["courses"] == [
            {"id": scene.course["id"], "protocol": "cellulite", "status": "active"}
        ]

    def test_it_records_an_allergy(self, world: World, patient: Patient) -> None:
        api = api_for(world.practitioner)
        r = api.post(
            f"/patients/{patient.pk}/allergies", {"ingredient": "lidocaine", "reaction": "hives"}
        )
        assert r.status_code == 201
        assert r.json()["ingredient"] == "lidocaine"
        assert r.json()["reaction"] == "hives"
        # Recording it again updates the reaction instead of adding a second row.
        again = api.post(
            f"/patients/{patient.pk}/allergies", {"ingredient": "lidocaine", "reaction": "rash"}
        )
        assert again.json()["id"] == r.json()["id"]
        assert list(Allergy.objects.values_list("reaction", flat=True)) == ["rash"]

    def test_it_refuses_an_unknown_ingredient_or_an_overlong_reaction(
        self, world: World, patient: Patient
    ) -> None:
        api = api_for(world.practitioner)
        r = api.post(f"/patients/{patient.pk}/allergies", {"ingredient": "unobtainium"})
        assert error_fields(r) == {"ingredient"}
        r = api.post(
            f"/patients/{patient.pk}/allergies", {"ingredient": "caffeine", "reaction": "x" * 201}
        )
        assert error_fields(r) == {"reaction"}
        assert not Allergy.objects.exists()

    def test_an_allergy_blocks_every_lot_that_contains_it(self, scene: Scene) -> None:
        api = api_for(scene.world.practitioner)
        api.post(f"/patients/{scene.patient.pk}/allergies", {"ingredient": "l_carnitine"})
        r = api.get(
            f"/courses/{scene.course['id']}/session-check",
            performed_at=iso(ago(seconds=1) + dt.timedelta(days=7)),
            lots=f"{scene.world.lot.pk},{scene.world.lidocaine_lot.pk}",
        )
        reasons = r.json()["reasons"]
        assert [x["code"] for x in reasons] == ["ingredient_allergy"]
        assert "L-carnitine" in reasons[0]["message"]


class ScreeningEndpointTests:
    def test_it_shows_the_screening_form(self, world: World) -> None:
        r = api_for(world.front_desk).get("/screening-form")
        assert r.status_code == 200
        body = r.json()
        assert body["version"] == 1
        questions = {q["key"]: q["when_yes"] for q in body["questions"]}
        assert questions["pregnant"] == "hard_stop"
        assert questions["keloid_history"] == "caution"
        assert body["age"] == {"minimum_years": 18, "when_below": "hard_stop"}

    def test_all_no_is_eligible(self, world: World, patient: Patient) -> None:
        r = api_for(world.practitioner).post(
            f"/patients/{patient.pk}/screenings", {"answers": all_no(world.clinic)}
        )
        assert r.status_code == 201
        body = r.json()
        assert (body["result"], body["reasons"], body["form_version"]) == ("eligible", [], 1)
        assert Screening.objects.get(pk=body["id"]).screened_by == world.practitioner

    def test_a_caution_is_eligible_with_caution(self, world: World, patient: Patient) -> None:
        answers = all_no(world.clinic) | {"keloid_history": True}
        r = api_for(world.practitioner).post(
            f"/patients/{patient.pk}/screenings", {"answers": answers}
        )
        assert r.json()["result"] == "caution"
        assert [x["question"] for x in r.json()["reasons"]] == ["keloid_history"]

    def test_a_hard_stop_is_ineligible_and_blocks_the_session(self, scene: Scene) -> None:
        api = api_for(scene.world.practitioner)
        answers = all_no(scene.world.clinic) | {"pregnant": True, "keloid_history": True}
        r = api.post(f"/patients/{scene.patient.pk}/screenings", {"answers": answers})
        assert r.status_code == 201
        assert r.json()["result"] == "ineligible"
        assert {(x["question"], x["outcome"]) for x in r.json()["reasons"]} == {
            ("pregnant", "hard_stop"),
            ("keloid_history", "caution"),
        }
        later = ago(hours=1) + dt.timedelta(days=7)
        check = api.get(f"/courses/{scene.course['id']}/session-check", performed_at=iso(later))
        assert [x["code"] for x in check.json()["reasons"]] == ["screening_hard_stop"]

    def test_a_patient_under_18_is_ineligible(self, world: World) -> None:
        today = dt.date.today()
        minor = make_patient(
            world, "Kim", "Young", date_of_birth=today.replace(year=today.year - 17)
        )
        r = api_for(world.practitioner).post(
            f"/patients/{minor.pk}/screenings", {"answers": all_no(world.clinic)}
        )
        assert r.json()["result"] == "ineligible"
        assert r.json()["reasons"][0]["question"] == "age"

    @pytest.mark.parametrize(
        ("change", "fields"),
        [
            (lambda a: a.pop("pregnant"), {"answers.pregnant"}),
            (lambda a: a.update(favourite_colour=False), {"answers.favourite_colour"}),
            (lambda a: a.update(pregnant="no"), {"answers.pregnant"}),
            (lambda a: a.update(pregnant=0), {"answers.pregnant"}),
            (lambda a: a.update(pregnant=None), {"answers.pregnant"}),
            (
                lambda a: (a.pop("breastfeeding"), a.update(keloid_history="yes")),
                {"answers.breastfeeding", "answers.keloid_history"},
            ),
        ],
        ids=["missing", "unknown", "string", "number", "null", "two at once"],
    )
    def test_it_refuses_bad_answers_naming_each(
        self,
        world: World,
        patient: Patient,
        change: Callable[[dict[str, Any]], Any],
        fields: set[str],
    ) -> None:
        answers: dict[str, Any] = all_no(world.clinic)
        change(answers)
        r = api_for(world.practitioner).post(
            f"/patients/{patient.pk}/screenings", {"answers": answers}
        )
        assert error_fields(r) == fields
        assert not Screening.objects.exists()


class ConsentEndpointTests:
    def test_the_preview_states_each_ingredients_status_and_never_an_approval_it_lacks(
        self, world: World, patient: Patient
    ) -> None:
        api = api_for(world.practitioner)
        course = api.post(f"/patients/{patient.pk}/courses", plan_course_body()).json()
        r = api.get(f"/patients/{patient.pk}/consent-text", course=course["id"])
        assert r.status_code == 200
        body = r.json()
        assert body["template_version"] == 1
        assert sorted(body["products"]) == sorted([world.product.pk, world.lidocaine_product.pk])
        text = body["text"]
        assert "Lipo mix (supplier: Acme Pharma)" in text
        assert "Lidocaine 1% (supplier: Acme Pharma)" in text
        for component in ProductIngredient.objects.filter(product__clinic=world.clinic):
            assert component.ingredient.name in text
        pc_line = next(line for line in text.splitlines() if "Phosphatidylcholine" in line)
        assert "Not approved by the FDA." in pc_line
        assert "FDA-approved for this use" not in text
        assert "No mesotherapy mixture is approved by the FDA." in text
        assert "off-label" in next(line for line in text.splitlines() if "L-carnitine" in line)

    def test_the_preview_says_approved_only_for_the_approved_use(
        self, world: World, patient: Patient
    ) -> None:
        # Deoxycholic acid is approved for submental (chin) fat only: the contrast case.
        kybella = Product.objects.create(
            clinic=world.clinic, name="Deoxycholate", supplier="Acme Pharma", vial="single"
        )
        ProductIngredient.objects.create(
            product=kybella,
            ingredient=Ingredient.objects.get(key="deoxycholic_acid", clinic=None),
            concentration=10,
        )
        api = api_for(world.practitioner)
        chin = api.post(
            f"/patients/{patient.pk}/courses",
            plan_course_body(protocol="localized_fat", areas=["chin"], planned_sessions=10),
        )
        thighs = api.post(
            f"/patients/{patient.pk}/courses",
            plan_course_body(protocol="localized_fat", areas=["thighs"], planned_sessions=10),
        )
        assert chin.status_code == thighs.status_code == 201, (chin.content, thighs.content)

        def status_line(course_id: int) -> str:
            text = api.get(
                f"/patients/{patient.pk}/consent-text", course=course_id, products=str(kybella.pk)
            ).json()["text"]
            assert "Lipo mix" not in text
            return next(line for line in text.splitlines() if "Deoxycholic acid" in line)

        assert "FDA-approved for this use" in status_line(chin.json()["id"])
        assert "FDA-approved for another use" in status_line(thighs.json()["id"])

    def test_the_preview_refuses_products_that_are_not_the_clinics(
        self, world: World, other: World, patient: Patient
    ) -> None:
        api = api_for(world.practitioner)
        r = api.get(f"/patients/{patient.pk}/consent-text", products=str(other.product.pk))
        assert error_fields(r) == {"products"}
        r = api.get(f"/patients/{patient.pk}/consent-text", products="one,two")
        assert error_fields(r) == {"products"}

    def test_it_records_a_signed_consent_for_the_previewed_text(
        self, world: World, patient: Patient
    ) -> None:
        api = api_for(world.practitioner)
        course = api.post(f"/patients/{patient.pk}/courses", plan_course_body()).json()
        text = api.get(f"/patients/{patient.pk}/consent-text", course=course["id"]).json()["text"]
        signed_at = ago(minutes=5)
        r = api.post(
            f"/patients/{patient.pk}/consents",
            {
                "signed_name": "Ana Lopez",
                "method": "drawn",
                "signature": "M 10 10 L 20 20",
                "signed_at": iso(signed_at),
                "course": course["id"],
            },
        )
        assert r.status_code == 201, r.content
        body = r.json()
        assert body["text_sha256"] == hashlib.sha256(text.encode()).hexdigest()
        assert (body["template_version"], body["signed_name"], body["method"]) == (
            1,
            "Ana Lopez",
            "drawn",
        )
        signed = dt.datetime.fromisoformat(body["signed_at"])
        assert abs(signed - signed_at) < dt.timedelta(milliseconds=1)
        assert sorted(body["products"]) == sorted([world.product.pk, world.lidocaine_product.pk])
        stored = Consent.objects.get(pk=body["id"])
        assert stored.text == text
        assert (stored.indication, stored.areas) == ("cellulite", ["thighs", "buttocks"])

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"method": "drawn"}, "signature"),
            ({"signed_name": "  "}, "signed_name"),
            ({"signed_at": iso(timezone.now() + dt.timedelta(hours=2))}, "signed_at"),
            ({"method": "fax"}, "method"),
        ],
        ids=["drawn without signature", "blank name", "future", "unknown method"],
    )
    def test_it_refuses_a_bad_consent_naming_the_field(
        self, world: World, patient: Patient, change: dict[str, Any], field: str
    ) -> None:
        r = api_for(world.practitioner).post(
            f"/patients/{patient.pk}/consents", {"signed_name": "Ana Lopez", **change}
        )
        assert error_fields(r) == {field}
        assert not Consent.objects.exists()

    def test_it_refuses_a_course_of_another_patient_or_clinic(
        self, world: World, other: World, patient: Patient
    ) -> None:
        api = api_for(world.practitioner)
        bea = make_patient(world, "Bea", "Smith")
        beas = api.post(f"/patients/{bea.pk}/courses", plan_course_body()).json()
        r = api.post(
            f"/patients/{patient.pk}/consents", {"signed_name": "Ana", "course": beas["id"]}
        )
        assert error_fields(r) == {"course"}
        their_patient = Patient.objects.create(
            clinic=other.clinic, first_name="O", last_name="P", date_of_birth=dt.date(1980, 1, 1)
        )
        theirs = api_for(other.practitioner).post(
            f"/patients/{their_patient.pk}/courses", plan_course_body()
        )
        r = api.post(
            f"/patients/{patient.pk}/consents",
            {"signed_name": "Ana", "course": theirs.json()["id"]},
        )
        problem_of(r, 404)
        assert not Consent.objects.exists()


class CourseEndpointTests:
    def test_it_plans_a_course_with_cost_insurance_milestones_and_maintenance(
        self, world: World, patient: Patient
    ) -> None:
        r = api_for(world.practitioner).post(
            f"/patients/{patient.pk}/courses",
            plan_course_body(first_session_on="2030-03-04", planned_sessions=15, cadence_days=7),
        )
        assert r.status_code == 201, r.content
        body = r.json()
        assert body["patient"] == patient.pk
        assert (body["protocol"], body["protocol_version"], body["indication"]) == (
            "cellulite",
            1,
            "cellulite",
        )
        assert body["areas"] == ["thighs", "buttocks"]
        assert (body["status"], body["sessions_done"], body["sessions_planned"]) == (
            "planned",
            0,
            15,
        )
        assert body["allergy_tests"] == body["sessions"] == []
        assert body["maintenance_window"] is None

        plan = body["plan"]
        assert [s["due"] for s in plan["sessions"]][:3] == [
            "2030-03-04",
            "2030-03-11",
            "2030-03-18",
        ]
        assert plan["sessions"][-1]["due"] == "2030-06-10"  # 14 weeks after the first
        cost = plan["cost"]
        assert (cost["per_session_min"], cost["per_session_max"], cost["currency"]) == (
            500,
            800,
            "USD",
        )
        assert cost["sessions"] == 15
        assert cost["total_min"] == cost["per_session_min"] * 15 == 7500
        assert cost["total_max"] == cost["per_session_max"] * 15 == 12000
        assert cost["comparison"]["amount"] == 10000
        assert [s["source"] for s in cost["sources"]] == [S002]

        assert "generally does not cover" in plan["insurance"]["text"]
        assert plan["insurance"]["sources"]
        assert all(s["label"] for s in plan["insurance"]["sources"])

        milestones = {m["key"]: m for m in plan["milestones"]}
        first = milestones["first_visible"]
        assert first["after_sessions"] == {"min": 2, "max": 3}
        assert [s["source"] for s in first["sources"]] == [S004]
        assert first["expected_by"] == "2030-03-18"  # session 3
        half = milestones["about_half"]
        assert half["improvement_percent"] == 50
        assert half["single_source"] is True
        assert [s["source"] for s in half["sources"]] == [S002]

        maintenance = plan["maintenance_window"]
        assert maintenance["every_months"] == {"min": 6, "max": 8}
        assert (maintenance["from"], maintenance["to"]) == ("2030-12-10", "2031-02-10")
        assert [s["source"] for s in maintenance["sources"]] == [S002]
        assert plan["allergy_test"]["injections"] == 2
        assert plan["allergy_test"]["wait_hours"] == 24

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"planned_sessions": 14}, "planned_sessions"),
            ({"planned_sessions": 21}, "planned_sessions"),
            ({"cadence_days": 10}, "cadence_days"),
            ({"areas": ["scalp"]}, "areas"),
            ({"areas": ["thighs", "face"]}, "areas"),
            ({"areas": []}, "areas"),
            ({"indication": "hair_loss"}, "indication"),
            ({"protocol": "tattoo_removal"}, "protocol"),
        ],
        ids=[
            "too few sessions",
            "too many sessions",
            "cadence 10",
            "area not in protocol",
            "one area not in protocol",
            "no area",
            "indication not in protocol",
            "unknown protocol",
        ],
    )
    def test_it_refuses_a_plan_outside_the_protocol_naming_the_field(
        self, world: World, patient: Patient, change: dict[str, Any], field: str
    ) -> None:
        r = api_for(world.practitioner).post(
            f"/patients/{patient.pk}/courses", plan_course_body(**change)
        )
        assert error_fields(r) == {field}
        assert not Course.objects.exists()

    def test_it_shows_a_course_to_the_front_desk(self, scene: Scene) -> None:
        r = api_for(scene.world.front_desk).get(f"/courses/{scene.course['id']}")
        assert r.status_code == 200
        body = r.json()
        assert (body["status"], body["sessions_done"]) == ("active", 1)
        [test] = body["allergy_tests"]
        assert {(i["lot_number"], i["site"]) for i in test["injections"]} == {
            ("L100", "left inner forearm"),
            ("LD1", "right inner forearm"),
        }
        assert [r["result"] for r in test["readings"]] == ["none"]
        [session] = body["sessions"]
        assert (session["id"], session["number"], session["areas"]) == (
            scene.session["id"],
            1,
            ["thighs"],
        )
        # JSON times carry milliseconds; the window keeps microseconds.
        performed = dt.datetime.fromisoformat(session["performed_at"])
        window = body["next_session_window"]
        due = dt.datetime.fromisoformat(window["due"])
        assert abs(due - performed - dt.timedelta(days=7)) < dt.timedelta(milliseconds=1)
        assert dt.datetime.fromisoformat(window["earliest"]) == due - dt.timedelta(days=2)
        assert dt.datetime.fromisoformat(window["latest"]) == due + dt.timedelta(days=2)

    def test_it_stops_a_course_once(self, scene: Scene) -> None:
        api = api_for(scene.world.practitioner)
        path = f"/courses/{scene.course['id']}/stop"
        assert error_fields(api.post(path, {"reason": "  "})) == {"reason"}
        r = api.post(path, {"reason": "The patient moved away."})
        assert r.status_code == 200
        assert r.json()["status"] == "stopped"
        assert Course.objects.get().stop_reason == "The patient moved away."
        assert error_fields(api.post(path, {"reason": "again"})) == {"status"}
        # Nothing more happens on a stopped course.
        later = session_body(scene.world.lot, ago(minutes=1), override_codes=[])
        r = api.post(f"/courses/{scene.course['id']}/sessions", later)
        assert error_fields(r) == {"course"}


class AllergyTestEndpointTests:
    def _course(self, world: World, patient: Patient) -> int:
        r = api_for(world.practitioner).post(f"/patients/{patient.pk}/courses", plan_course_body())
        return int(r.json()["id"])

    def _test_body(self, world: World, when: dt.datetime, **changes: Any) -> dict[str, Any]:
        body = {
            "given_at": iso(when),
            "injections": [
                {"lot": world.lot.pk, "site": "left forearm"},
                {"lot": world.lidocaine_lot.pk, "site": "right forearm"},
            ],
            "notes": "Both forearms.",
        }
        body.update(changes)
        return body

    def test_it_records_a_test_of_two_injections(self, world: World, patient: Patient) -> None:
        course = self._course(world, patient)
        given = ago(hours=3)
        api = api_for(world.practitioner)
        r = api.post(f"/courses/{course}/allergy-tests", self._test_body(world, given))
        assert r.status_code == 201, r.content
        body = r.json()
        assert dt.datetime.fromisoformat(body["readable_from"]) - dt.datetime.fromisoformat(
            body["given_at"]
        ) == dt.timedelta(hours=24)
        test = AllergyTest.objects.get(pk=body["id"])
        assert test.injections.count() == 2
        assert test.given_by == world.practitioner

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            (lambda w: {"injections": [{"lot": w.lot.pk, "site": "left forearm"}]}, "injections"),
            (
                lambda w: {
                    "injections": [
                        {"lot": w.lot.pk, "site": "a"},
                        {"lot": w.lot.pk, "site": "b"},
                        {"lot": w.lot.pk, "site": "c"},
                    ]
                },
                "injections",
            ),
            (lambda w: {"given_at": iso(timezone.now() + dt.timedelta(hours=1))}, "given_at"),
            (lambda w: {"given_at": "2024-03-01T10:00:00"}, "given_at"),
        ],
        ids=["one injection", "three injections", "future", "naive"],
    )
    def test_it_refuses_a_bad_test_naming_the_field(
        self,
        world: World,
        patient: Patient,
        change: Callable[[World], dict[str, Any]],
        field: str,
    ) -> None:
        course = self._course(world, patient)
        body = self._test_body(world, ago(hours=3), **change(world))
        r = api_for(world.practitioner).post(f"/courses/{course}/allergy-tests", body)
        assert error_fields(r) == {field}
        assert not AllergyTest.objects.exists()

    def test_it_refuses_another_clinics_lot(
        self, world: World, other: World, patient: Patient
    ) -> None:
        course = self._course(world, patient)
        body = self._test_body(
            world,
            ago(hours=3),
            injections=[
                {"lot": other.lot.pk, "site": "left forearm"},
                {"lot": world.lot.pk, "site": "right forearm"},
            ],
        )
        r = api_for(world.practitioner).post(f"/courses/{course}/allergy-tests", body)
        assert error_fields(r) == {"injections"}
        assert str(other.lot.pk) in problem_of(r, 422)["detail"]
        assert not AllergyTest.objects.exists()

    def test_it_refuses_an_injection_given_in_the_future(
        self, world: World, patient: Patient
    ) -> None:
        course = self._course(world, patient)
        body = self._test_body(
            world,
            ago(hours=3),
            injections=[
                {"lot": world.lot.pk, "site": "left forearm"},
                {"lot": world.lot.pk, "site": "right forearm", "given_at": iso(ago(hours=-48))},
            ],
        )
        r = api_for(world.practitioner).post(f"/courses/{course}/allergy-tests", body)
        assert r.status_code == 422
        assert not AllergyTest.objects.exists()

    def test_a_reading_before_the_wait_is_refused_and_does_not_clear_the_gate(
        self, world: World, patient: Patient
    ) -> None:
        course = self._course(world, patient)
        api = api_for(world.practitioner)
        test = api.post(f"/courses/{course}/allergy-tests", self._test_body(world, ago(hours=30)))
        early = api.post(
            f"/allergy-tests/{test.json()['id']}/reading",
            {"read_at": iso(ago(hours=20)), "result": "none"},
        )
        body = problem_of(early, 422)
        assert body["errors"][0]["field"] == "read_at"
        assert "the test can be read from" in body["errors"][0]["message"]
        check = api.get(f"/courses/{course}/session-check").json()
        assert "allergy_test_unread" in [x["code"] for x in check["reasons"]]

        late = api.post(
            f"/allergy-tests/{test.json()['id']}/reading",
            {"read_at": iso(ago(hours=5)), "result": "none", "notes": "No redness."},
        )
        assert late.json()["read_too_early"] is False
        check = api.get(f"/courses/{course}/session-check").json()
        assert "allergy_read_too_early" not in [x["code"] for x in check["reasons"]]

    def test_a_local_reaction_blocks_the_session(self, world: World, patient: Patient) -> None:
        course = self._course(world, patient)
        api = api_for(world.practitioner)
        test = api.post(f"/courses/{course}/allergy-tests", self._test_body(world, ago(hours=30)))
        r = api.post(
            f"/allergy-tests/{test.json()['id']}/reading",
            {"read_at": iso(ago(hours=5)), "result": "local"},
        )
        assert r.json()["result"] == "local"
        check = api.get(f"/courses/{course}/session-check").json()
        assert "allergy_reaction" in [x["code"] for x in check["reasons"]]

    @pytest.mark.parametrize(
        ("read_at", "field"),
        [
            (lambda: iso(timezone.now() + dt.timedelta(hours=1)), "read_at"),
            (lambda: iso(ago(hours=40)), "read_at"),
            (lambda: "2024-03-01T10:00:00", "read_at"),
        ],
        ids=["future", "before the test", "naive"],
    )
    def test_it_refuses_a_bad_reading_time(
        self, world: World, patient: Patient, read_at: Callable[[], str], field: str
    ) -> None:
        course = self._course(world, patient)
        api = api_for(world.practitioner)
        test = api.post(f"/courses/{course}/allergy-tests", self._test_body(world, ago(hours=30)))
        r = api.post(
            f"/allergy-tests/{test.json()['id']}/reading", {"read_at": read_at(), "result": "none"}
        )
        assert error_fields(r) == {field}
        assert not AllergyTest.objects.get().readings.exists()


class SessionEndpointTests:
    def test_the_check_passes_for_a_ready_course(self, world: World, patient: Patient) -> None:
        api = api_for(world.practitioner)
        course = ready_course(api, world, patient)
        r = api.get(
            f"/courses/{course['id']}/session-check",
            lots=f"{world.lot.pk},{world.lidocaine_lot.pk}",
        )
        assert r.status_code == 200
        assert r.json() == {"may_proceed": True, "reasons": []}

    def test_the_check_names_every_reason(self, world: World, patient: Patient) -> None:
        api = api_for(world.practitioner)
        course = api.post(f"/patients/{patient.pk}/courses", plan_course_body()).json()
        r = api.get(f"/courses/{course['id']}/session-check", lots=str(world.expired_lot.pk))
        body = r.json()
        assert body["may_proceed"] is False
        assert {x["code"] for x in body["reasons"]} == {
            "no_screening",
            "no_consent",
            "allergy_test_missing",
            "lot_expired",
            "no_baseline",
        }
        assert all(x["message"] for x in body["reasons"])

    def test_the_check_refuses_a_front_desk_user_as_practitioner(
        self, world: World, patient: Patient
    ) -> None:
        api = api_for(world.practitioner)
        course = api.post(f"/patients/{patient.pk}/courses", plan_course_body()).json()
        r = api.get(f"/courses/{course['id']}/session-check", practitioner=world.front_desk.pk)
        assert error_fields(r) == {"practitioner"}

    def test_it_records_a_session_with_lots_and_aftercare(
        self, world: World, patient: Patient
    ) -> None:
        api = api_for(world.practitioner)
        course = ready_course(api, world, patient)
        performed = ago(hours=2)
        body = session_body(
            world.lot,
            performed,
            injections=[
                {"area": "thighs", "lot": world.lot.pk, "volume_ml": "2.5", "technique": "papule"},
                {"area": "buttocks", "lot": world.lot.pk, "volume_ml": "1"},
            ],
            burning_minutes=15,
            notes="Tolerated well.",
        )
        r = api.post(f"/courses/{course['id']}/sessions", body)
        assert r.status_code == 201, r.content
        out = r.json()
        assert (out["course"], out["number"], out["kind"]) == (course["id"], 1, "course")
        assert out["practitioner"] == world.practitioner.pk
        assert out["areas"] == ["buttocks", "thighs"]
        assert sorted(
            (i["area"], i["lot_number"], i["product"], i["volume_ml"], i["technique"])
            for i in out["injections"]
        ) == [
            ("buttocks", "L100", "Lipo mix", "1.00", "nappage"),
            ("thighs", "L100", "Lipo mix", "2.50", "papule"),
        ]
        assert out["override_codes"] == []
        assert out["warnings"] == []
        aftercare = {a["key"]: a for a in out["aftercare"]}
        assert "no_makeup" not in aftercare  # only after a facial session
        shower = aftercare["no_hot_shower"]
        until = dt.datetime.fromisoformat(shower["until"])
        assert abs(until - (performed + dt.timedelta(hours=8))) < dt.timedelta(milliseconds=1)
        assert until.utcoffset() == world.clinic.local(performed).utcoffset()
        assert shower["sources"][0]["source"] == S004
        assert aftercare["high_protein_diet"]["until"] is None

        course_now = api.get(f"/courses/{course['id']}").json()
        assert (course_now["status"], course_now["sessions_done"]) == ("active", 1)
        session = Session.objects.get(pk=out["id"])
        assert (session.burning_minutes, session.notes, session.numbing_cream) == (
            15,
            "Tolerated well.",
            True,
        )

    def test_it_warns_when_the_patient_had_stimulants(self, world: World, patient: Patient) -> None:
        api = api_for(world.practitioner)
        course = ready_course(api, world, patient)
        r = api.post(
            f"/courses/{course['id']}/sessions",
            session_body(world.lot, stimulants_avoided=False),
        )
        assert r.status_code == 201
        assert len(r.json()["warnings"]) == 1
        assert "caffeine" in r.json()["warnings"][0]
        # The source is named by its title, never by its file.
        assert "Treat Cellulite With Mesotherapy" in r.json()["warnings"][0]
        assert "seed" not in r.json()["warnings"][0]

    def test_it_refuses_session_before_allergy_read(self, world: World, patient: Patient) -> None:
        api = api_for(world.practitioner)
        course = api.post(f"/patients/{patient.pk}/courses", plan_course_body()).json()
        give_baseline(course["id"], ago(hours=31))
        before = iso(ago(hours=31))
        api.post(
            f"/patients/{patient.pk}/screenings",
            {"answers": all_no(world.clinic), "screened_at": before},
        )
        api.post(
            f"/patients/{patient.pk}/consents",
            {"signed_name": "Ana", "course": course["id"], "signed_at": before},
        )
        api.post(
            f"/courses/{course['id']}/allergy-tests",
            {
                "given_at": iso(ago(hours=30)),
                "injections": [
                    {"lot": world.lot.pk, "site": "left forearm"},
                    {"lot": world.lot.pk, "site": "right forearm"},
                ],
            },
        )
        r = api.post(f"/courses/{course['id']}/sessions", session_body(world.lot))
        body = problem_of(r, 409)
        assert body["type"] == "/api/v1/problems/session-refused"
        assert body["title"] == "Refused"
        assert [x["code"] for x in body["reasons"]] == ["allergy_test_unread"]
        assert body["reasons"][0]["overridable"] is False
        assert body["reasons"][0]["message"] in body["detail"]
        assert not Session.objects.exists()

    def test_it_refuses_a_session_charted_before_its_allergy_test(
        self, world: World, patient: Patient
    ) -> None:
        api = api_for(world.practitioner)
        course = ready_course(api, world, patient)  # test given 50 h ago, read 25 h ago
        r = api.post(f"/courses/{course['id']}/sessions", session_body(world.lot, ago(hours=60)))
        assert r.status_code == 409
        assert not Session.objects.exists()

    def test_it_refuses_a_session_naming_every_reason(self, world: World, patient: Patient) -> None:
        api = api_for(world.practitioner)
        course = api.post(f"/patients/{patient.pk}/courses", plan_course_body()).json()
        r = api.post(f"/courses/{course['id']}/sessions", session_body(world.expired_lot))
        codes = {x["code"] for x in problem_of(r, 409)["reasons"]}
        assert codes == {
            "no_screening",
            "no_consent",
            "allergy_test_missing",
            "lot_expired",
            "no_baseline",
        }
        assert not Session.objects.exists()

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            (
                lambda w: {"performed_at": iso(timezone.now() + dt.timedelta(hours=2))},
                "performed_at",
            ),
            (lambda w: {"performed_at": "2024-03-01T10:00:00"}, "performed_at"),
            (
                lambda w: {"injections": [{"area": "arms", "lot": w.lot.pk, "volume_ml": "1"}]},
                "injections",
            ),
            (lambda w: {"injections": []}, "injections"),
            (
                lambda w: {"injections": [{"area": "thighs", "lot": w.lot.pk, "volume_ml": "0"}]},
                "injections.0.volume_ml",
            ),
            (lambda w: {"practitioner": w.front_desk.pk}, "practitioner"),
            (lambda w: {"override_codes": ["interval_too_short"]}, "override_reason"),
            (
                lambda w: {"override_codes": ["lot_expired"], "override_reason": "why not"},
                "override_codes",
            ),
        ],
        ids=[
            "future",
            "naive",
            "area not in course",
            "no injection",
            "zero volume",
            "front desk as practitioner",
            "override without reason",
            "override of an absent refusal",
        ],
    )
    def test_it_refuses_bad_session_input_naming_the_field(
        self,
        world: World,
        patient: Patient,
        change: Callable[[World], dict[str, Any]],
        field: str,
    ) -> None:
        api = api_for(world.practitioner)
        course = ready_course(api, world, patient)
        r = api.post(f"/courses/{course['id']}/sessions", session_body(world.lot, **change(world)))
        assert error_fields(r) == {field}
        if "future" in problem_of(r, 422)["detail"]:
            assert "cannot be in the future" in problem_of(r, 422)["detail"]
        assert not Session.objects.exists()

    def test_it_refuses_another_clinics_lot_or_practitioner(
        self, world: World, other: World, patient: Patient
    ) -> None:
        api = api_for(world.practitioner)
        course = ready_course(api, world, patient)
        r = api.post(f"/courses/{course['id']}/sessions", session_body(other.lot))
        assert error_fields(r) == {"injections"}
        r = api.post(
            f"/courses/{course['id']}/sessions",
            session_body(world.lot, practitioner=other.practitioner.pk),
        )
        assert error_fields(r) == {"practitioner"}
        assert not Session.objects.exists()

    def test_it_charts_for_another_practitioner_of_the_clinic(
        self, world: World, patient: Patient
    ) -> None:
        api = api_for(world.manager)
        course = ready_course(api, world, patient)
        r = api.post(
            f"/courses/{course['id']}/sessions",
            session_body(world.lot, practitioner=world.practitioner.pk),
        )
        assert r.status_code == 201
        assert r.json()["practitioner"] == world.practitioner.pk

    def test_an_override_lifts_an_overridable_refusal_and_names_who_and_why(
        self, scene: Scene
    ) -> None:
        api = api_for(scene.world.practitioner)
        path = f"/courses/{scene.course['id']}/sessions"
        soon = session_body(scene.world.lot, ago(minutes=10))
        refused = problem_of(api.post(path, soon), 409)
        assert [(x["code"], x["overridable"]) for x in refused["reasons"]] == [
            ("interval_too_short", True)
        ]
        r = api.post(
            path,
            soon | {"override_codes": ["interval_too_short"], "override_reason": "Travels soon."},
        )
        assert r.status_code == 201, r.content
        assert r.json()["override_codes"] == ["interval_too_short"]
        assert r.json()["number"] == 2
        session = Session.objects.get(pk=r.json()["id"])
        assert session.overridden_by == scene.world.practitioner
        assert session.override_reason == "Travels soon."

    def test_it_shows_a_session_to_the_front_desk(self, scene: Scene) -> None:
        r = api_for(scene.world.front_desk).get(f"/sessions/{scene.session['id']}")
        assert r.status_code == 200
        assert r.json() == scene.session


class SideEffectEndpointTests:
    def _report(self, scene: Scene, **body: Any) -> Any:
        return api_for(scene.world.practitioner).post(
            f"/sessions/{scene.session['id']}/side-effects", body
        )

    def test_an_expected_side_effect_opens_no_follow_up(self, scene: Scene) -> None:
        onset = ago(minutes=40)
        r = self._report(scene, kind="bruising", onset_at=iso(onset), grade=1)
        assert r.status_code == 201
        body = r.json()
        assert (body["session"], body["kind"], body["grade"]) == (
            scene.session["id"],
            "bruising",
            1,
        )
        assert body["status"] == "expected"
        assert body["follow_up"] is None
        assert body["resolved_at"] is None
        until = dt.datetime.fromisoformat(body["expected_until"])
        assert abs(until - (onset + dt.timedelta(days=7))) < dt.timedelta(seconds=1)

    def test_an_urgent_kind_or_grade_opens_an_urgent_follow_up(self, scene: Scene) -> None:
        infection = self._report(scene, kind="infection", onset_at=iso(ago(minutes=5)), grade=1)
        severe = self._report(scene, kind="swelling", onset_at=iso(ago(minutes=5)), grade=3)
        for r in (infection, severe):
            assert r.status_code == 201
            assert r.json()["status"] == "urgent"
            follow_up = FollowUp.objects.get(pk=r.json()["follow_up"])
            assert follow_up.priority == "urgent"
            assert follow_up.clinic == scene.world.clinic

    def test_other_needs_a_description(self, scene: Scene) -> None:
        before = SideEffect.objects.count()
        r = self._report(scene, kind="other", onset_at=iso(ago(minutes=5)), grade=1)
        assert error_fields(r) == {"description"}
        r = self._report(
            scene, kind="other", onset_at=iso(ago(minutes=5)), grade=1, description="   "
        )
        assert error_fields(r) == {"description"}
        assert SideEffect.objects.count() == before
        r = self._report(
            scene, kind="other", onset_at=iso(ago(minutes=5)), grade=2, description="Hiccups"
        )
        assert r.status_code == 201
        assert r.json()["status"] == "beyond_expected"
        assert r.json()["expected_until"] is None

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            (lambda: {"kind": "sneezing", "onset_at": iso(ago(minutes=5)), "grade": 1}, "kind"),
            (
                lambda: {
                    "kind": "swelling",
                    "onset_at": iso(timezone.now() + dt.timedelta(hours=1)),
                    "grade": 1,
                },
                "onset_at",
            ),
            (lambda: {"kind": "swelling", "onset_at": iso(ago(days=3)), "grade": 1}, "onset_at"),
            (
                lambda: {"kind": "swelling", "onset_at": "2024-03-01T10:00:00", "grade": 1},
                "onset_at",
            ),
            (
                lambda: {
                    "kind": "swelling",
                    "onset_at": iso(ago(minutes=5)),
                    "resolved_at": iso(ago(minutes=10)),
                    "grade": 1,
                },
                "resolved_at",
            ),
            (lambda: {"kind": "swelling", "onset_at": iso(ago(minutes=5)), "grade": 6}, "grade"),
        ],
        ids=[
            "unknown kind",
            "future onset",
            "onset before the session",
            "naive onset",
            "resolved before onset",
            "grade 6",
        ],
    )
    def test_it_refuses_a_bad_report_naming_the_field(
        self, scene: Scene, body: Callable[[], dict[str, Any]], field: str
    ) -> None:
        before = SideEffect.objects.count()
        assert error_fields(self._report(scene, **body())) == {field}
        assert SideEffect.objects.count() == before

    def test_resolving_late_makes_it_beyond_expected(self, scene: Scene) -> None:
        onset = ago(minutes=50)
        effect = self._report(scene, kind="discomfort", onset_at=iso(onset), grade=1).json()
        api = api_for(scene.world.practitioner)
        r = api.post(f"/side-effects/{effect['id']}/resolve", {"resolved_at": iso(ago(minutes=5))})
        assert r.status_code == 200
        body = r.json()
        assert body["status"] == "beyond_expected"  # discomfort lasts 15 min (seed 002)
        assert body["resolved_at"] is not None
        assert FollowUp.objects.get(pk=body["follow_up"]).priority == "routine"

    def test_resolving_in_time_keeps_it_expected(self, scene: Scene) -> None:
        api = api_for(scene.world.practitioner)
        r = api.post(
            f"/side-effects/{scene.side_effect['id']}/resolve",
            {"resolved_at": iso(ago(minutes=1))},
        )
        assert r.status_code == 200
        assert (r.json()["status"], r.json()["follow_up"]) == ("expected", None)

    @pytest.mark.parametrize(
        "resolved_at",
        [
            lambda: iso(ago(hours=2)),
            lambda: iso(timezone.now() + dt.timedelta(hours=1)),
            lambda: "2024-03-01T10:00:00",
        ],
        ids=["before onset", "future", "naive"],
    )
    def test_it_refuses_a_bad_resolution_time(
        self, scene: Scene, resolved_at: Callable[[], str]
    ) -> None:
        r = api_for(scene.world.practitioner).post(
            f"/side-effects/{scene.side_effect['id']}/resolve", {"resolved_at": resolved_at()}
        )
        assert error_fields(r) == {"resolved_at"}
        assert SideEffect.objects.get(pk=scene.side_effect["id"]).resolved_at is None


class FollowUpEndpointTests:
    def test_follow_ups_list_urgent_first(self, scene: Scene) -> None:
        # The scene opened a routine follow-up first; an urgent one opened later comes first.
        api = api_for(scene.world.practitioner)
        urgent = api.post(
            f"/sessions/{scene.session['id']}/side-effects",
            {"kind": "infection", "onset_at": iso(ago(minutes=1)), "grade": 2},
        ).json()
        r = api.get("/follow-ups")
        assert r.status_code == 200
        rows = r.json()
        assert [(f["priority"], f["side_effect"]) for f in rows] == [
            ("urgent", urgent["id"]),
            ("routine", FollowUp.objects.get(pk=scene.follow_up).side_effect_id),
        ]
        assert rows[0]["id"] == urgent["follow_up"]
        assert rows[0]["reason"] == "Infection (grade 2) is urgent"
        assert {(f["patient"], f["patient_name"], f["status"]) for f in rows} == {
            (scene.patient.pk, "Ana Lopez", "open")
        }

    def test_listing_sweeps_side_effects_that_outlast_their_expected_time(
        self, scene: Scene
    ) -> None:
        api = api_for(scene.world.practitioner)
        lingering = api.post(
            f"/sessions/{scene.session['id']}/side-effects",
            {"kind": "discomfort", "onset_at": iso(ago(minutes=50)), "grade": 1},
        ).json()
        # Reported 50 min after onset, it is already past its 15 minutes.
        assert lingering["status"] == "beyond_expected"
        assert lingering["follow_up"] is not None
        expected = api.post(
            f"/sessions/{scene.session['id']}/side-effects",
            {"kind": "burning", "onset_at": iso(ago(minutes=1)), "grade": 1},
        ).json()
        assert (expected["status"], expected["follow_up"]) == ("expected", None)
        assert expected["id"] not in {f["side_effect"] for f in api.get("/follow-ups").json()}
        # Burning is expected for 20 minutes (seed 002); half an hour later it is not.
        with time_machine.travel(timezone.now() + dt.timedelta(minutes=30), tick=False):
            rows = api.get("/follow-ups").json()
        assert expected["id"] in {f["side_effect"] for f in rows}
        assert SideEffect.objects.get(pk=expected["id"]).status == "beyond_expected"

    def test_it_closes_a_follow_up(self, scene: Scene) -> None:
        api = api_for(scene.world.practitioner)
        path = f"/follow-ups/{scene.follow_up}/close"
        assert error_fields(api.post(path, {"outcome": " "})) == {"outcome"}
        r = api.post(path, {"outcome": "Called the patient; the itching has settled."})
        assert r.status_code == 200
        assert r.json()["id"] == scene.follow_up
        assert r.json()["status"] == "done"
        assert r.json()["closed_at"] is not None
        assert api.get("/follow-ups").json() == []
        done = api.get("/follow-ups", status="all").json()
        assert [(f["id"], f["status"]) for f in done] == [(scene.follow_up, "done")]
        assert FollowUp.objects.get().closed_by == scene.world.practitioner

    def test_a_closed_follow_up_is_not_closed_again(self, scene: Scene) -> None:
        path = f"/follow-ups/{scene.follow_up}/close"
        api_for(scene.world.practitioner).post(path, {"outcome": "Called the patient."})
        again = api_for(scene.world.manager).post(path, {"outcome": "Rewritten."})
        assert again.status_code in (400, 422)
        assert again["Content-Type"] == "application/problem+json"
        assert "already closed" in again.content.decode()
        closed = FollowUp.objects.get()
        assert (closed.outcome, closed.closed_by) == (
            "Called the patient.",
            scene.world.practitioner,
        )


class FormularyEndpointTests:
    def test_it_lists_ingredients_with_their_regulatory_status(self, world: World) -> None:
        r = api_for(world.front_desk).get("/ingredients")
        assert r.status_code == 200
        by_key = {i["key"]: i for i in r.json()}
        assert by_key["phosphatidylcholine"]["fda_status"] == "unapproved"
        assert "2010" in by_key["phosphatidylcholine"]["reference"]
        assert by_key["deoxycholic_acid"]["fda_status"] == "approved_this_use"
        assert "submental" in by_key["deoxycholic_acid"]["approved_use"]
        assert by_key["lidocaine"]["class"] == "traditional_medication"

    def test_it_lists_products_with_components_and_lots(self, world: World) -> None:
        r = api_for(world.front_desk).get("/products")
        assert r.status_code == 200
        lipo = next(p for p in r.json() if p["id"] == world.product.pk)
        assert (lipo["name"], lipo["supplier"], lipo["vial"], lipo["active"]) == (
            "Lipo mix",
            "Acme Pharma",
            "single",
            True,
        )
        assert sorted((c["ingredient"], c["concentration"]) for c in lipo["components"]) == [
            ("l_carnitine", "20.0000"),
            ("phosphatidylcholine", "50.0000"),
        ]
        assert {lot["lot_number"] for lot in lipo["lots"]} == {"L100", "L-OLD"}

    def test_it_creates_a_product(self, world: World) -> None:
        r = api_for(world.manager).post(
            "/products",
            {
                "name": "Slim cocktail",
                "supplier": "Meso Labs",
                "vial": "multi",
                "components": [
                    {"ingredient": "caffeine", "concentration": "5", "unit": "mg/mL"},
                    {"ingredient": "l_carnitine", "concentration": "12.5"},
                ],
            },
        )
        assert r.status_code == 201, r.content
        body = r.json()
        assert (body["name"], body["supplier"], body["vial"], body["lots"]) == (
            "Slim cocktail",
            "Meso Labs",
            "multi",
            [],
        )
        assert sorted(
            (c["ingredient"], c["concentration"], c["unit"]) for c in body["components"]
        ) == [
            ("caffeine", "5.0000", "mg/mL"),
            ("l_carnitine", "12.5000", "mg/mL"),
        ]
        assert Product.objects.get(pk=body["id"]).clinic == world.clinic

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"name": "Lipo mix"}, "name"),
            (
                {
                    "components": [
                        {"ingredient": "caffeine", "concentration": "1"},
                        {"ingredient": "caffeine", "concentration": "2"},
                    ]
                },
                "components",
            ),
            ({"components": [{"ingredient": "unobtainium", "concentration": "1"}]}, "ingredient"),
            ({"components": []}, "components"),
            ({"vial": "ampoule"}, "vial"),
            (
                {
                    "components": [
                        {"ingredient": "caffeine", "concentration": "1", "unit": "u" * 21}
                    ]
                },
                "components.0.unit",
            ),
        ],
        ids=[
            "name taken",
            "ingredient twice",
            "unknown ingredient",
            "no component",
            "unknown vial",
            "overlong unit",
        ],
    )
    def test_it_refuses_a_bad_product_naming_the_field(
        self, world: World, change: dict[str, Any], field: str
    ) -> None:
        body = {
            "name": "Slim cocktail",
            "supplier": "Meso Labs",
            "vial": "single",
            "components": [{"ingredient": "caffeine", "concentration": "5"}],
        }
        body.update(change)
        r = api_for(world.manager).post("/products", body)
        assert error_fields(r) == {field}
        assert Product.objects.filter(clinic=world.clinic).count() == 2

    def test_it_receives_a_lot_once(self, world: World) -> None:
        api = api_for(world.manager)
        expires = dt.date.today() + dt.timedelta(days=120)
        r = api.post(
            f"/products/{world.product.pk}/lots",
            {"lot_number": "L200", "expires_on": str(expires), "received_on": "2025-01-02"},
        )
        assert r.status_code == 201, r.content
        body = r.json()
        assert (body["product"], body["lot_number"], body["expires_on"], body["received_on"]) == (
            world.product.pk,
            "L200",
            str(expires),
            "2025-01-02",
        )
        assert (body["recalled"], body["recall_reason"]) == (False, "")
        again = api.post(
            f"/products/{world.product.pk}/lots", {"lot_number": "L200", "expires_on": str(expires)}
        )
        assert error_fields(again) == {"lot_number"}
        assert Lot.objects.filter(lot_number="L200").count() == 1

    def test_it_finds_a_lot_by_its_number(self, world: World) -> None:
        api = api_for(world.front_desk)
        every = api.get("/lots").json()
        assert {(lot["lot_number"], lot["product_name"]) for lot in every} == {
            ("L100", "Lipo mix"),
            ("L-OLD", "Lipo mix"),
            ("LD1", "Lidocaine 1%"),
        }
        found = api.get("/lots", number=" l100 ").json()
        assert [lot["id"] for lot in found] == [world.lot.pk]
        assert api.get("/lots", number="L1").json() == []


class LotTraceEndpointTests:
    def _exposed_patients(self, world: World, patient: Patient) -> Patient:
        """Ana gets the lot in a session; Bea only in her allergy test."""
        api = api_for(world.practitioner)
        course = ready_course(api, world, patient)
        assert (
            api.post(f"/courses/{course['id']}/sessions", session_body(world.lot)).status_code
            == 201
        )
        bea = make_patient(world, "Bea", "Berg", phone="+1 646 555 0199", email="bea@example.net")
        beas = api.post(f"/patients/{bea.pk}/courses", plan_course_body()).json()
        api.post(
            f"/courses/{beas['id']}/allergy-tests",
            {
                "given_at": iso(ago(hours=2)),
                "injections": [
                    {"lot": world.lot.pk, "site": "left forearm"},
                    {"lot": world.lidocaine_lot.pk, "site": "right forearm"},
                ],
            },
        )
        return bea

    def test_it_lists_the_patients_who_received_a_lot(self, world: World, patient: Patient) -> None:
        bea = self._exposed_patients(world, patient)
        r = api_for(world.practitioner).get(f"/lots/{world.lot.pk}/patients")
        assert r.status_code == 200
        body = r.json()
        assert body["lot"]["lot_number"] == "L100"
        rows = body["patients"]
        # Sorted by last name: Berg, Lopez.
        assert [(p["id"], p["phone"], p["email"]) for p in rows] == [
            (bea.pk, "+1 646 555 0199", "bea@example.net"),
            (patient.pk, "+1 212 555 0101", "ana@example.com"),
        ]
        assert [e["kind"] for e in rows[0]["exposures"]] == ["allergy_test"]
        assert rows[0]["exposures"][0]["site"] == "left forearm"
        kinds = sorted(e["kind"] for e in rows[1]["exposures"])
        assert kinds == ["allergy_test", "session"]
        session = next(e for e in rows[1]["exposures"] if e["kind"] == "session")
        assert (session["area"], session["volume_ml"]) == ("thighs", "2.50")
        # A lot nobody received lists nobody.
        r = api_for(world.practitioner).get(f"/lots/{world.expired_lot.pk}/patients")
        assert r.json()["patients"] == []

    def test_a_recall_returns_the_affected_patients_and_blocks_the_lot(
        self, world: World, patient: Patient
    ) -> None:
        bea = self._exposed_patients(world, patient)
        r = api_for(world.manager).post(
            f"/lots/{world.lot.pk}/recall", {"reason": "Supplier reports contamination."}
        )
        assert r.status_code == 200, r.content
        body = r.json()
        assert (body["id"], body["recalled"], body["recall_reason"]) == (
            world.lot.pk,
            True,
            "Supplier reports contamination.",
        )
        assert [(p["id"], p["first_name"], p["last_name"]) for p in body["patients"]] == [
            (bea.pk, "Bea", "Berg"),
            (patient.pk, "Ana", "Lopez"),
        ]
        assert all(p["phone"] and p["email"] and p["exposures"] for p in body["patients"])
        lot = Lot.objects.get(pk=world.lot.pk)
        assert lot.recalled_by == world.manager

        # A recalled lot can never be used again, not even with an override.
        api = api_for(world.practitioner)
        course = Course.objects.get(patient=patient)
        later = session_body(
            world.lot,
            ago(minutes=1),
            override_codes=["lot_recalled"],
            override_reason="We have nothing else.",
        )
        assert error_fields(api.post(f"/courses/{course.pk}/sessions", later)) == {"override_codes"}
        check = api.get(
            f"/courses/{course.pk}/session-check",
            performed_at=iso(ago(minutes=1) + dt.timedelta(days=7)),
            lots=str(world.lot.pk),
        ).json()
        assert [(x["code"], x["overridable"]) for x in check["reasons"]] == [
            ("lot_recalled", False)
        ]

    def test_a_recall_needs_a_reason(self, world: World) -> None:
        api = api_for(world.manager)
        for reason in ("", "   "):
            assert error_fields(api.post(f"/lots/{world.lot.pk}/recall", {"reason": reason})) == {
                "reason"
            }
        assert Lot.objects.get(pk=world.lot.pk).recalled is False


@pytest.mark.parametrize("role", [Membership.Role.MANAGER, Membership.Role.PRACTITIONER])
def test_a_manager_and_a_practitioner_both_count_as_clinical(
    world: World, patient: Patient, role: str
) -> None:
    user = world.manager if role == Membership.Role.MANAGER else world.practitioner
    r = api_for(user).post(f"/patients/{patient.pk}/courses", plan_course_body())
    assert r.status_code == 201
    assert Course.objects.get().created_by == user
