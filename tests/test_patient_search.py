"""Finding a patient the way people type: names in any order and spelling, phones in any
format, dates in the clinic's format or the year alone (patients/search.py, patients/normal.py)."""

from __future__ import annotations

import datetime as dt
import importlib
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from mesoclinic.accounts.models import AuditEvent
from mesoclinic.lib.formats import date_order
from mesoclinic.patients import normal
from mesoclinic.patients.models import Patient
from mesoclinic.patients.search import search
from tests.conftest import World, api_for


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def make(world: World, first: str, last: str, **extra: Any) -> Patient:
    extra.setdefault("date_of_birth", dt.date(1985, 1, 1))
    return Patient.objects.create(clinic=world.clinic, first_name=first, last_name=last, **extra)


class NormalTests:
    def test_fold_strips_accents_case_and_curly_apostrophes(self) -> None:
        assert normal.fold("  José  O’Brien ") == "jose o'brien"
        assert normal.fold("ZOË Ñúñez") == "zoe nunez"
        assert normal.fold("O`Neil") == normal.fold("O'Neil") == normal.fold("O\u02bcNeil")

    @pytest.mark.parametrize(
        "typed", ["(212) 555-0101", "212.555.0101", "+1 212 555 0101", "1-212-555-0101"]
    )
    def test_a_phone_in_any_format_is_one_number(self, typed: str) -> None:
        assert normal.e164(typed, "US") == "+12125550101"

    def test_a_phone_is_read_in_the_clinics_country(self) -> None:
        assert normal.region_of("+33 1 42 68 53 00") == "FR"
        assert normal.e164("01 42 68 53 00", "FR") == "+33142685300"
        assert normal.region_of("212 555 0100") == normal.DEFAULT_REGION
        assert normal.e164("call me", "US") == ""
        assert normal.e164("555 0101", "US") == ""  # no area code: not a whole number

    def test_dates_in_either_order_or_iso(self) -> None:
        assert normal.parse_day("17/05/1990", normal.DAY_FIRST) == dt.date(1990, 5, 17)
        assert normal.parse_day("05/17/1990", normal.MONTH_FIRST) == dt.date(1990, 5, 17)
        assert normal.parse_day("05/06/1990", normal.DAY_FIRST) == dt.date(1990, 6, 5)
        assert normal.parse_day("05/06/1990", normal.MONTH_FIRST) == dt.date(1990, 5, 6)
        assert normal.parse_day("1990-05-17", normal.MONTH_FIRST) == dt.date(1990, 5, 17)
        assert normal.parse_day("17.05.1990") == dt.date(1990, 5, 17)
        assert normal.parse_day("31/02/1990") is None
        assert normal.parse_day("Lopez") is None
        assert normal.parse_year("1990") == 1990
        assert normal.parse_year("0101") is None

    def test_the_clinics_date_order(self, world: World, other: World) -> None:
        # A clinic that writes the month's name types dates as its country does.
        assert world.clinic.date_format == "j M Y"
        assert date_order(world.clinic) == normal.MONTH_FIRST  # a clinic in the United States
        other.clinic.phone = "+33 1 42 68 53 00"
        assert date_order(other.clinic) == normal.DAY_FIRST
        # A clinic that writes dates with numbers types them in the same order.
        other.clinic.date_format = "m/d/Y"
        assert date_order(other.clinic) == normal.MONTH_FIRST
        world.clinic.date_format = "d/m/Y"
        assert date_order(world.clinic) == normal.DAY_FIRST


