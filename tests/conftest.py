"""Shared fixtures: two clinics, staff in every role, a formulary, and an API client."""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone

from mesoclinic.accounts.models import Clinic, Membership, PractitionerLicence, User
from mesoclinic.api.models import ApiToken
from mesoclinic.formulary.models import Ingredient, Lot, Product, ProductIngredient
from mesoclinic.patients.actions import do_setup_clinic
from mesoclinic.patients.models import Patient

T = TypeVar("T")

# The calendar fixtures (cal, course, now) for every scheduling test.
pytest_plugins = ["tests.scheduling_fixtures"]


class Api:
    """A JSON client that sends a bearer token, as an API consumer would."""

    def __init__(self, token: str | None):
        self.client = Client()
        self.token = token

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(f"/api/v1{path}", params, headers=self._headers())

    def post(self, path: str, body: Any = None, raw: str | None = None) -> Any:
        data = raw if raw is not None else json.dumps(body if body is not None else {}, default=str)
        return self.client.post(
            f"/api/v1{path}", data, content_type="application/json", headers=self._headers()
        )

    def put(self, path: str, body: Any) -> Any:
        return self.client.put(
            f"/api/v1{path}",
            json.dumps(body, default=str),
            content_type="application/json",
            headers=self._headers(),
        )


def make_user(clinic: Clinic, username: str, role: str, licensed: bool = True) -> User:
    user = User.objects.create_user(username, password="pw", first_name=username.title())
    Membership.objects.create(user=user, clinic=clinic, role=role)
    if licensed:
        PractitionerLicence.objects.create(
            user=user,
            clinic=clinic,
            kind=PractitionerLicence.Kind.PHYSICIAN,
            number=f"MD-{username}",
            jurisdiction="New York",
            expires_on=dt.date.today() + dt.timedelta(days=365),
        )
    return user


def api_for(user: User) -> Api:
    membership = user.memberships.first()
    _, raw = ApiToken.issue(user, membership)
    return Api(raw)


@dataclass
class World:
    clinic: Clinic
    manager: User
    practitioner: User
    front_desk: User
    product: Product
    lot: Lot
    expired_lot: Lot
    lidocaine_product: Product
    lidocaine_lot: Lot

    def api(self, user: User) -> Api:
        return api_for(user)


def build_clinic(name: str, prefix: str, tz: str = "America/New_York") -> World:
    clinic = Clinic.objects.create(name=name, city="New York", timezone=tz, currency="USD")
    do_setup_clinic(clinic)
    manager = make_user(clinic, f"{prefix}manager", Membership.Role.MANAGER)
    practitioner = make_user(clinic, f"{prefix}practitioner", Membership.Role.PRACTITIONER)
    front_desk = make_user(clinic, f"{prefix}frontdesk", Membership.Role.FRONT_DESK, licensed=False)
    product = Product.objects.create(
        clinic=clinic,
        name=f"{prefix}Lipo mix",
        supplier="Acme Pharma",
        vial=Product.Vial.SINGLE_DOSE,
    )
    for key, conc in (("phosphatidylcholine", "50"), ("l_carnitine", "20")):
        ProductIngredient.objects.create(
            product=product,
            ingredient=Ingredient.objects.get(key=key, clinic=None),
            concentration=Decimal(conc),
        )
    lido = Product.objects.create(
        clinic=clinic,
        name=f"{prefix}Lidocaine 1%",
        supplier="Acme Pharma",
        vial=Product.Vial.MULTI_DOSE,
    )
    ProductIngredient.objects.create(
        product=lido,
        ingredient=Ingredient.objects.get(key="lidocaine", clinic=None),
        concentration=Decimal("10"),
    )
    # The clinic's own date: expiry is judged in its time zone, not the machine's.
    # The expired lot ended two days ago, so a test or session charted a few hours back, even
    # just after the clinic's midnight, is after its end.
    today = timezone.localtime(timezone.now(), clinic.tz).date()
    return World(
        clinic=clinic,
        manager=manager,
        practitioner=practitioner,
        front_desk=front_desk,
        product=product,
        lot=Lot.objects.create(
            product=product, lot_number=f"{prefix}L100", expires_on=today + dt.timedelta(days=200)
        ),
        expired_lot=Lot.objects.create(
            product=product, lot_number=f"{prefix}L-OLD", expires_on=today - dt.timedelta(days=2)
        ),
        lidocaine_product=lido,
        lidocaine_lot=Lot.objects.create(
            product=lido, lot_number=f"{prefix}LD1", expires_on=today + dt.timedelta(days=200)
        ),
    )


