"""Importing patients, products with their ingredients, and lots from a CSV file.

1. `do_upload` decodes the file, finds its delimiter, reads its header and keeps it all in an
   ImportJob, with a column guessed for each field from the headers.
2. `do_check` stores the columns the manager chose and validates every row with the forms the
   pages use (web/forms.py, web/manage_forms.py), so a row is refused for exactly what a person
   typing it would be refused for, plus the duplicates a file brings: twice in the file, or
   already on file. Each problem names the row (as the spreadsheet numbers it, header = 1), the
   column (the file's own header) and what is wrong, in words.
3. `do_import` validates again under a lock on the job and, only when no row has a problem,
   creates everything in one transaction with one audit row per object created. A file with any
   problem imports nothing; a database error half-way rolls everything back.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.db import transaction
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent, Clinic, audit, audit_many
from mesoclinic.formulary.models import Ingredient, Lot, Product, ProductIngredient
from mesoclinic.imports import logic
from mesoclinic.imports.models import ImportJob
from mesoclinic.lib import formats
from mesoclinic.patients.models import Patient
from mesoclinic.web.forms import PatientForm
from mesoclinic.web.manage_forms import ComponentForm, LotForm, ProductForm

Kind = ImportJob.Kind

# Other headers each field goes by, besides its key and its label (compared without case,
# accents, spaces or punctuation: logic.normalise).
OTHER_NAMES: dict[str, tuple[str, ...]] = {
    "first_name": ("first", "given name", "forename", "prenom", "vorname", "nombre"),
    "last_name": ("last", "surname", "family name", "nom", "nachname", "apellido"),
    "date_of_birth": ("dob", "birth date", "birthdate", "born", "birthday", "date de naissance"),
    "sex": ("gender", "sexe"),
    "phone": ("telephone", "tel", "mobile", "cell", "phone number", "telefon", "telefono"),
    "email": ("e-mail", "mail", "email address", "courriel"),
    "address": ("street address", "postal address", "home address", "adresse"),
    "product": ("product", "product name", "name"),
    "supplier": ("manufacturer", "maker", "brand", "vendor", "laboratory"),
    "vial": ("vial kind", "vial type", "type of vial", "container"),
    "ingredient": ("ingredient key", "ingredient name", "substance", "active ingredient"),
    "concentration": ("strength", "amount"),
    "unit": ("units", "concentration unit"),
    "lot_number": ("lot", "lot no", "lot #", "batch", "batch number", "batch no"),
    "expires_on": ("expiry", "expires", "expiry date", "expiration", "expiration date", "exp"),
    "received_on": ("received", "date received", "delivered", "delivery date"),
}

REQUIRED = "This cell is empty, but it needs a value."


@dataclass(frozen=True)
class Field:
    """A field a column can be mapped to."""

    key: str
    label: str
    required: bool
    names: tuple[str, ...]
    help: str = ""


@dataclass(frozen=True)
class Problem:
    row: int | None  # None: about the file as a whole
    column: str
    problem: str

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "column": self.column, "problem": self.problem}


def _field(key: str, label: str, required: bool, help: str = "") -> Field:
    return Field(key, label, required, (key, label, *OTHER_NAMES.get(key, ())), help)


def _patient_fields() -> list[Field]:
    """The registration form's fields, so a field the form gains can be imported too. A field
    with a default (sex: "not stated") may be left out of the file."""
    out = []
    for key, f in PatientForm.base_fields.items():
        has_default = f.initial not in (None, "")
        out.append(_field(key, str(f.label or key), f.required and not has_default))
    return out


def fields_for(kind: str) -> list[Field]:
    if kind == Kind.PATIENTS:
        return _patient_fields()
    if kind == Kind.PRODUCTS:
        return [
            _field("product", "Product name", True, "Rows with the same name are one product."),
            _field("supplier", "Supplier", True),
            _field("vial", "Vial", True, "Single-dose or multi-dose."),
            _field("ingredient", "Ingredient", True, "The ingredient's name or key."),
            _field("concentration", "Concentration", True),
            _field("unit", "Unit", False, "mg/mL when left empty."),
        ]
    return [
        _field("product", "Product name", True, "A product already in the formulary."),
        _field("lot_number", "Lot number", True),
        _field("expires_on", "Expires on", True),
        _field("received_on", "Received on", False, "Today when left empty."),
    ]


# 1. Upload.


def do_upload(
    clinic: Clinic, kind: str, filename: str, data: bytes, *, user: Any, via: str = "web"
) -> ImportJob:
    """Keep the file in a new job, with a guessed column for each field. Raises
    logic.FileProblem when the file cannot be read as a table."""
    text, encoding = logic.decode(data)
    delimiter = logic.sniff_delimiter(text)
    table = logic.read_table(text, delimiter)
    mapping = logic.guess_mapping(table.headers, [(f.key, f.names) for f in fields_for(kind)])
    with transaction.atomic():
        job = ImportJob.objects.create(
            clinic=clinic,
            kind=kind,
            filename=filename[:200],
            encoding=encoding,
            delimiter=delimiter,
            content=text,
            mapping=mapping,
            rows=len(table.rows),
            created_by=user,
        )
        audit(
            clinic=clinic,
            user=user,
            action=AuditEvent.Action.CREATE,
            obj=job,
            via=via,
            kind=kind,
            filename=job.filename,
            rows=job.rows,
        )
    return job


def table_of(job: ImportJob) -> logic.Table:
    return logic.read_table(job.content, job.delimiter)


# 2. Checking every row.


@dataclass
class _Rows:
    """The file's rows, read through a mapping, collecting problems as they are found."""

    job: ImportJob
    table: logic.Table
    mapping: dict[str, int | None]
    fields: dict[str, Field]
    order: str
    problems: list[Problem] = field(default_factory=list)

    def column(self, key: str) -> str:
        index = self.mapping.get(key)
        if index is not None and index < len(self.table.headers):
            return self.table.headers[index] or f"column {index + 1}"
        return self.fields[key].label

    def cell(self, cells: list[str], key: str) -> str:
        index = self.mapping.get(key)
        return cells[index] if index is not None and index < len(cells) else ""

    def add(self, row: int, key: str, problem: str) -> None:
        self.problems.append(Problem(row, self.column(key), problem))

    def day(self, row: int, cells: list[str], key: str) -> str:
        """The cell's date in ISO, for the form; "" (with a problem noted) when it is none."""
        text = self.cell(cells, key)
        if not text:
            return ""
        day = logic.parse_day(text, self.order)
        if day is None:
            example = logic.date_example(self.order)
            self.add(row, key, f"“{text}” is not a date: write it as {example} or 1980-12-31.")
            return "\x00"  # refused by the form too, but that second message is not repeated
        return day.isoformat()

    def noted_on(self, row: int) -> set[str]:
        """The columns already given a problem on this row. A row's problems are noted one
        after another, so only the last ones are read (a file of 20,000 bad rows would
        otherwise read every problem again for each row)."""
        noted: set[str] = set()
        for p in reversed(self.problems):
            if p.row != row:
                break
            noted.add(p.column)
        return noted

    def form_problems(
        self, row: int, form: forms.BaseForm, key_of: dict[str, str], whole: str
    ) -> None:
        """The form's errors on this row: each on the column of its field (`key_of` maps a
        form field to an import field), errors about the whole form on `whole`'s column."""
        noted = self.noted_on(row)
        for name, errors in form.errors.as_data().items():
            key = key_of.get(name, whole)
            if self.column(key) in noted and name != "__all__":
                continue
            for error in errors:
                text = REQUIRED if error.code == "required" else " ".join(error.messages)
                self.add(row, key, text)


