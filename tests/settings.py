"""Test settings: the product's settings, with a fast password hasher.

PBKDF2's many rounds are the point in production and only slow in tests, where every
fixture creates users."""

import os

from mesoclinic.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Two suites on one PostgreSQL server (a developer's and CI's) each need their own test database.
if os.environ.get("TEST_DATABASE_NAME"):
    DATABASES["default"].setdefault("TEST", {})["NAME"] = os.environ["TEST_DATABASE_NAME"]  # noqa: F405

# Photos the tests (and the demo loaded by them) store go to a directory of their own, never
# into the developer's DATA_DIR/media.
import atexit  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

MEDIA_ROOT = Path(tempfile.mkdtemp(prefix="mesoclinic-test-media-"))  # noqa: F405
atexit.register(shutil.rmtree, MEDIA_ROOT, ignore_errors=True)
STORAGES["clinical_photos"]["OPTIONS"]["location"] = MEDIA_ROOT  # noqa: F405

# Bulk FHIR exports the tests run are written to a directory of their own too.
FHIR_EXPORT_DIR = Path(tempfile.mkdtemp(prefix="mesoclinic-test-fhir-exports-"))  # noqa: F405
atexit.register(shutil.rmtree, FHIR_EXPORT_DIR, ignore_errors=True)

# Every FHIR resource the tests are served is checked by fhir.resources' R4B models first; a
# resource that is not valid FHIR fails the test that asked for it (mesoclinic.fhir.mapping).
FHIR_VALIDATE = True