@pytest.fixture
def world(db: Any) -> World:
    return build_clinic("Demo Mesotherapy Clinic", "")


@pytest.fixture
def other(db: Any) -> World:
    return build_clinic("Other Clinic", "o_", tz="Europe/Paris")


@pytest.fixture
def patient(world: World) -> Patient:
    return make_ana(world)


def make_ana(world: World) -> Patient:
    return Patient.objects.create(
        clinic=world.clinic,
        first_name="Ana",
        last_name="Lopez",
        date_of_birth=dt.date(1990, 5, 17),
        email="ana@example.com",
        phone="+1 212 555 0101",
    )


def ago(**kwargs: float) -> dt.datetime:
    return timezone.now() - dt.timedelta(**kwargs)


def give_baseline(course: Any, taken_at: dt.datetime) -> Any:
    """A baseline Hexsel score on `course`, so that session 1 passes the baseline gate
    (Clinic.baseline_required). Written through the ORM on purpose: the fixtures date their
    records before the course was planned (a screening 51 h ago for a course planned now),
    which do_record_measurement rightly refuses for a real measurement."""
    from mesoclinic.courses.models import Course
    from mesoclinic.outcomes import scales
    from mesoclinic.outcomes.models import Measurement

    if not isinstance(course, Course):
        course = Course.objects.get(pk=course)
    items = {"number": 2, "depth": 2, "morphology": 2, "laxity": 1, "nurnberger_muller": 2}
    return Measurement.objects.create(
        clinic_id=course.clinic_id,
        course=course,
        kind=scales.HEXSEL,
        area=course.areas[0],
        value=Decimal(sum(items.values())),
        items=items,
        taken_at=taken_at,
        recorded_by_id=course.created_by_id,
    )


# Helpers for the API tests (test_api_*.py, test_audit.py): a course made ready for a session
# through the API itself, and the shape every error response must have.

PROBLEM_FIELDS = ("type", "title", "status", "detail")


def problem_of(response: Any, status: int) -> dict[str, Any]:
    """Assert that `response` is an RFC 9457 problem with this status, and return its body."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"] == "application/problem+json", response["Content-Type"]
    body = response.json()
    for name in PROBLEM_FIELDS:
        assert name in body, f"problem body lacks {name!r}: {body}"
    assert body["status"] == status
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def error_fields(response: Any, status: int = 422) -> set[str]:
    """The fields a validation problem names."""
    body = problem_of(response, status)
    return {e["field"] for e in body.get("errors", [])}


def all_no(clinic: Clinic) -> dict[str, bool]:
    """A screening with every question of the clinic's current form answered no."""
    from mesoclinic.patients.models import ScreeningForm

    return {q["key"]: False for q in ScreeningForm.current(clinic).questions}


def iso(moment: dt.datetime) -> str:
    return moment.isoformat()


def plan_course_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "protocol": "cellulite",
        "areas": ["thighs", "buttocks"],
        "cadence_days": 7,
        "planned_sessions": 15,
    }
    body.update(changes)
    return body


def session_body(
    lot: Lot, performed_at: dt.datetime | str | None = None, **changes: Any
) -> dict[str, Any]:
    when = performed_at or ago(hours=1)
    body: dict[str, Any] = {
        "performed_at": when if isinstance(when, str) else iso(when),
        "stimulants_avoided": True,
        "numbing_cream": True,
        "injections": [{"area": "thighs", "lot": lot.pk, "volume_ml": "2.5"}],
    }
    body.update(changes)
    return body


