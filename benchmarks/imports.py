"""What a big CSV import costs: a clinic's whole patient list, through the pages a manager uses.

1. Make a clinic with a manager, and a file of PATIENTS patients (UTF-8, comma-separated,
   every column the registration form has).
2. Upload it (POST /manage/import/), check every row with the columns as guessed
   (POST /manage/import/<id>/) and import it (POST /manage/import/<id>/import/), each timed
   once and with its queries counted: an import is a one-off, not a hot path.
3. Print the seconds of each step and the rows per second of the import.
"""

from __future__ import annotations

import json
import platform
import time
from typing import Any

from benchmarks.timing import count_queries

PATIENTS = 5000


def patients_csv(count: int) -> bytes:
    lines = ["First name,Last name,Date of birth,Sex,Email,Phone,Address"]
    for i in range(count):
        born = f"{1 + i % 28:02d}/{1 + i % 12:02d}/{1940 + i % 60}"
        lines.append(
            f"Name{i},Family{i},{born},{'FM'[i % 2]},p{i}@example.com,+1 555 {i:07d},"
            f'"{i} Main Street, Springfield"'
        )
    return ("\n".join(lines) + "\n").encode()


def run(patients: int = PATIENTS) -> dict[str, float]:
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test import Client

    from mesoclinic.accounts.models import Clinic, Membership, User
    from mesoclinic.imports.models import ImportJob
    from mesoclinic.patients.actions import do_setup_clinic
    from mesoclinic.patients.models import Patient

    # A clinic that writes dates day first, as the file does.
    clinic = Clinic.objects.create(
        name="Import bench", city="Paris", timezone="Europe/Paris", date_format="d/m/Y"
    )
    do_setup_clinic(clinic)
    manager = User.objects.create_user("import-bench", password="x")
    Membership.objects.create(user=manager, clinic=clinic, role=Membership.Role.MANAGER)
    browser = Client(HTTP_HOST="localhost")
    browser.force_login(manager)
    data = patients_csv(patients)
    answers: dict[str, Any] = {}

    def ok(response: Any) -> None:
        if response.status_code != 302:
            raise AssertionError(f"answered {response.status_code}")

    def upload() -> None:
        file = SimpleUploadedFile("patients.csv", data, "text/csv")
        answers["upload"] = browser.post("/manage/import/", {"kind": "patients", "file": file})
        ok(answers["upload"])

    def job() -> ImportJob:
        return ImportJob.objects.filter(clinic=clinic).latest("pk")

    def check() -> None:
        mapping = {k: "" if v is None else str(v) for k, v in job().mapping.items()}
        ok(browser.post(f"/manage/import/{job().pk}/", mapping))

    def run_import() -> None:
        ok(browser.post(f"/manage/import/{job().pk}/import/"))

    figures: dict[str, float] = {"patients": float(patients), "file_kb": len(data) / 1024}
    for name, step in (("upload", upload), ("check", check), ("import", run_import)):
        queries = 0
        started = time.perf_counter()
        queries = count_queries(step)
        figures[f"{name}_s"] = time.perf_counter() - started
        figures[f"{name}_queries"] = float(queries)
    if job().problems or Patient.objects.filter(clinic=clinic).count() != patients:
        raise AssertionError("the benchmark's file did not import whole")
    figures["import_rows_per_s"] = patients / figures["import_s"]
    print(json.dumps({"benchmark": "imports", "machine": platform.machine(), **figures}, indent=2))
    return figures
