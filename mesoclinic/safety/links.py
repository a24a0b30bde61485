"""The signed link in an infection-watch email, to its questionnaire.

A token names the prompt, signed with SECRET_KEY and a salt of its own, so a reminder's link
cannot open a questionnaire or the other way round. It is made when the email is built, so its
age is the email's; after logic.LINK_MAX_AGE it is refused.
"""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.urls import reverse

from mesoclinic.safety import logic
from mesoclinic.safety.models import WatchPrompt

SALT = "mesoclinic.safety.watch"


class BadLink(Exception):
    """The token was tampered with, is malformed, is for another purpose, or has expired."""

    def __init__(self, expired: bool = False):
        super().__init__("expired" if expired else "invalid")
        self.expired = expired


def make_token(prompt: WatchPrompt) -> str:
    return signing.dumps({"w": prompt.pk}, salt=SALT)


def read_token(token: str) -> int:
    """The id of the prompt a token names, or BadLink."""
    try:
        payload = signing.loads(token, salt=SALT, max_age=logic.LINK_MAX_AGE)
    except signing.SignatureExpired:
        raise BadLink(expired=True) from None
    except signing.BadSignature:
        raise BadLink() from None
    try:
        return int(payload["w"])
    except (TypeError, KeyError, ValueError):
        raise BadLink() from None


def absolute_url(prompt: WatchPrompt) -> str:
    path = reverse("safety:watch", args=[make_token(prompt)])
    return f"{settings.SITE_URL.rstrip('/')}{path}"
