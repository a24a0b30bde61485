"""The round trip: the demo clinic is exported in bulk (`$export`, run by the worker, its
NDJSON files downloaded as a client downloads them) and imported into an empty database, a new
clinic's, on its FHIR import page; the patients and their allergies arrive, as many as left.

The new clinic is made as a clinic makes one: `mesoclinic migrate` and `mesoclinic init` in a
fresh folder, in their own processes, on the embedded database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction

from mesoclinic import demo
from mesoclinic.accounts.models import Clinic, User
from mesoclinic.patients.models import Allergy, Patient
from tests.conftest import api_for
from tests.test_fhir_bulk import Bulk, status_url, tick

# The new clinic's database is the embedded one whatever DATABASE_URL says.
pytestmark = pytest.mark.embedded

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).with_name("mesoclinic")


@dataclass
class Exported:
    files: list[Path]
    lines: dict[str, list[dict[str, Any]]]  # each type's resources, as written
    patients: list[list[str]]  # the demo clinic's patients: first name, last name, birth date
    allergies: list[list[str]]  # what the export says each is allergic to: last name, substance


@pytest.fixture(scope="class")
def exported(
    django_db_setup: Any, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Exported]:
    folder = tmp_path_factory.mktemp("export")
    with django_db_blocker.unblock(), transaction.atomic():
        assert demo.load() is True
        clinic = Clinic.objects.get(name=demo.CLINIC_NAME)
        manager = User.objects.get(username="manager")
        client = Bulk(api_for(manager).token)
        status = status_url(client.kick_off("$export", _type="Patient,AllergyIntolerance"))
        tick()
        manifest = client.get(status)
        assert manifest.status_code == 200, manifest.content
        files, lines = [], {}
        for output in json.loads(manifest.content)["output"]:
            response = client.get(output["url"])
            assert response.status_code == 200
            content = b"".join(response.streaming_content)
            path = folder / f"{output['type']}.ndjson"
            path.write_bytes(content)
            files.append(path)
            lines[output["type"]] = [json.loads(line) for line in content.splitlines()]
        people = Patient.objects.filter(clinic=clinic)
        by_id = {p.pk: p for p in people}
        allergies = []
        for resource in lines["AllergyIntolerance"]:
            status_codes = [c["code"] for c in resource["verificationStatus"]["coding"]]
            if "entered-in-error" not in status_codes:
                pid = int(resource["patient"]["reference"].removeprefix("Patient/"))
                allergies.append([by_id[pid].last_name, resource["code"]["text"]])
        yield Exported(
            files,
            lines,
            sorted([p.first_name, p.last_name, str(p.date_of_birth)] for p in people),
            sorted(allergies),
        )
        transaction.set_rollback(True)


def run(folder: Path, *command: str, **env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "SECRET_KEY"}}
    environment.update({"DATA_DIR": str(folder / "data"), "PYTHONPATH": str(ROOT), **env})
    environment.pop("DJANGO_SETTINGS_MODULE", None)
    if command[0] == "python":
        environment["DJANGO_SETTINGS_MODULE"] = "tests.settings"
        command = (sys.executable, *command[1:])
    else:
        command = (str(BIN), *command)
    done = subprocess.run(
        command, cwd=folder, env=environment, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


class RoundTripTests:
    def test_the_demo_clinic_exported_in_bulk_imports_into_an_empty_database(
        self, exported: Exported, tmp_path: Path
    ) -> None:
        assert len(exported.lines["Patient"]) == len(exported.patients) > 0
        assert exported.allergies, "the demo clinic has allergies to carry"
        run(tmp_path, "migrate", "--no-input")
        run(
            tmp_path,
            "init",
            "--no-input",
            "--clinic-name=Next Clinic",
            "--timezone=Europe/London",
            "--currency=GBP",
            "--username=boss",
            "--first-name=Bea",
            "--last-name=Boss",
            "--email=boss@example.com",
            MESOCLINIC_MANAGER_PASSWORD="a long enough password 1",
        )
        out = run(
            tmp_path,
            "python",
            "-m",
            "tests.fhir_import_child",
            "boss",
            *[str(p) for p in exported.files],
        )
        arrived = json.loads(out.strip().splitlines()[-1])
        assert arrived["status"] == 200, arrived["page"]
        assert arrived["patients_before"] == 0
        assert sorted(arrived["patients"]) == exported.patients
        assert arrived["allergies"] == exported.allergies
        n, a = len(exported.patients), len(exported.allergies)
        assert f"Imported {n} patients and {a} allerg" in arrived["page"]


def test_nothing_of_the_demo_clinic_is_left_behind(db: Any) -> None:
    # The class's fixture rolls the demo back: this database holds no demo patient.
    assert not Patient.objects.filter(clinic__name=demo.CLINIC_NAME).exists()
    assert not Allergy.objects.filter(patient__clinic__name=demo.CLINIC_NAME).exists()
