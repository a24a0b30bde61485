"""Shared fixtures: two clinics, staff in every role, a formulary, and an API client."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from mesoclinic.accounts.models import Clinic, Membership, PractitionerLicence, User
from mesoclinic.api.models import ApiToken
from mesoclinic.formulary.models import Ingredient, Lot, Product, ProductIngredient
from mesoclinic.patients.actions import do_setup_clinic
from mesoclinic.patients.models import Patient


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
    today = dt.date.today()
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
            product=product, lot_number=f"{prefix}L-OLD", expires_on=today - dt.timedelta(days=1)
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