def ready_course(api: Api, world: World, patient: Patient, **plan: Any) -> dict[str, Any]:
    """Plan a cellulite course and take it through every gate, through the API: a screening
    with every answer no, a consent for the course, and an allergy test of two injections
    given 50 h ago and read 25 h later with no reaction. Returns the course as the API shows
    it, with `allergy_test` set to the test's id."""
    course = api.post(f"/patients/{patient.pk}/courses", plan_course_body(**plan))
    assert course.status_code == 201, course.content
    course_id = course.json()["id"]
    give_baseline(course_id, ago(hours=51))
    # Dated before the allergy test: a session is judged by the records of its own time.
    screening = api.post(
        f"/patients/{patient.pk}/screenings",
        {"answers": all_no(patient.clinic), "screened_at": iso(ago(hours=51))},
    )
    assert screening.status_code == 201 and screening.json()["result"] == "eligible"
    consent = api.post(
        f"/patients/{patient.pk}/consents",
        {"signed_name": str(patient), "course": course_id, "signed_at": iso(ago(hours=51))},
    )
    assert consent.status_code == 201, consent.content
    test = api.post(
        f"/courses/{course_id}/allergy-tests",
        {
            "given_at": iso(ago(hours=50)),
            "injections": [
                {"lot": world.lot.pk, "site": "left inner forearm"},
                {"lot": world.lidocaine_lot.pk, "site": "right inner forearm"},
            ],
        },
    )
    assert test.status_code == 201, test.content
    test_id = test.json()["id"]
    reading = api.post(
        f"/allergy-tests/{test_id}/reading", {"read_at": iso(ago(hours=25)), "result": "none"}
    )
    assert reading.status_code == 200 and reading.json()["read_too_early"] is False
    out = api.get(f"/courses/{course_id}").json()
    out["allergy_test"] = test_id
    return out


@dataclass
class Scene:
    """One of everything in the `world` clinic, made through the API by its manager: a
    patient with a course ready for sessions, one session, a swelling and a follow-up."""

    world: World
    patient: Patient
    course: dict[str, Any]
    session: dict[str, Any]
    side_effect: dict[str, Any]
    follow_up: int
    appointment: int
    started: int

    def completed_course(self) -> int:
        """Another patient's course, completed ten weekly sessions ago (made on demand: most
        tests expect the scene's one course)."""
        from mesoclinic.courses.actions import do_plan_course
        from mesoclinic.courses.models import Course, Session
        from mesoclinic.protocols.models import ClinicProtocol

        other = Patient.objects.create(
            clinic=self.world.clinic,
            first_name="Cora",
            last_name="Done",
            date_of_birth=dt.date(1980, 3, 3),
        )
        done = do_plan_course(
            other,
            ClinicProtocol.current(self.world.clinic, "hair_loss"),  # type: ignore[arg-type]
            indication="hair_loss",
            areas=["scalp"],
            cadence_days=7,
            planned_sessions=10,
            user=self.world.manager,
        )
        Session.objects.bulk_create(
            Session(
                course=done,
                number=n,
                performed_at=ago(days=7 * (11 - n)),
                practitioner=self.world.practitioner,
                stimulants_avoided=True,
            )
            for n in range(1, 11)
        )
        Course.objects.filter(pk=done.pk).update(status=Course.Status.COMPLETED)
        return done.pk

    @property
    def ids(self) -> dict[str, Any]:
        return {
            "patient": self.patient.pk,
            "course": self.course["id"],
            "test": self.course["allergy_test"],
            "session": self.session["id"],
            "effect": self.side_effect["id"],
            "follow_up": self.follow_up,
            "appointment": self.appointment,
            "started": self.started,
            "practitioner": self.world.practitioner.pk,
            "product": self.world.product.pk,
            "lot": self.world.lot.pk,
        }


@pytest.fixture
def scene(world: World, patient: Patient) -> Scene:
    return build_scene(world, patient)