class SearchTests:
    @pytest.mark.parametrize(
        "q",
        [
            "Lopez, Ana",
            "lopez ana",
            "José",
            "jose",
            "JOSE LÓPEZ",
            "O’Brien",
            "o'brien",
            "(212) 555-0101",
            "212.555.0101",
            "+12125550101",
            "555-0101",
            "05/17/1990",
            "1990-05-17",
            "1990",
        ],
    )
    def test_it_finds_the_patient_however_the_query_is_typed(self, world: World, q: str) -> None:
        wanted = make(
            world,
            "José Ana",
            "López O'Brien",
            date_of_birth=dt.date(1990, 5, 17),
            phone="212 555 0101",
        )
        make(world, "Bea", "Smith", phone="+1 646 555 0199", date_of_birth=dt.date(1991, 5, 17))
        assert list(search(world.clinic, q)) == [wanted]

    def test_day_first_clinics_read_day_first(self, other: World) -> None:
        other.clinic.phone = "+33 1 42 68 53 00"
        other.clinic.save()
        wanted = Patient.objects.create(
            clinic=other.clinic,
            first_name="Zoë",
            last_name="Martin",
            date_of_birth=dt.date(1988, 11, 30),
            phone="06 12 34 56 78",
        )
        assert list(search(other.clinic, "30/11/1988")) == [wanted]
        assert list(search(other.clinic, "+33 6 12 34 56 78")) == [wanted]
        assert list(search(other.clinic, "zoe")) == [wanted]

    def test_a_merged_record_is_not_found_and_another_clinic_never(
        self, world: World, other: World
    ) -> None:
        kept = make(world, "Ana", "Lopez")
        merged = make(world, "Ana", "Lopez")
        Patient.objects.filter(pk=merged.pk).update(merged_into=kept)
        Patient.objects.create(
            clinic=other.clinic,
            first_name="Ana",
            last_name="Lopez",
            date_of_birth=dt.date(1985, 1, 1),
        )
        assert list(search(world.clinic, "Lopez, Ana")) == [kept]

    def test_the_search_columns_follow_every_save(self, world: World) -> None:
        p = make(world, "Ana", "Lopez", phone="212 555 0101")
        p.last_name = "Núñez"
        p.phone = "(646) 555-0199"
        p.save(update_fields=["last_name", "phone"])
        p.refresh_from_db()
        assert (p.search_key, p.phone_e164) == ("ana nunez", "+16465550199")

    def test_the_data_migration_fills_the_columns_of_older_patients(self, world: World) -> None:
        p = make(world, "Ana", "O’Brien", phone="212-555-0101")
        Patient.objects.filter(pk=p.pk).update(search_key="", phone_e164="")
        migration = importlib.import_module(
            "mesoclinic.patients.migrations.0003_fill_search_columns"
        )
        migration.fill(django_apps, None)
        p.refresh_from_db()
        assert (p.search_key, p.phone_e164) == ("ana o'brien", "+12125550101")

    def test_the_api_search_reads_the_same_way(self, world: World) -> None:
        wanted = make(world, "José", "López", phone="212 555 0101")
        api = api_for(world.front_desk)
        for q in ("Lopez, Jose", "(212) 555-0101", "1985"):
            assert [p["id"] for p in api.get("/patients", q=q).json()] == [wanted.pk], q


class SearchPageTests:
    def test_search_as_you_type_answers_the_partial_and_audits_each_patient(
        self, world: World
    ) -> None:
        wanted = make(world, "José", "López")
        client = signed_in(world.front_desk)
        r = client.get("/patients/", {"q": "lopez, jose"}, headers={"HX-Request": "true"})
        assert r.status_code == 200
        assert b"<html" not in r.content
        assert f"/patients/{wanted.pk}/".encode() in r.content
        assert AuditEvent.objects.filter(
            action=AuditEvent.Action.VIEW, patient_id=wanted.pk, detail__page="patient search"
        ).exists()

    def test_the_query_count_does_not_grow_with_the_results(self, world: World) -> None:
        client = signed_in(world.front_desk)
        make(world, "Ana", "Lopez")
        client.get("/patients/", {"q": "lopez"})  # warm the session and the caches

        def count() -> int:
            with CaptureQueriesContext(connection) as ctx:
                r = client.get("/patients/", {"q": "lopez"}, headers={"HX-Request": "true"})
            assert r.status_code == 200
            return len(ctx.captured_queries)

        one = count()
        for n in range(8):
            make(world, f"Ana{n}", "Lopez")
        assert count() == one
