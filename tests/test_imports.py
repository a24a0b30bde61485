"""Importing patients, products with their ingredients, and lots from CSV files: the upload,
the column mapping, the validation report, and all-or-nothing imports."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client

from mesoclinic.accounts.models import AuditEvent, User
from mesoclinic.formulary.models import Lot, Product, ProductIngredient
from mesoclinic.imports import actions, logic
from mesoclinic.imports.models import ImportJob
from mesoclinic.patients.models import Patient
from mesoclinic.patients.search import search
from tests.conftest import World
from tests.scheduling_fixtures import race_processes, run_script

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"
IMPORT_CHILD = [sys.executable, "-m", "tests.import_race_child"]
RACE_CHILD = [sys.executable, "-m", "tests.booking_race_child"]

PATIENTS = (
    "First name,Last name,Date of birth,Sex,Email,Phone,Address\n"
    "Ana,Lopez,31/12/1980,F,ana@example.com,+1 555 0100,1 Main St\n"
    "Ben,Okafor,1975-06-02,male,,555-0101,\n"
    "Chloé,Durand,02/03/1990,,chloe@example.com,,\n"
)
PRODUCTS = (
    "Product,Supplier,Vial,Ingredient,Concentration,Unit\n"
    "Cellulite cocktail,MesoLab,multi,caffeine,20,mg/mL\n"
    'Cellulite cocktail,,,L-carnitine,"40,5",\n'
    "Hair cocktail,MesoLab,Single-dose vial,biotin,5,mg/mL\n"
)


@pytest.fixture
def world(world: World) -> World:
    """The shared clinic, writing its dates day first (31/12/2026) as the files below do. A
    clinic in the United States on the default format reads 31/12/1980 month first and refuses
    it (tests/test_date_order.py)."""
    world.clinic.date_format = "d/m/Y"
    world.clinic.save(update_fields=["date_format"])
    return world


@pytest.fixture
def other(other: World) -> World:
    other.clinic.date_format = "d/m/Y"
    other.clinic.save(update_fields=["date_format"])
    return other


def lots_file(world: World) -> str:
    return (
        "Product;Lot number;Expiry;Received\n"
        f"{world.product.name};A-1;31/12/2030;01/12/2026\n"
        f"{world.lidocaine_product.name};B-2;2031-01-31;\n"
    )


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def upload(client: Client, kind: str, content: bytes | str, name: str = "file.csv") -> Any:
    data = content.encode("utf-8") if isinstance(content, str) else content
    return client.post(
        "/manage/import/", {"kind": kind, "file": SimpleUploadedFile(name, data, "text/csv")}
    )


def job_of(response: Any) -> ImportJob:
    assert response.status_code == 302, response.content[:2000]
    found = re.match(r"^/manage/import/(\d+)/$", response["Location"])
    assert found, response["Location"]
    return ImportJob.objects.get(pk=int(found[1]))


def check(client: Client, job: ImportJob, **changes: str) -> Any:
    """Post the mapping as guessed, with `changes` (field key -> column index or "")."""
    mapping = {k: "" if v is None else str(v) for k, v in job.mapping.items()}
    mapping.update(changes)
    return client.post(f"/manage/import/{job.pk}/", mapping)


def problems(job: ImportJob) -> list[tuple[int | None, str, str]]:
    job.refresh_from_db()
    return [(p["row"], p["column"], p["problem"]) for p in job.problems]


def run(client: Client, job: ImportJob) -> Any:
    return client.post(f"/manage/import/{job.pk}/import/")


def uploaded_and_checked(client: Client, kind: str, content: bytes | str) -> ImportJob:
    job = job_of(upload(client, kind, content))
    assert check(client, job).status_code == 302
    job.refresh_from_db()
    return job


def refuse_inserts(table: str, column: str, value: str) -> None:
    """A trigger that makes the database refuse a row with `column` = `value` in `table`: a
    real database error in the middle of an import, with no mock."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION boom() RETURNS trigger AS $$ BEGIN "
                "RAISE EXCEPTION 'boom'; END; $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                f"CREATE TRIGGER boom BEFORE INSERT ON {table} FOR EACH ROW "
                f"WHEN (NEW.{column} = '{value}') EXECUTE FUNCTION boom()"
            )
        else:
            cursor.execute(
                f"CREATE TRIGGER boom BEFORE INSERT ON {table} "
                f"WHEN NEW.{column} = '{value}' BEGIN SELECT RAISE(ABORT, 'boom'); END"
            )


