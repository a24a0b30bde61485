"""Every route the product serves, read from the URL conf and the API's OpenAPI schema, and one
object of every kind to fill their ids: shared by the authorization matrix and the read-audit
walk, so that a new route shows up in both without anyone listing it."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from mesoclinic.accounts.models import Membership, PractitionerLicence, User
from mesoclinic.api.models import ApiToken
from mesoclinic.api.views import api
from mesoclinic.outcomes import photo_actions
from mesoclinic.patients.models import Consent, Patient
from mesoclinic.reminders import links as reminder_links
from mesoclinic.reminders.models import ChangeRequest
from mesoclinic.safety import links as watch_links
from mesoclinic.safety.models import SafetyAlert, WatchPrompt
from mesoclinic.scheduling import feeds
from mesoclinic.scheduling.models import Appointment
from tests.conftest import Api, Scene, World, api_for

# The kinds of caller every route is tried with.
CALLERS = (
    "anonymous",
    "patient_own",
    "patient_other",
    "front_desk",
    "practitioner",
    "manager",
    "other_clinic",
    "deactivated",
)


def web_routes() -> list[tuple[str, str]]:
    """(route, name) of every page outside the admin and the API, from the URL conf."""

    def walk(patterns: list[Any], prefix: str) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for p in patterns:
            if isinstance(p, URLResolver):
                found = walk(p.url_patterns, prefix + str(p.pattern))
                if p.namespace == "portal":
                    # The portal's names repeat the staff's (login, course_plan_pdf).
                    found = [(route, f"portal:{name}") for route, name in found]
                out += found
            elif isinstance(p, URLPattern):
                out.append((prefix + str(p.pattern), p.name or ""))
        return out

    return [
        (route, name)
        for route, name in walk(get_resolver().url_patterns, "")
        if not route.startswith(("admin/", "api/v1/"))
    ]


def api_operations() -> list[tuple[str, str]]:
    """(method, path) of every API operation, from the OpenAPI schema."""
    schema = api.get_openapi_schema()
    return [
        (method.upper(), path.removeprefix("/api/v1"))
        for path, operations in schema["paths"].items()
        for method in operations
    ]


@dataclass
class Objects:
    """One of everything in the scene's clinic, and a caller of every kind."""

    scene: Scene
    other: World
    ids: dict[str, Any]
    users: dict[str, User | None]
    other_patient: Patient
    clients: dict[str, Client] = field(default_factory=dict)
    apis: dict[str, Api] = field(default_factory=dict)

    def web(self, who: str) -> Client:
        if who not in self.clients:
            client = Client()
            user = self.users[who]
            if user is not None:
                client.force_login(user)
            self.clients[who] = client
        return self.clients[who]

    def api(self, who: str) -> Api:
        if who not in self.apis:
            user = self.users[who]
            self.apis[who] = api_for(user) if user is not None else Api(None)
        return self.apis[who]

    def fill(self, route: str) -> str:
        """A concrete address for `route` (a URL conf route or an OpenAPI path)."""

        def one(m: re.Match[str]) -> str:
            name = m.group(1).split(":")[-1]
            if name == "token" and "feeds/" in route:
                return str(self.ids["feed_token"])
            if name == "token" and route.startswith("r/confirm"):
                return str(self.ids["confirm_token"])
            if name == "token" and route.startswith("r/change"):
                return str(self.ids["change_token"])
            if name == "token" and route.startswith("site/"):
                return str(self.ids["booked_token"])
            if name == "token" and route.startswith("w/"):
                return str(self.ids["watch_token"])
            if name == "token" and route.startswith("n/notice"):
                return str(self.ids["notice_token"])
            if name == "token":
                return "set-password"
            return str(self.ids[name])

        filled = re.sub(r"[<{]([^>}]+)[>}]", one, route)
        return filled if filled.startswith("/") else "/" + filled


