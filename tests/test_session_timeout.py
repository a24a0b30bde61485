"""A signed-in browser is signed out after SESSION_IDLE_TIMEOUT_MINUTES without a request;
a request moves the expiry on (at most once a minute, so page views are not all writes)."""

from __future__ import annotations

import datetime as dt

import time_machine
from django.conf import settings
from django.test import Client

from tests.conftest import World

START = dt.datetime(2026, 12, 1, 14, 0, tzinfo=dt.UTC)


def at(minutes: float) -> time_machine.travel:
    return time_machine.travel(START + dt.timedelta(minutes=minutes), tick=False)


class SessionIdleTimeoutTests:
    def test_the_default_is_thirty_minutes(self) -> None:
        assert settings.SESSION_IDLE_TIMEOUT_MINUTES == 30
        assert settings.SESSION_COOKIE_AGE == 30 * 60

    def test_a_page_view_within_a_minute_does_not_write_the_session(self, world: World) -> None:
        from django.contrib.sessions.models import Session

        client = Client()
        with at(0):
            client.post("/accounts/login/", {"username": "manager", "password": "pw"})
        key = client.session.session_key
        first = Session.objects.get(session_key=key).expire_date
        with at(0.5):
            assert client.get("/today/").status_code == 200
        assert Session.objects.get(session_key=key).expire_date == first
        with at(2):
            assert client.get("/today/").status_code == 200
        assert Session.objects.get(session_key=key).expire_date == first + dt.timedelta(minutes=2)

    def test_activity_keeps_the_session_and_idleness_ends_it(self, world: World) -> None:
        client = Client()
        with at(0):
            assert (
                client.post(
                    "/accounts/login/", {"username": "manager", "password": "pw"}
                ).status_code
                == 302
            )
        with at(29):
            assert client.get("/today/").status_code == 200
        with at(58):
            # 58 minutes after signing in, but only 29 after the last request.
            assert client.get("/today/").status_code == 200
        with at(89):
            r = client.get("/today/")
        assert r.status_code == 302
        assert r["Location"].startswith("/accounts/login/")
