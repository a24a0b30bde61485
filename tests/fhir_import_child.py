"""A child process for tests/test_fhir_roundtrip.py: a clinic's manager imports FHIR files on
the import page of a new clinic's own database, as they would in the browser.

Run as `python -m tests.fhir_import_child <username> <file>...` with DJANGO_SETTINGS_MODULE
set to tests.settings and DATA_DIR to the new clinic's folder (its embedded database, created
by `mesoclinic migrate` and `mesoclinic init`). Prints one JSON line: the page's status, its
words, and what the database holds afterwards.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import django

django.setup()

from django.test.utils import setup_test_environment  # noqa: E402

# As the test runner does: the test client's host is allowed, and no email leaves.
setup_test_environment()

from django.core.files.uploadedfile import SimpleUploadedFile  # noqa: E402
from django.test import Client  # noqa: E402

from mesoclinic.accounts.models import User  # noqa: E402
from mesoclinic.patients.models import Allergy, Patient  # noqa: E402


def main(username: str, paths: list[str]) -> None:
    before = Patient.objects.count()
    client = Client()
    client.force_login(User.objects.get(username=username))
    files = [SimpleUploadedFile(Path(p).name, Path(p).read_bytes()) for p in paths]
    response = client.post("/manage/import/fhir/", {"upload": files})
    people = Patient.objects.all()
    print(
        json.dumps(
            {
                "status": response.status_code,
                "page": response.content.decode(),
                "patients_before": before,
                "patients": [[p.first_name, p.last_name, str(p.date_of_birth)] for p in people],
                "allergies": sorted(
                    [a.patient.last_name, a.substance]
                    for a in Allergy.objects.select_related("patient")
                ),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