def build_objects(scene: Scene, other: World) -> Objects:
    """Everything the routes need, made once: a consent, a photo, an adverse event, an alert,
    a change request, a calendar feed, reminder and watch links, a patient login for the
    scene's patient and one for another patient, and a deactivated manager."""
    from mesoclinic.safety.actions import do_report_adverse_event
    from mesoclinic.safety.watch import do_plan_watch
    from tests.test_photos import jpeg

    world = scene.world
    patient = scene.patient
    own_login = User.objects.create_user("ana-login", password="pw")
    Patient.objects.filter(pk=patient.pk).update(user=own_login)
    other_patient = Patient.objects.create(
        clinic=world.clinic,
        first_name="Otto",
        last_name="Other",
        date_of_birth=dt.date(1970, 1, 1),
        user=User.objects.create_user("otto-login", password="pw"),
    )
    deactivated = User.objects.create_user("gone-manager", password="pw", is_active=False)
    Membership.objects.create(user=deactivated, clinic=world.clinic, role=Membership.Role.MANAGER)

    from mesoclinic.courses.models import Course, Session

    course = Course.objects.get(pk=scene.course["id"])
    session = Session.objects.select_related("course__clinic").get(pk=scene.session["id"])
    photo_actions.do_record_photo_consent(
        patient, purpose="clinical", granted=True, user=world.practitioner
    )
    [photo] = photo_actions.do_upload_photos(
        course, area="thighs", images={"front": jpeg()}, user=world.practitioner
    )
    # Marketing use too, so that the public gallery serves the photo.
    photo_actions.do_record_photo_consent(
        patient, purpose="marketing", granted=True, user=world.practitioner
    )
    event = do_report_adverse_event(
        session,
        kind="pigmentation_change",
        ctcae_grade=1,
        onset_at=timezone.now(),
        user=world.practitioner,
    )
    lot = world.lot
    alert = SafetyAlert.objects.create(
        clinic=world.clinic,
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
    )
    appointment = Appointment.objects.get(pk=scene.appointment)
    change = ChangeRequest.objects.create(
        clinic=world.clinic,
        appointment=appointment,
        planned_for=appointment.starts_at,
        message="Can we move it?",
    )
    feed, feed_token = feeds.do_create_feed(user=world.practitioner, for_user=world.practitioner)
    # A second token of the practitioner's, for the routes that end one: not the one the
    # practitioner's API client signs in with.
    spare_token, _ = ApiToken.issue(world.practitioner, world.practitioner.memberships.first())
    do_plan_watch()
    prompt = WatchPrompt.objects.filter(session=session).order_by("due_at").first()
    assert prompt is not None
    # A lots file waiting to be checked, for the import pages (no patient in it).
    from mesoclinic.imports.actions import do_upload

    job = do_upload(
        world.clinic,
        "lots",
        "lots.csv",
        b"Product,Lot,Expiry\nLipo mix,Z-9,2031-01-01\n",
        user=None,
    )
    # The patient's record: a medication and an allergy (web/patients.py).
    from mesoclinic.formulary.models import Ingredient
    from mesoclinic.patients.models import Allergy, Medication

    medication = Medication.objects.create(patient=patient, name="Metformin", dose="500 mg")
    allergy = Allergy.objects.create(
        patient=patient, ingredient=Ingredient.objects.get(key="procaine", clinic=None)
    )
    # The setup pages' objects: a holiday, a room, a practitioner's day off.
    from mesoclinic.scheduling.models import Holiday, Room, WorkingException

    holiday = Holiday.objects.create(clinic=world.clinic, date=dt.date(2030, 1, 1), name="New Year")
    setup_room = Room.objects.create(clinic=world.clinic, name="Matrix room")
    day_off = WorkingException.objects.create(
        clinic=world.clinic, user=world.practitioner, date=dt.date(2030, 1, 2), kind="time_off"
    )
    # A measurement and an allergy reading to correct (web/amend.py).
    from mesoclinic.courses.models import AllergyReading
    from mesoclinic.outcomes.models import Measurement

    ids_amend = {
        "measurement_id": Measurement.objects.filter(course=course).values_list("pk", flat=True)[0],
        "reading_id": AllergyReading.objects.filter(
            test_id=scene.course["allergy_test"]
        ).values_list("pk", flat=True)[0],
    }
    # A recall notice to the patient, for its signed link (notify/). Made directly: recalling
    # the lot here would change what the other routes answer.
    from mesoclinic.notify import links as notice_links
    from mesoclinic.notify.models import RecallNotice

    notice = RecallNotice.objects.create(
        clinic=world.clinic, lot=lot, patient=patient, text="Please call the clinic."
    )
    # A visitor's question (the public site's, answered by staff) and a consultation booked
    # from the public site, for its confirmation page.
    from django.core import signing

    from mesoclinic.site.models import Question
    from mesoclinic.site.views import BOOKED_SALT

    question = Question.objects.create(clinic=world.clinic, text="Does it hurt?")
    # An opened vial of the lot, for its close action.
    from mesoclinic.formulary import stock

    vial = stock.open_vial(lot, user=world.practitioner)
    # An invoice with a payment, and a price list item, for the money pages.
    from decimal import Decimal

    from mesoclinic.billing import actions as billing
    from mesoclinic.billing.models import PriceItem

    price = PriceItem.objects.create(
        clinic=world.clinic, kind="session", name="Session, one area", amount=Decimal("500")
    )
    invoice = billing.issue_invoice(patient, [billing.LineInput.of(price)], user=world.front_desk)
    payment = billing.record_payment(invoice, Decimal("100"), "cash", user=world.front_desk)
    # A quote of the course, and a package of a second course of the patient's.
    from mesoclinic.billing import packages, quotes
    from mesoclinic.courses.models import Course

    course_row = Course.objects.get(pk=scene.course["id"])
    quote = quotes.issue(
        course_row, kind="package", user=world.front_desk, package_price=Decimal("4000")
    )
    package = packages.sell(course_row, 10, Decimal("4000"), user=world.front_desk)
    # A finished FHIR bulk export of the clinic's patients, for its status and file routes.
    from mesoclinic.fhir import bulk as fhir_bulk
    from mesoclinic.fhir.models import ExportJob

    ExportJob.objects.create(
        clinic=world.clinic,
        requested_by=world.manager,
        level=ExportJob.Level.PATIENT,
        types=["Patient"],
        request_url="http://testserver/fhir/R4B/Patient/$export",
    )
    (export,) = fhir_bulk.run_due("matrix")
    ids = {
        **scene.ids,
        "export_id": export.pk,
        "file_name": "Patient.ndjson",
        "group_id": f"lot-{lot.pk}",
        "slug": world.clinic.slug,
        "question_id": question.pk,
        # The FHIR API's routes are tried on the scene patient's Patient resource.
        "resource_type": "Patient",
        "resource_id": scene.patient.pk,
        # A clinical photo's image, as its DocumentReference's attachment names it.
        "binary_id": f"photo-{photo.pk}",
        "booked_token": signing.dumps(scene.appointment, salt=BOOKED_SALT),
        **ids_amend,
        "job_id": job.pk,
        "medication_id": medication.pk,
        "allergy_id": allergy.pk,
        "holiday_id": holiday.pk,
        "room_id": setup_room.pk,
        "exception_id": day_off.pk,
        "patient_id": patient.pk,
        "clinic_id": world.clinic.pk,
        "course_id": scene.course["id"],
        "test_id": scene.course["allergy_test"],
        "session_id": scene.session["id"],
        "effect_id": scene.side_effect["id"],
        "follow_up_id": scene.follow_up,
        "appointment_id": scene.appointment,
        "product_id": world.product.pk,
        "lot_id": lot.pk,
        "consent_id": Consent.objects.filter(patient=patient).values_list("pk", flat=True)[0],
        "photo_id": photo.pk,
        "event_id": event.pk,
        "alert_id": alert.pk,
        "vial_id": vial.pk,
        "invoice_id": invoice.pk,
        "payment_id": payment.pk,
        "price_id": price.pk,
        "quote_id": quote.pk,
        "package_id": package.pk,
        "request_id": change.pk,
        "membership_id": Membership.objects.get(user=world.practitioner).pk,
        "licence_id": PractitionerLicence.objects.get(user=world.practitioner).pk,
        "key": "cellulite",
        "work_list": "follow-ups",
        "feed_token": feed_token,
        "feed_id": feed.pk,
        "token_id": spare_token.pk,
        "confirm_token": reminder_links.make_token(appointment, reminder_links.CONFIRM),
        "change_token": reminder_links.make_token(appointment, reminder_links.CHANGE),
        "watch_token": watch_links.make_token(prompt),
        "notice_token": notice_links.make_token(notice.pk),
        "notice_id": notice.pk,
        "prompt_id": prompt.pk,
        # Password reset links carry a user's id and a token: a made-up pair is refused.
        "uidb64": "MQ",
    }
    users: dict[str, User | None] = {
        "anonymous": None,
        "patient_own": own_login,
        "patient_other": other_patient.user,
        "front_desk": world.front_desk,
        "practitioner": world.practitioner,
        "manager": world.manager,
        "other_clinic": other.manager,
        "deactivated": deactivated,
    }
    return Objects(scene=scene, other=other, ids=ids, users=users, other_patient=other_patient)


@pytest.fixture(name="objects")
def objects_fixture(scene: Scene, other: World, settings: Any, tmp_path: Any) -> Objects:
    """The objects, with clinical photos kept in a temporary folder for the test."""
    settings.STORAGES = {
        **settings.STORAGES,
        "clinical_photos": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": tmp_path / "photos", "base_url": None},
        },
    }
    return build_objects(scene, other)