def _choice(text: str, choices: Iterable[tuple[Any, Any]]) -> str | None:
    """The choice a cell means: its stored value or its label, without case or accents, or the
    one label it begins ("F" for Female). None when it is none of them or could be several."""
    wanted = logic.normalise(text)
    pairs = _pairs(tuple((str(v), str(label)) for v, label in choices if v != ""))
    for value, plain, label in pairs:
        if wanted in (plain, label):
            return value
    starts = [value for value, _, label in pairs if wanted and label.startswith(wanted)]
    return starts[0] if len(starts) == 1 else None


@functools.lru_cache(maxsize=32)
def _pairs(choices: tuple[tuple[str, str], ...]) -> list[tuple[str, str, str]]:
    """(value, value normalised, label normalised) of each choice: worked out once a field,
    not once a row."""
    return [(value, logic.normalise(value), logic.normalise(label)) for value, label in choices]


def _choice_words(choices: Iterable[tuple[Any, Any]]) -> str:
    return ", ".join(str(label) for v, label in choices if v != "")


def _chosen(rows: _Rows, row: int, cells: list[str], key: str, choices: Any) -> str:
    text = rows.cell(cells, key)
    if not text:
        return ""
    value = _choice(text, choices)
    if value is None:
        rows.add(row, key, f"“{text}” is not one of: {_choice_words(choices)}.")
        return "\x00"
    return value