# Built once for a class: a class whose every test starts from the same scene (and the other
# clinic) reads it from these, through a function-scoped fixture of its own that hands each
# test a deep copy (see shared_copy). The rows are written once, in a transaction rolled back
# after the class's last test; each test still runs in a savepoint of its own (pytest-django's
# `db`), rolled back after it, so what one test writes is gone for the next, as with Django's
# TestCase.setUpTestData.


@pytest.fixture(scope="class")
def class_db(django_db_setup: Any, django_db_blocker: Any) -> Iterator[None]:
    with django_db_blocker.unblock(), transaction.atomic():
        yield
        transaction.set_rollback(True)


@pytest.fixture(scope="class")
def class_scene(class_db: None) -> Scene:
    world = build_clinic("Demo Mesotherapy Clinic", "")
    return build_scene(world, make_ana(world))


@pytest.fixture(scope="class")
def class_other(class_db: None) -> World:
    return build_clinic("Other Clinic", "o_", tz="Europe/Paris")


def shared_copy(obj: T) -> T:
    """A test's own copy of a class-scoped object, so a change a test makes to its model
    instances in memory does not reach the next test (the rows are rolled back already)."""
    return copy.deepcopy(obj)


def build_scene(world: World, patient: Patient) -> Scene:
    api = api_for(world.manager)
    course = ready_course(api, world, patient)
    session = api.post(f"/courses/{course['id']}/sessions", session_body(world.lot))
    assert session.status_code == 201, session.content
    session_id = session.json()["id"]
    swelling = api.post(
        f"/sessions/{session_id}/side-effects",
        {"kind": "swelling", "onset_at": iso(ago(minutes=30)), "grade": 1},
    )
    assert swelling.status_code == 201, swelling.content
    itching = api.post(
        f"/sessions/{session_id}/side-effects",
        {
            "kind": "other",
            "description": "Itching around the papules",
            "onset_at": iso(ago(minutes=20)),
            "grade": 1,
        },
    )
    assert itching.status_code == 201 and itching.json()["follow_up"], itching.content
    appointment, started = _calendar_scene(world, patient)
    return Scene(
        world=world,
        patient=patient,
        course=course,
        session=session.json(),
        side_effect=swelling.json(),
        follow_up=itching.json()["follow_up"],
        appointment=appointment,
        started=started,
    )


def _calendar_scene(world: World, patient: Patient) -> tuple[int, int]:
    """The clinic open and its clinicians working round the clock (so the scene does not
    depend on the time of day), a visit tomorrow and one under way."""
    from mesoclinic.scheduling.actions import do_book
    from mesoclinic.scheduling.models import Appointment, OpeningHours, WorkingHours

    day = (dt.time(0), dt.time(23, 59))
    for weekday in range(7):
        OpeningHours.objects.create(
            clinic=world.clinic, weekday=weekday, opens=day[0], closes=day[1]
        )
        for user in (world.manager, world.practitioner):
            WorkingHours.objects.create(
                clinic=world.clinic, user=user, weekday=weekday, starts=day[0], ends=day[1]
            )
    tomorrow = timezone.localtime(timezone.now(), world.clinic.tz).date() + dt.timedelta(days=1)
    at_ten = dt.datetime.combine(tomorrow, dt.time(10), tzinfo=world.clinic.tz)
    booked = do_book(
        patient,
        kind="review",
        practitioner=world.practitioner,
        starts_at=at_ten,
        ends_at=at_ten + dt.timedelta(minutes=20),
        user=world.front_desk,
    )
    # Ten minutes ago, but never before the clinic's midnight, so it is on today's calendar.
    now = timezone.now()
    midnight = dt.datetime.combine(
        timezone.localtime(now, world.clinic.tz).date(), dt.time(0), tzinfo=world.clinic.tz
    )
    began = max(now - dt.timedelta(minutes=10), midnight)
    started = Appointment.objects.create(
        clinic=world.clinic,
        patient=patient,
        kind="review",
        practitioner=world.manager,
        starts_at=began,
        ends_at=began + dt.timedelta(minutes=20),
    )
    return booked.pk, started.pk
