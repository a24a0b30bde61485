"""The signed link to a recall notice: it names the notice, signed with SECRET_KEY and its own
salt, so no other link of the product opens it. It works for NOTICE_MAX_AGE: long enough for
a patient who reads their mail late."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core import signing
from django.urls import reverse

SALT = "mesoclinic.notify.notice"
NOTICE_MAX_AGE = dt.timedelta(days=180)


class BadLink(Exception):
    def __init__(self, expired: bool = False):
        super().__init__("expired" if expired else "invalid")
        self.expired = expired


def make_token(notice_id: int) -> str:
    return signing.dumps({"n": notice_id}, salt=SALT)


def read_token(token: str) -> int:
    try:
        payload = signing.loads(token, salt=SALT, max_age=NOTICE_MAX_AGE)
    except signing.SignatureExpired:
        raise BadLink(expired=True) from None
    except signing.BadSignature:
        raise BadLink() from None
    try:
        return int(payload["n"])
    except (TypeError, KeyError, ValueError):
        raise BadLink() from None


def notice_url(notice_id: int) -> str:
    path = reverse("notify:notice", args=[make_token(notice_id)])
    return f"{settings.SITE_URL.rstrip('/')}{path}"


def absolute(name: str) -> str:
    return f"{settings.SITE_URL.rstrip('/')}{reverse(name)}"