def _rebound(form: PatientForm | None, data: dict[str, str], instance: Patient) -> PatientForm:
    """The registration form bound to one more row. Making a form copies every field and
    widget (deepcopy), which was most of the time of checking a long file; the form is
    made once and given each row's data and a new patient instead, with what the last
    validation left behind (its errors and bound fields) cleared, so each row is validated
    exactly as a new form would validate it."""
    if form is None:
        return PatientForm(data, instance=instance)
    form.data = data
    form.instance = instance
    form._errors = None  # type: ignore[attr-defined]
    form._bound_fields_cache = {}  # type: ignore[attr-defined]
    return form


def _same_person(first: str, last: str, born: dt.date) -> tuple[str, str, dt.date]:
    return (logic.normalise(first), logic.normalise(last), born)


def _check_patients(rows: _Rows) -> list[Patient]:
    clinic = rows.job.clinic
    form_fields = PatientForm.base_fields
    ready: list[Patient] = []
    seen: dict[tuple[str, str, dt.date], int] = {}
    checked: list[tuple[int, Patient]] = []
    form: PatientForm | None = None
    for row, cells in rows.table.rows:
        data: dict[str, str] = {}
        for name, f in form_fields.items():
            if isinstance(f, forms.DateField):
                data[name] = rows.day(row, cells, name)
            elif isinstance(f, forms.ChoiceField):
                data[name] = _chosen(rows, row, cells, name, f.choices)
            else:
                data[name] = rows.cell(cells, name)
            if data[name] == "" and f.initial not in (None, ""):
                data[name] = str(f.initial() if callable(f.initial) else f.initial)
        form = _rebound(form, data, Patient(clinic=clinic))
        if not form.is_valid():
            rows.form_problems(row, form, {k: k for k in form_fields}, "last_name")
            continue
        patient = form.instance
        key = _same_person(patient.first_name, patient.last_name, patient.date_of_birth)
        if key in seen:
            rows.add(
                row,
                "last_name",
                f"{patient} born {patient.date_of_birth:%Y-%m-%d} is already on row {seen[key]}.",
            )
            continue
        seen[key] = row
        checked.append((row, patient))
    born = {p.date_of_birth for _, p in checked}
    on_file = {
        _same_person(first, last, day)
        for first, last, day in Patient.objects.filter(
            clinic=clinic, date_of_birth__in=born
        ).values_list("first_name", "last_name", "date_of_birth")
    }
    for row, patient in checked:
        if _same_person(patient.first_name, patient.last_name, patient.date_of_birth) in on_file:
            rows.add(
                row,
                "last_name",
                "A patient with this name and date of birth is already on file.",
            )
        else:
            ready.append(patient)
    return ready


@dataclass
class _NewProduct:
    form: ProductForm
    components: list[ProductIngredient]


def _ingredients(clinic: Clinic) -> dict[str, Ingredient]:
    """The ingredients a product may hold (the reference list and the clinic's own), by key
    and by name, compared like headers. The clinic's own come last, so they win a tie."""
    found: dict[str, Ingredient] = {}
    for ingredient in Ingredient.objects.filter(clinic=None).order_by("pk"):
        found[logic.normalise(ingredient.key)] = ingredient
        found[logic.normalise(ingredient.name)] = ingredient
    for ingredient in Ingredient.objects.filter(clinic=clinic).order_by("pk"):
        found[logic.normalise(ingredient.key)] = ingredient
        found[logic.normalise(ingredient.name)] = ingredient
    return found


def _product_key(name: str) -> str:
    return " ".join(name.casefold().split())


def _agrees(
    rows: _Rows, row: int, cells: list[str], first_row: int, supplier: str, vial: str
) -> bool:
    """Whether a product's later row, where it repeats the supplier or the vial, gives the
    same as its first row: a product has one of each."""
    ok = True
    text = rows.cell(cells, "supplier")
    if text and supplier and text.casefold() != supplier.casefold():
        rows.add(row, "supplier", f"This product's supplier is “{supplier}” on row {first_row}.")
        ok = False
    text = rows.cell(cells, "vial")
    if text and _choice(text, Product.Vial.choices) != vial:
        rows.add(row, "vial", f"This product's vial is given differently on row {first_row}.")
        ok = False
    return ok


