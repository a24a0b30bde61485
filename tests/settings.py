"""Test settings: the product's settings, with a fast password hasher.

PBKDF2's many rounds are the point in production and only slow in tests, where every
fixture creates users."""

from mesoclinic.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