class ReadingFilesTests:
    def test_it_reads_utf8_with_and_without_a_byte_order_mark(self) -> None:
        assert logic.decode("Chloé".encode()) == ("Chloé", "UTF-8")
        assert logic.decode(b"\xef\xbb\xbf" + "Chloé".encode()) == ("Chloé", "UTF-8")

    def test_it_falls_back_to_windows_1252(self) -> None:
        assert logic.decode("Chloé;Zoë €".encode("cp1252")) == ("Chloé;Zoë €", "Windows-1252")

    def test_it_refuses_a_utf16_or_binary_file_in_words(self) -> None:
        with pytest.raises(logic.FileProblem, match="not a CSV text file"):
            logic.decode("a,b".encode("utf-16"))

    def test_it_sniffs_comma_and_semicolon(self) -> None:
        assert logic.sniff_delimiter("a,b,c\n1;2,3") == ","
        assert logic.sniff_delimiter("\ufeffa;b;c\n1,5;2;3") == ";"

    def test_row_numbers_are_the_spreadsheets_even_past_blank_rows(self) -> None:
        table = logic.read_table("a,b\n1,2\n,\n3,4\n", ",")
        assert table.headers == ["a", "b"]
        assert table.rows == [(2, ["1", "2"]), (4, ["3", "4"])]

    def test_dates_read_iso_and_day_first_and_month_first_for_a_us_format(self) -> None:
        assert logic.parse_day("1980-12-31") == dt.date(1980, 12, 31)
        assert logic.parse_day("31/12/1980") == dt.date(1980, 12, 31)
        assert logic.parse_day("31.12.1980") == dt.date(1980, 12, 31)
        assert logic.parse_day("12/31/1980", logic.MONTH_FIRST) == dt.date(1980, 12, 31)
        assert logic.parse_day("31/12/1980", logic.MONTH_FIRST) is None
        assert logic.parse_day("30/02/1980") is None
        assert logic.parse_day("yesterday") is None

    def test_dates_with_month_names_and_year_first_slashes_are_read(self) -> None:
        day = dt.date(1980, 12, 31)
        for text in ("31 Dec 1980", "31 December 1980", "31-dec-1980", "Dec. 31, 1980"):
            assert logic.parse_day(text) == day, text
        assert logic.parse_day("1980/12/31") == day
        assert logic.parse_day("31 Decembre 1980") is None
        assert logic.parse_day("31 Feb 1980") is None

    def test_headers_are_matched_without_case_accents_or_punctuation(self) -> None:
        fields = [(f.key, f.names) for f in actions.fields_for(ImportJob.Kind.PATIENTS)]
        mapping = logic.guess_mapping(
            ["SURNAME", "Prénom", "D.O.B.", "Gender", "Notes", "E-mail", "Mobile"], fields
        )
        assert mapping["last_name"] == 0
        assert mapping["first_name"] == 1
        assert mapping["date_of_birth"] == 2
        assert mapping["sex"] == 3
        assert mapping["email"] == 5
        assert mapping["phone"] == 6
        assert mapping["address"] is None