def _check_product_rows(
    rows: _Rows, lines: list[tuple[int, list[str]]], known: dict[str, Ingredient]
) -> _NewProduct | None:
    """One product: its first row names it, its supplier and vial; every row adds one
    ingredient."""
    clinic = rows.job.clinic
    first_row, first = lines[0]
    vial_choices = Product.Vial.choices
    vial = _chosen(rows, first_row, first, "vial", vial_choices)
    data = {
        "name": rows.cell(first, "product"),
        "supplier": rows.cell(first, "supplier"),
        "vial": vial,
    }
    form = ProductForm(data, instance=Product(clinic=clinic))
    ok = form.is_valid()
    if not ok:
        key_of = {"name": "product", "supplier": "supplier", "vial": "vial"}
        rows.form_problems(first_row, form, key_of, "product")
    components: list[ProductIngredient] = []
    used: dict[int, int] = {}
    for row, cells in lines:
        if row != first_row and not _agrees(rows, row, cells, first_row, data["supplier"], vial):
            ok = False
        name = rows.cell(cells, "ingredient")
        ingredient = known.get(logic.normalise(name)) if name else None
        if name and ingredient is None:
            rows.add(row, "ingredient", f"No ingredient called “{name}” is known.")
            ok = False
        elif ingredient is not None and ingredient.pk in used:
            rows.add(
                row,
                "ingredient",
                f"{ingredient.name} is already listed for this product"
                f" on row {used[ingredient.pk]}.",
            )
            ok = False
            ingredient = None
        if ingredient is not None:
            used[ingredient.pk] = row
        part = ComponentForm(
            {
                "ingredient": str(ingredient.pk) if ingredient else ("\x00" if name else ""),
                "concentration": logic.parse_decimal_text(rows.cell(cells, "concentration")),
                "unit": rows.cell(cells, "unit") or "mg/mL",
            },
            clinic=clinic,
        )
        if not part.is_valid():
            key_of = {k: k for k in ("ingredient", "concentration", "unit")}
            rows.form_problems(row, part, key_of, "ingredient")
            ok = False
            continue
        if ingredient is not None:
            components.append(
                ProductIngredient(
                    ingredient=ingredient,
                    concentration=part.cleaned_data["concentration"],
                    unit=part.cleaned_data["unit"].strip(),
                )
            )
    return _NewProduct(form, components) if ok else None


def _check_products(rows: _Rows) -> list[_NewProduct]:
    groups: dict[str, list[tuple[int, list[str]]]] = {}
    for row, cells in rows.table.rows:
        name = rows.cell(cells, "product")
        if not name:
            rows.add(row, "product", REQUIRED)
            continue
        groups.setdefault(_product_key(name), []).append((row, cells))
    known = _ingredients(rows.job.clinic)
    ready = [_check_product_rows(rows, lines, known) for lines in groups.values()]
    return [p for p in ready if p is not None]


def _check_lots(rows: _Rows) -> list[Lot]:
    products = {_product_key(p.name): p for p in Product.objects.filter(clinic=rows.job.clinic)}
    seen: dict[tuple[int, str], int] = {}
    ready: list[Lot] = []
    received_default = dt.date.today().isoformat()
    for row, cells in rows.table.rows:
        name = rows.cell(cells, "product")
        product = products.get(_product_key(name)) if name else None
        if name and product is None:
            rows.add(row, "product", f"No product called “{name}” is in the formulary.")
        data = {
            "lot_number": rows.cell(cells, "lot_number"),
            "expires_on": rows.day(row, cells, "expires_on"),
            "received_on": rows.day(row, cells, "received_on") or received_default,
        }
        # For a product not found, a stand-in no lot belongs to, so the form still checks
        # the other cells of the row.
        form = LotForm(data, instance=Lot(product=product or Product(pk=0)))
        if not form.is_valid():
            key_of = {k: k for k in data}
            rows.form_problems(row, form, key_of, "lot_number")
        if not name:
            rows.add(row, "product", REQUIRED)
        if product is None or not form.is_valid():
            continue
        lot: Lot = form.instance
        key = (product.pk, lot.lot_number.casefold())
        if key in seen:
            rows.add(
                row,
                "lot_number",
                f"Lot {lot.lot_number} of {product} is already on row {seen[key]}.",
            )
            continue
        seen[key] = row
        ready.append(lot)
    return ready


