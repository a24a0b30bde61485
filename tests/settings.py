"""Test settings: the product's settings, with a fast password hasher.

PBKDF2's many rounds are the point in production and only slow in tests, where every
fixture creates users."""

import os

from mesoclinic.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Two suites on one PostgreSQL server (a developer's and CI's) each need their own test database.
if os.environ.get("TEST_DATABASE_NAME"):
    DATABASES["default"].setdefault("TEST", {})["NAME"] = os.environ["TEST_DATABASE_NAME"]  # noqa: F405