class UploadTests:
    def test_the_upload_keeps_the_file_and_guesses_the_columns(self, world: World) -> None:
        client = signed_in(world.manager)
        job = job_of(upload(client, "patients", PATIENTS, "patients.csv"))
        assert job.clinic == world.clinic
        assert job.rows == 3
        assert job.delimiter == ","
        assert job.mapping["first_name"] == 0
        assert job.mapping["date_of_birth"] == 2
        assert AuditEvent.objects.filter(
            action="create", object_type="imports.ImportJob", object_id=str(job.pk)
        ).exists()
        page = client.get(f"/manage/import/{job.pk}/")
        assert page.status_code == 200
        assert '<option value="2" selected>Date of birth</option>' in page.content.decode()

    def test_a_windows_1252_semicolon_file_is_read(self, world: World) -> None:
        client = signed_in(world.manager)
        content = PATIENTS.replace(",", ";").encode("cp1252")
        job = uploaded_and_checked(client, "patients", content)
        assert job.encoding == "Windows-1252"
        assert job.delimiter == ";"
        assert problems(job) == []
        run(client, job)
        assert Patient.objects.get(last_name="Durand").first_name == "Chloé"

    def test_a_utf8_file_with_a_byte_order_mark_is_read(self, world: World) -> None:
        client = signed_in(world.manager)
        job = uploaded_and_checked(client, "patients", b"\xef\xbb\xbf" + PATIENTS.encode())
        assert job.mapping["first_name"] == 0
        assert problems(job) == []

    def test_a_too_large_file_is_refused_beside_the_field(
        self, world: World, settings: Any
    ) -> None:
        settings.IMPORT_MAX_BYTES = 100
        r = upload(signed_in(world.manager), "patients", PATIENTS)
        assert r.status_code == 200
        assert "at most 1 KB can be imported at once" in r.content.decode()
        assert not ImportJob.objects.exists()

    def test_a_file_larger_than_other_request_bodies_may_be_uploaded(
        self, world: World, settings: Any
    ) -> None:
        """Every other web form may send at most API_MAX_BODY_BYTES; the import page takes a
        file up to IMPORT_MAX_BYTES, and the server refuses a larger body unread."""
        rows = "".join(f"Name{i},Family{i},1980-01-01,{'x' * 60}\n" for i in range(14_000))
        content = "First name,Last name,Date of birth,Address\n" + rows
        assert len(content) > settings.API_MAX_BODY_BYTES
        client = signed_in(world.manager)
        job = job_of(upload(client, "patients", content))
        assert job.rows == 14_000
        settings.IMPORT_MAX_BYTES = settings.API_MAX_BODY_BYTES
        r = upload(client, "patients", content)
        assert r.status_code == 413
        assert ImportJob.objects.count() == 1

    def test_an_empty_or_unreadable_file_is_refused_beside_the_field(self, world: World) -> None:
        client = signed_in(world.manager)
        r = upload(client, "patients", "First name,Last name\n")
        assert "has a header row but no rows below it" in r.content.decode()
        r = upload(client, "patients", "x".encode("utf-16"))
        assert "not a CSV text file" in r.content.decode()
        assert not ImportJob.objects.exists()


class MappingTests:
    def test_a_changed_mapping_is_kept_and_used(self, world: World) -> None:
        client = signed_in(world.manager)
        content = "Given,Family,Born,Other date\nAna,Lopez,1980-12-31,2001-01-01\n"
        job = job_of(upload(client, "patients", content))
        assert job.mapping["first_name"] is None  # "Given" alone is not a name it knows
        assert job.mapping["last_name"] is None
        check(client, job, first_name="0", last_name="1", date_of_birth="3")
        job.refresh_from_db()
        assert job.mapping["first_name"] == 0
        assert job.mapping["date_of_birth"] == 3
        assert problems(job) == []
        page = client.get(f"/manage/import/{job.pk}/").content.decode()
        assert '<option value="3" selected>Other date</option>' in page
        run(client, job)
        assert Patient.objects.get(last_name="Lopez").date_of_birth == dt.date(2001, 1, 1)

    def test_a_required_field_without_a_column_is_an_error_beside_it(self, world: World) -> None:
        client = signed_in(world.manager)
        job = job_of(upload(client, "patients", "First name,Last name\nAna,Lopez\n"))
        r = check(client, job)
        assert r.status_code == 200
        assert "Choose the column that holds the date of birth" in r.content.decode()
        job.refresh_from_db()
        assert job.status == ImportJob.Status.UPLOADED

    def test_one_column_cannot_hold_two_fields(self, world: World) -> None:
        client = signed_in(world.manager)
        job = job_of(upload(client, "patients", PATIENTS))
        r = check(client, job, last_name="0")
        assert "This column is already chosen for first name." in r.content.decode()


