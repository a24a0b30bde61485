"""One answer to "is 03/04/1990 the 3rd of April or the 4th of March?" (lib/formats.date_order),
used alike by the patient search, the file import and the date fields of forms."""

from __future__ import annotations

import datetime as dt

import pytest

from mesoclinic.accounts.models import Clinic
from mesoclinic.imports import actions
from mesoclinic.imports.models import ImportJob
from mesoclinic.lib import formats
from mesoclinic.patients.models import Patient
from mesoclinic.patients.search import search
from tests.conftest import World

US_PHONE = "+1 212 555 0100"
FRENCH_PHONE = "+33 1 42 68 53 00"
MARCH_4 = dt.date(1990, 3, 4)
APRIL_3 = dt.date(1990, 4, 3)


@pytest.mark.parametrize(
    ("date_format", "phone", "order"),
    [
        # A clinic that writes dates with numbers types them in the same order, wherever it is.
        ("d/m/Y", US_PHONE, formats.DAY_FIRST),
        ("d/m/Y", FRENCH_PHONE, formats.DAY_FIRST),
        ("m/d/Y", US_PHONE, formats.MONTH_FIRST),
        ("m/d/Y", FRENCH_PHONE, formats.MONTH_FIRST),
        # One that writes the month's name or ISO types as its country does.
        ("j M Y", US_PHONE, formats.MONTH_FIRST),
        ("j M Y", FRENCH_PHONE, formats.DAY_FIRST),
        ("Y-m-d", US_PHONE, formats.MONTH_FIRST),
        ("Y-m-d", FRENCH_PHONE, formats.DAY_FIRST),
        # A phone without a country code, or none, leaves the country to the clinic's locale.
        ("j M Y", "212 555 0100", formats.MONTH_FIRST),
        ("j M Y", "", formats.MONTH_FIRST),
    ],
)
def test_the_clinics_format_then_its_country_decide(date_format: str, phone: str, order: str):
    clinic = Clinic(name="C", date_format=date_format, phone=phone, locale="en-US")
    assert formats.date_order(clinic) == order


@pytest.mark.parametrize(
    ("locale", "phone", "order"),
    [
        ("en-GB", "", formats.DAY_FIRST),
        ("en-AU", "02 9374 4000", formats.DAY_FIRST),
        ("en-US", "", formats.MONTH_FIRST),
        # A phone with its country code says where the clinic is, whatever the locale.
        ("en-GB", US_PHONE, formats.MONTH_FIRST),
        ("en-US", FRENCH_PHONE, formats.DAY_FIRST),
    ],
)
def test_without_an_international_phone_the_locale_tells_the_country(
    locale: str, phone: str, order: str
) -> None:
    clinic = Clinic(name="C", date_format="j M Y", phone=phone, locale=locale)
    assert formats.date_order(clinic) == order


def numeric_dates_read(world: World) -> tuple[list[dt.date], dt.date]:
    """The day "03/04/1990" is, typed into the patient search and in an imported file."""
    clinic = world.clinic
    for day in (MARCH_4, APRIL_3):
        Patient.objects.create(
            clinic=clinic, first_name="Born", last_name="Then", date_of_birth=day
        )
    in_search = [p.date_of_birth for p in search(clinic, "03/04/1990")]
    job = ImportJob.objects.create(
        clinic=clinic,
        kind="patients",
        delimiter=",",
        content="First name,Last name,Date of birth\nAna,Lopez,03/04/1990\n",
        mapping={"first_name": 0, "last_name": 1, "date_of_birth": 2},
    )
    assert actions.do_check(job, job.mapping) == []
    actions.do_import(job, user=world.manager)
    in_import = Patient.objects.get(clinic=clinic, last_name="Lopez").date_of_birth
    return in_search, in_import


class SearchAndImportAgreeTests:
    @pytest.mark.parametrize("date_format", ["j M Y", "Y-m-d", "m/d/Y"])
    def test_a_us_clinic_reads_a_typed_date_month_first_in_both(
        self, world: World, date_format: str
    ) -> None:
        world.clinic.phone, world.clinic.date_format = US_PHONE, date_format
        world.clinic.save()
        assert numeric_dates_read(world) == ([MARCH_4], MARCH_4)

    @pytest.mark.parametrize("date_format", ["j M Y", "Y-m-d", "d/m/Y"])
    def test_a_french_clinic_reads_a_typed_date_day_first_in_both(
        self, world: World, date_format: str
    ) -> None:
        world.clinic.phone, world.clinic.date_format = FRENCH_PHONE, date_format
        world.clinic.save()
        assert numeric_dates_read(world) == ([APRIL_3], APRIL_3)

    @pytest.mark.parametrize(
        ("date_format", "phone"), [("d/m/Y", US_PHONE), ("m/d/Y", FRENCH_PHONE)]
    )
    def test_a_forms_date_field_reads_numbers_in_the_same_order(
        self, date_format: str, phone: str
    ) -> None:
        clinic = Clinic(name="C", date_format=date_format, phone=phone)
        expected = MARCH_4 if formats.date_order(clinic) == formats.MONTH_FIRST else APRIL_3
        assert formats.parse_date("03/04/1990", clinic) == expected