CHECKS: dict[str, Callable[[_Rows], list[Any]]] = {
    Kind.PATIENTS: _check_patients,
    Kind.PRODUCTS: _check_products,
    Kind.LOTS: _check_lots,
}


def _check(job: ImportJob) -> tuple[list[Problem], list[Any]]:
    fields = {f.key: f for f in fields_for(job.kind)}
    rows = _Rows(job, table_of(job), dict(job.mapping), fields, formats.date_order(job.clinic))
    ready = CHECKS[job.kind](rows)
    problems = sorted(rows.problems, key=lambda p: (p.row or 0, p.column))
    return problems, ready


def do_check(job: ImportJob, mapping: dict[str, int | None]) -> list[Problem]:
    """Keep the columns chosen and check every row through them; the problems are kept on
    the job for the report."""
    job.mapping = mapping
    problems, _ = _check(job)
    job.problems = [p.as_dict() for p in problems]
    job.status = ImportJob.Status.CHECKED
    job.save(update_fields=["mapping", "problems", "status"])
    return problems


# 3. Importing.


class AlreadyImported(Exception):
    pass


def _create_patients(
    job: ImportJob, ready: list[Patient]
) -> tuple[dict[str, list[int]], list[Any]]:
    # bulk_create skips save(), which keeps the folded name and the normalised phone that
    # search reads: fill them first, or an imported patient could not be found.
    for patient in ready:
        patient.refresh_search_columns()
    made = Patient.objects.bulk_create(ready, batch_size=500)
    entries = [(p, p.pk, {"import": job.pk}) for p in made]
    return {"patients": [p.pk for p in made]}, entries


def _create_products(
    job: ImportJob, ready: list[_NewProduct]
) -> tuple[dict[str, list[int]], list[Any]]:
    entries = []
    ids = []
    for new in ready:
        product = new.form.save()
        for part in new.components:
            part.product = product
        ProductIngredient.objects.bulk_create(new.components)
        ids.append(product.pk)
        components = [
            {"ingredient": c.ingredient.key, "concentration": str(c.concentration), "unit": c.unit}
            for c in new.components
        ]
        entries.append((product, None, {"import": job.pk, "components": components}))
    return {"products": ids}, entries


def _create_lots(job: ImportJob, ready: list[Lot]) -> tuple[dict[str, list[int]], list[Any]]:
    made = Lot.objects.bulk_create(ready, batch_size=500)
    entries = [(lot, None, {"import": job.pk, "lot_number": lot.lot_number}) for lot in made]
    return {"lots": [lot.pk for lot in made]}, entries


CREATES: dict[str, Callable[[ImportJob, list[Any]], tuple[dict[str, list[int]], list[Any]]]] = {
    Kind.PATIENTS: _create_patients,
    Kind.PRODUCTS: _create_products,
    Kind.LOTS: _create_lots,
}


def do_import(job: ImportJob, *, user: Any, via: str = "web") -> list[Problem]:
    """Import the whole file, or nothing. Returns the problems found (nothing was imported)
    or an empty list (everything was). The job's row is locked first, so two clicks on
    Import import once; the second raises AlreadyImported."""
    with transaction.atomic():
        locked = ImportJob.objects.select_for_update().select_related("clinic").get(pk=job.pk)
        if locked.is_imported:
            raise AlreadyImported
        problems, ready = _check(locked)
        locked.problems = [p.as_dict() for p in problems]
        locked.status = ImportJob.Status.CHECKED
        if problems:
            locked.save(update_fields=["problems", "status"])
            return problems
        created, entries = CREATES[locked.kind](locked, ready)
        audit_many(
            clinic=locked.clinic,
            user=user,
            action=AuditEvent.Action.CREATE,
            via=via,
            entries=entries,
        )
        locked.created = created
        locked.status = ImportJob.Status.IMPORTED
        locked.imported_at = timezone.now()
        # The records now hold what the file held; a second copy of patients' details in the
        # upload would only be one more place to protect.
        locked.content = ""
        locked.save(update_fields=["problems", "status", "created", "imported_at", "content"])
    job.refresh_from_db()
    return []