class PatientImportTests:
    def test_a_clean_file_imports_every_patient_with_audit_rows_and_links(
        self, world: World
    ) -> None:
        client = signed_in(world.manager)
        job = uploaded_and_checked(client, "patients", PATIENTS)
        assert problems(job) == []
        r = run(client, job)
        assert r.status_code == 302
        made = Patient.objects.filter(clinic=world.clinic).order_by("last_name")
        assert [(p.first_name, p.last_name) for p in made] == [
            ("Chloé", "Durand"),
            ("Ana", "Lopez"),
            ("Ben", "Okafor"),
        ]
        ana = made.get(last_name="Lopez")
        assert ana.date_of_birth == dt.date(1980, 12, 31)
        assert ana.sex == Patient.Sex.FEMALE
        assert made.get(last_name="Durand").sex == Patient.Sex.UNKNOWN
        created = AuditEvent.objects.filter(action="create", object_type="patients.Patient")
        assert sorted(created.values_list("patient_id", flat=True)) == sorted(p.pk for p in made)
        assert all(e.detail == {"import": job.pk} for e in created)
        job.refresh_from_db()
        assert job.content == ""  # the file's copy of their details is dropped
        page = client.get(f"/manage/import/{job.pk}/").content.decode()
        assert f'href="/patients/{ana.pk}/"' in page
        assert AuditEvent.objects.filter(action="view", patient_id=ana.pk).exists()

    def test_imported_patients_are_found_as_registered_ones_are(self, world: World) -> None:
        client = signed_in(world.manager)
        run(client, uploaded_and_checked(client, "patients", PATIENTS))
        chloe = Patient.objects.get(clinic=world.clinic, last_name="Durand")
        assert list(search(world.clinic, "chloe durand")) == [chloe]
        assert list(search(world.clinic, "Durand, Chloé")) == [chloe]

    def test_every_bad_row_is_reported_by_row_column_and_problem_and_nothing_imported(
        self, world: World
    ) -> None:
        Patient.objects.create(
            clinic=world.clinic, first_name="Ana", last_name="Lopez", date_of_birth="1980-12-31"
        )
        content = (
            "First name,Surname,DOB,Gender,Email,Phone\n"
            "Zoe,Ng,1990-01-01,,zoe@example.com,\n"  # 2: fine
            "Ana,LÓPEZ,31/12/1980,,,\n"  # 3: already on file
            ",Smith,1990-01-01,,,\n"  # 4: no first name
            "Tom,Jones,31/02/1990,,,\n"  # 5: no such day
            "Eve,Stone,1990-01-01,x,not-an-email,abc\n"  # 6: sex, email, phone
            "Zoe,Ng,01/01/1990,,,\n"  # 7: twice in the file
            "Old,Timer,1850-01-01,,,\n"  # 8: before 1900 (the form's own rule)
        )
        client = signed_in(world.manager)
        job = uploaded_and_checked(client, "patients", content)
        found = problems(job)
        assert found == [
            (3, "Surname", "A patient with this name and date of birth is already on file."),
            (4, "First name", actions.REQUIRED),
            (5, "DOB", "“31/02/1990” is not a date: write it as 31/12/1980 or 1980-12-31."),
            (6, "Email", "Enter a valid email address."),
            (6, "Gender", "“x” is not one of: Female, Male, Other, Not stated."),
            (6, "Phone", "Enter a phone number of 6 to 20 digits, spaces or + ( ) - ."),
            (7, "Surname", "Zoe Ng born 1990-01-01 is already on row 2."),
            (8, "DOB", "Enter a date of birth after 1900."),
        ]
        page = client.get(f"/manage/import/{job.pk}/").content.decode()
        assert "8 problems" in page
        assert "Enter a date of birth after 1900." in page
        r = run(client, job)
        assert r.status_code == 302
        assert Patient.objects.filter(clinic=world.clinic).count() == 1
        assert not AuditEvent.objects.filter(
            action="create", object_type="patients.Patient"
        ).exists()
        job.refresh_from_db()
        assert job.status == ImportJob.Status.CHECKED

    def test_a_long_report_lists_the_first_problems_and_downloads_them_all(
        self, world: World
    ) -> None:
        content = "First name,Last name,Date of birth\n" + "A,B,never\n" * 250
        client = signed_in(world.manager)
        job = uploaded_and_checked(client, "patients", content)
        page = client.get(f"/manage/import/{job.pk}/").content.decode()
        assert "250 problems" in page
        assert "The first 200 are listed here; the downloaded report has all 250." in page
        report = client.get(f"/manage/import/{job.pk}/report.csv").content.decode()
        assert len(report.strip().splitlines()) == 251

    def test_the_report_downloads_as_csv_with_the_same_problems(self, world: World) -> None:
        content = "First name,Last name,Date of birth\n=HYPERLINK(1),Lee,1990-13-01\n"
        client = signed_in(world.manager)
        job = uploaded_and_checked(client, "patients", content)
        r = client.get(f"/manage/import/{job.pk}/report.csv")
        assert r.status_code == 200
        assert r["Content-Type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(r.content.decode())))
        assert rows == [
            ["Row", "Column", "Problem"],
            [
                "2",
                "Date of birth",
                "“1990-13-01” is not a date: write it as 31/12/1980 or 1980-12-31.",
            ],
        ]
        assert AuditEvent.objects.filter(action="export", object_id=str(job.pk)).exists()

    def test_a_database_error_half_way_rolls_back_the_whole_import(self, world: World) -> None:
        """A trigger makes the database refuse one patient in the third batch of inserts: the
        two batches already written are rolled back with it, and the job is not imported."""
        lines = ["First name,Last name,Date of birth"]
        lines += [f"P{i},Person{i},1980-01-01" for i in range(1200)]
        lines[1101] = "P1100,Boom,1980-01-01"
        client = signed_in(world.manager)
        job = uploaded_and_checked(client, "patients", "\n".join(lines) + "\n")
        assert problems(job) == []
        refuse_inserts("patients_patient", "last_name", "Boom")
        r = run(client, job)
        assert r.status_code == 302
        assert not Patient.objects.filter(clinic=world.clinic).exists()
        assert not AuditEvent.objects.filter(object_type="patients.Patient").exists()
        job.refresh_from_db()
        assert job.status != ImportJob.Status.IMPORTED
        assert job.created == {}
        page = client.get(f"/manage/import/{job.pk}/").content.decode()
        assert "nothing was imported" in page

    def test_a_database_error_on_the_second_product_rolls_back_the_first(
        self, world: World
    ) -> None:
        client = signed_in(world.manager)
        job = uploaded_and_checked(client, "products", PRODUCTS)
        assert problems(job) == []
        refuse_inserts("formulary_product", "name", "Hair cocktail")
        run(client, job)
        assert not Product.objects.filter(name="Cellulite cocktail").exists()
        assert not ProductIngredient.objects.filter(product__name="Cellulite cocktail").exists()
        assert not AuditEvent.objects.filter(object_type="formulary.Product").exists()
        job.refresh_from_db()
        assert not job.is_imported

    def test_a_second_import_of_the_same_file_is_refused(self, world: World) -> None:
        client = signed_in(world.manager)
        job = uploaded_and_checked(client, "patients", PATIENTS)
        run(client, job)
        with pytest.raises(actions.AlreadyImported):
            actions.do_import(job, user=world.manager)
        r = run(client, job)
        assert r.status_code == 302
        assert Patient.objects.filter(clinic=world.clinic).count() == 3

    def test_a_file_checked_clean_is_checked_again_when_imported(self, world: World) -> None:
        """A patient registered between the check and the import makes the file a duplicate."""
        client = signed_in(world.manager)
        job = uploaded_and_checked(client, "patients", PATIENTS)
        assert problems(job) == []
        Patient.objects.create(
            clinic=world.clinic, first_name="Ben", last_name="Okafor", date_of_birth="1975-06-02"
        )
        run(client, job)
        assert problems(job) == [
            (3, "Last name", "A patient with this name and date of birth is already on file.")
        ]
        assert Patient.objects.filter(clinic=world.clinic).count() == 1

    def test_a_clinic_writing_dates_month_first_reads_them_so(self, world: World) -> None:
        world.clinic.date_format = "m/d/Y"  # set by the clinic setup pages when they exist
        job = ImportJob(
            clinic=world.clinic,
            kind="patients",
            delimiter=",",
            content="First name,Last name,Date of birth\nAna,Lopez,12/31/1980\n",
            mapping={"first_name": 0, "last_name": 1, "date_of_birth": 2},
        )
        job.save()
        assert actions.do_check(job, job.mapping) == []


class ProductImportTests:
    def test_rows_of_one_product_make_one_product_with_its_ingredients(self, world: World) -> None:
        client = signed_in(world.manager)
        job = uploaded_and_checked(client, "products", PRODUCTS)
        assert problems(job) == []
        run(client, job)
        cocktail = Product.objects.get(clinic=world.clinic, name="Cellulite cocktail")
        assert cocktail.supplier == "MesoLab"
        assert cocktail.vial == Product.Vial.MULTI_DOSE
        parts = {
            (c.ingredient.key, f"{c.concentration.normalize():f}", c.unit)
            for c in ProductIngredient.objects.filter(product=cocktail)
        }
        assert parts == {("caffeine", "20", "mg/mL"), ("l_carnitine", "40.5", "mg/mL")}
        hair = Product.objects.get(clinic=world.clinic, name="Hair cocktail")
        assert hair.vial == Product.Vial.SINGLE_DOSE
        audits = AuditEvent.objects.filter(action="create", object_type="formulary.Product")
        assert {e.object_id for e in audits} == {str(cocktail.pk), str(hair.pk)}
        page = client.get(f"/manage/import/{job.pk}/").content.decode()
        assert "Cellulite cocktail" in page and 'href="/manage/formulary/"' in page

    def test_unknown_ingredients_duplicates_and_clashes_are_reported(self, world: World) -> None:
        content = (
            "Product,Supplier,Vial,Ingredient,Concentration\n"
            f"{world.product.name},Acme,single,caffeine,1\n"  # 2: name taken
            "New mix,MesoLab,single,unicorn dust,1\n"  # 3: unknown ingredient
            "New mix,Other Lab,,caffeine,-2\n"  # 4: other supplier, negative
            "New mix,,,Caffeine,3\n"  # 5: caffeine twice
            "Bad vial,MesoLab,bottle,biotin,1\n"  # 6: vial
        )
        client = signed_in(world.manager)
        job = uploaded_and_checked(client, "products", content)
        assert problems(job) == [
            (2, "Product", "This clinic already has a product with this name."),
            (3, "Ingredient", "No ingredient called “unicorn dust” is known."),
            (4, "Concentration", "Ensure this value is greater than or equal to 0."),
            (4, "Supplier", "This product's supplier is “MesoLab” on row 3."),
            (5, "Ingredient", "Caffeine is already listed for this product on row 4."),
            (6, "Vial", "“bottle” is not one of: Single-dose vial, Multi-dose vial."),
        ]
        run(client, job)
        assert not Product.objects.filter(name__in=["New mix", "Bad vial"]).exists()


class LotImportTests:
    def test_a_clean_lots_file_with_semicolons_imports_every_lot(self, world: World) -> None:
        client = signed_in(world.manager)
        job = uploaded_and_checked(client, "lots", lots_file(world))
        assert job.delimiter == ";"
        assert problems(job) == []
        run(client, job)
        a1 = Lot.objects.get(product=world.product, lot_number="A-1")
        assert a1.expires_on == dt.date(2030, 12, 31)
        assert a1.received_on == dt.date(2026, 12, 1)
        b2 = Lot.objects.get(product=world.lidocaine_product, lot_number="B-2")
        assert b2.received_on == dt.date.today()
        audits = AuditEvent.objects.filter(action="create", object_type="formulary.Lot")
        assert {e.object_id for e in audits} == {str(a1.pk), str(b2.pk)}
        page = client.get(f"/manage/import/{job.pk}/").content.decode()
        assert f'href="/manage/lots/{a1.pk}/"' in page

    def test_unknown_products_and_lots_on_file_or_twice_are_reported(self, world: World) -> None:
        content = (
            "Product,Lot,Expires,Received on\n"
            f"{world.product.name},{world.lot.lot_number.lower()},2030-01-01,\n"  # 2: on file
            "Snake oil,S-1,2030-01-01,\n"  # 3: no such product
            f"{world.product.name},N-1,2030-01-01,2030-02-01\n"  # 4: expires before received
            f"{world.product.name},N-2,2030-01-01,\n"  # 5: fine
            f"{world.product.name.upper()},n-2,2030-06-01,\n"  # 6: twice in the file
            f"{world.product.name},,,\n"  # 7: empty cells
        )
        client = signed_in(world.manager)
        job = uploaded_and_checked(client, "lots", content)
        assert problems(job) == [
            (2, "Lot", "This product already has a lot with this number."),
            (3, "Product", "No product called “Snake oil” is in the formulary."),
            (4, "Expires", "The expiry date is before the date the lot came in."),
            (6, "Lot", f"Lot n-2 of {world.product.name} is already on row 5."),
            (7, "Expires", actions.REQUIRED),
            (7, "Lot", actions.REQUIRED),
        ]
        before = Lot.objects.count()
        run(client, job)
        assert Lot.objects.count() == before


class DocumentedExamplesTests:
    def test_the_example_files_of_the_docs_import_cleanly_in_order(self, world: World) -> None:
        """docs/import.md's examples: products first, then their lots, then patients."""
        client = signed_in(world.manager)
        for kind in ("products", "lots", "patients"):
            content = (EXAMPLES / f"{kind}.csv").read_bytes()
            job = uploaded_and_checked(client, kind, content)
            assert problems(job) == [], kind
            run(client, job)
            job.refresh_from_db()
            assert job.is_imported, kind
        assert Lot.objects.filter(product__name="Hair cocktail", lot_number="HC-0007").exists()
        assert Patient.objects.filter(clinic=world.clinic).count() == 3


class ImportAccessTests:
    @pytest.mark.parametrize("role", ["front_desk", "practitioner"])
    def test_only_a_manager_may_import(self, world: World, role: str) -> None:
        client = signed_in(getattr(world, role))
        assert client.get("/manage/import/").status_code == 403
        assert upload(client, "patients", PATIENTS).status_code == 403
        job = job_of(upload(signed_in(world.manager), "patients", PATIENTS))
        assert client.get(f"/manage/import/{job.pk}/").status_code == 403
        assert check(client, job).status_code == 403
        assert run(client, job).status_code == 403
        assert client.get(f"/manage/import/{job.pk}/report.csv").status_code == 403
        assert not Patient.objects.exists()

    def test_another_clinics_manager_cannot_see_or_run_a_job(
        self, world: World, other: World
    ) -> None:
        job = job_of(upload(signed_in(world.manager), "patients", PATIENTS))
        client = signed_in(other.manager)
        assert client.get(f"/manage/import/{job.pk}/").status_code == 404
        assert check(client, job).status_code == 404
        assert run(client, job).status_code == 404
        assert client.get(f"/manage/import/{job.pk}/report.csv").status_code == 404
        page = client.get("/manage/import/").content.decode()
        assert "file.csv" not in page
        assert not Patient.objects.exists()

    def test_lots_are_matched_only_to_the_importing_clinics_products(
        self, world: World, other: World
    ) -> None:
        client = signed_in(other.manager)
        job = uploaded_and_checked(client, "lots", lots_file(world))
        assert [p[2] for p in problems(job)] == [
            f"No product called “{world.product.name}” is in the formulary.",
            f"No product called “{world.lidocaine_product.name}” is in the formulary.",
        ]


class ImportRaceTests:
    def test_import_pressed_on_four_screens_at_once_imports_the_file_once(
        self, shared_db: str
    ) -> None:
        """The job's row is locked before it is checked and imported: one request imports
        the 200 patients, the three others find the file already imported."""
        seeded = run_script(IMPORT_CHILD, shared_db, "seed", {})
        request = {
            "path": f"/manage/import/{seeded['job']}/import/",
            "login": seeded["manager"],
            "body": {},
        }
        outputs = race_processes(
            RACE_CHILD, shared_db, [{"requests": [request, request]}, {"requests": [request] * 2}]
        )
        results = [r for output in outputs for r in output]
        assert [r["status"] for r in results] == [302] * 4, results
        assert run_script(IMPORT_CHILD, shared_db, "count", seeded) == {
            "patients": 200,
            "audits": 200,
        }
