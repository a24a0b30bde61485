"""Guessing a password is throttled on every way in: the web login, the admin's login, the
API token and the password reset. After the limit even the right password fails until the
lock ends; the answer says when to try again; each lock is audited."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import pytest
import time_machine
from django.core import mail
from django.db import OperationalError, connection
from django.test import Client
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent, LoginThrottle
from tests.conftest import Api, World, build_clinic, problem_of

WRONG = "not-the-password"


def web_login(client: Client, username: str, password: str, path: str = "/accounts/login/") -> Any:
    return client.post(path, {"username": username, "password": password})


def api_token(username: str, password: str, **extra: Any) -> Any:
    return Api(None).client.post(
        "/api/v1/auth/token",
        {"username": username, "password": password},
        content_type="application/json",
        **extra,
    )


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


class WebLoginThrottleTests:
    def test_it_refuses_the_right_password_after_50_wrong_ones(self, world: World) -> None:
        client = Client()
        with time_machine.travel(dt.datetime(2026, 12, 1, 15, 0, tzinfo=dt.UTC), tick=False):
            for _ in range(50):
                web_login(client, "manager", WRONG)
            r = web_login(client, "manager", "pw")
        assert not signed_in(client)
        assert r.status_code == 200
        # The lock began at the fifth failure, 15:00 UTC, which is 10:00 in New York.
        assert "Too many attempts. Try again at 10:15." in r.content.decode()
        assert r["Retry-After"] == str(15 * 60)

    def test_the_lock_lifts_after_the_lockout(self, world: World) -> None:
        client = Client()
        with time_machine.travel(dt.datetime(2026, 12, 1, 15, 0, tzinfo=dt.UTC), tick=False):
            for _ in range(5):
                web_login(client, "manager", WRONG)
            assert web_login(client, "manager", "pw").status_code == 200
        with time_machine.travel(dt.datetime(2026, 12, 1, 15, 16, tzinfo=dt.UTC), tick=False):
            assert web_login(client, "manager", "pw").status_code == 302
            assert signed_in(client)

    def test_a_success_clears_the_accounts_failures(self, world: World) -> None:
        client = Client()
        for _ in range(4):
            web_login(client, "manager", WRONG)
        assert web_login(client, "manager", "pw").status_code == 302
        client.logout()
        for _ in range(4):
            web_login(client, "manager", WRONG)
        assert web_login(client, "manager", "pw").status_code == 302

    def test_failures_older_than_the_window_are_forgotten(self, world: World) -> None:
        client = Client()
        start = dt.datetime(2026, 12, 1, 15, 0, tzinfo=dt.UTC)
        with time_machine.travel(start, tick=False):
            for _ in range(4):
                web_login(client, "manager", WRONG)
        with time_machine.travel(start + dt.timedelta(minutes=16), tick=False):
            web_login(client, "manager", WRONG)
            assert web_login(client, "manager", "pw").status_code == 302

    def test_it_refuses_an_address_that_guesses_at_many_accounts(
        self, world: World, other: World
    ) -> None:
        client = Client()
        for n in range(20):
            web_login(client, f"nobody{n}", WRONG)
        r = web_login(client, "o_manager", "pw")
        assert not signed_in(client)
        assert "Too many attempts" in r.content.decode()
        # Another address is not held back by it.
        elsewhere = Client(REMOTE_ADDR="203.0.113.9")
        assert web_login(elsewhere, "o_manager", "pw").status_code == 302

    def test_every_lockout_is_audited_in_the_accounts_clinic(self, world: World) -> None:
        client = Client()
        for _ in range(7):
            web_login(client, "practitioner", WRONG)
        rows = AuditEvent.objects.filter(action=AuditEvent.Action.LOCKOUT)
        assert rows.count() == 1
        row = rows.get()
        assert row.clinic == world.clinic and row.user is None and row.via == "login"
        assert row.object_type == "accounts.User"
        assert row.object_id == str(world.practitioner.pk)
        assert row.detail["key"] == "account" and row.detail["failures"] == 5
        assert row.detail["address"] == "127.0.0.1" and row.detail["path"] == "/accounts/login/"


class AdminLoginThrottleTests:
    def test_it_refuses_the_right_password_after_50_wrong_ones(self, world: World) -> None:
        world.manager.is_staff = True
        world.manager.save(update_fields=["is_staff"])
        client = Client()
        for _ in range(50):
            web_login(client, "manager", WRONG, "/admin/login/")
        r = web_login(client, "manager", "pw", "/admin/login/")
        assert not signed_in(client)
        assert "Too many attempts. Try again at" in r.content.decode()
        assert int(r["Retry-After"]) > 0
        assert AuditEvent.objects.filter(action="lockout").count() == 1


class ApiTokenThrottleTests:
    def test_it_refuses_the_right_password_after_50_wrong_ones(self, world: World) -> None:
        with time_machine.travel(dt.datetime(2026, 12, 1, 15, 0, tzinfo=dt.UTC), tick=False):
            statuses = [api_token("manager", WRONG).status_code for _ in range(50)]
            r = api_token("manager", "pw")
        assert statuses[:4] == [401] * 4 and set(statuses[4:]) == {429}
        body = problem_of(r, 429)
        assert body["detail"] == "Too many attempts. Try again at 10:15."
        assert r["Retry-After"] == str(15 * 60)
        assert "token" not in body

    def test_the_lock_lifts_after_the_lockout(self, world: World) -> None:
        start = dt.datetime(2026, 12, 1, 15, 0, tzinfo=dt.UTC)
        with time_machine.travel(start, tick=False):
            for _ in range(5):
                api_token("manager", WRONG)
        with time_machine.travel(start + dt.timedelta(minutes=14), tick=False):
            r = api_token("manager", "pw")
            assert r.status_code == 429 and r["Retry-After"] == "60"
        with time_machine.travel(start + dt.timedelta(minutes=15, seconds=1), tick=False):
            assert api_token("manager", "pw").status_code == 200

    def test_a_lock_on_the_web_holds_for_the_api_too(self, world: World) -> None:
        client = Client()
        for _ in range(5):
            web_login(client, "manager", WRONG)
        assert api_token("manager", "pw").status_code == 429


class PasswordResetThrottleTests:
    def test_it_refuses_a_sixth_reset_for_one_email_within_the_window(self, world: World) -> None:
        world.manager.email = "manager@example.com"
        world.manager.save(update_fields=["email"])
        client = Client()
        answers = [
            client.post("/accounts/password_reset/", {"email": "manager@example.com"})
            for _ in range(6)
        ]
        assert [a.status_code for a in answers] == [302] * 5 + [200]
        assert "Too many attempts. Try again at" in answers[-1].content.decode()
        assert int(answers[-1]["Retry-After"]) > 0
        assert len(mail.outbox) == 5
        lockout = AuditEvent.objects.get(action="lockout")
        assert lockout.clinic == world.clinic and lockout.detail["key"] == "reset"
        assert lockout.object_id == str(world.manager.pk)


@pytest.mark.django_db(transaction=True)
class ParallelGuessTests:
    def test_parallel_guesses_are_each_counted_and_lock_once(self, settings: Any) -> None:
        """Twelve threads guess at once. Every failure is counted (no lost update), the lock
        is set once, and the right password is refused afterwards. A thread that finds
        SQLite's shared in-memory test database locked tries again, as a client would."""
        settings.LOGIN_FAILURE_LIMIT = 10
        build_clinic("Race Clinic", "race_")
        barrier = threading.Barrier(12)
        outcomes: list[int] = []

        def guess() -> None:
            try:
                barrier.wait(timeout=20)
                for _ in range(400):
                    try:
                        outcomes.append(api_token("race_manager", WRONG).status_code)
                        return
                    except OperationalError as exc:
                        assert "locked" in str(exc), exc
                        time.sleep(0.02)
            finally:
                connection.close()

        threads = [threading.Thread(target=guess) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert len(outcomes) == 12
        row = LoginThrottle.objects.get(key="account:race_manager")
        # Ten failures reach the limit; the two beyond it may have been refused before the
        # password check (429) or counted during the lock, which does not extend it.
        assert row.failures == 10
        assert row.locked_until is not None and row.locked_until > timezone.now()
        if connection.vendor == "postgresql":
            # Row locks serialise the guesses: nine are told the password is wrong, and the
            # tenth and the two after it that the account is locked. (SQLite's shared
            # in-memory test database makes threads retry whole requests, so only the counts
            # above are exact there.)
            assert outcomes.count(401) == 9 and outcomes.count(429) == 3
        assert AuditEvent.objects.filter(action="lockout", detail__key="account").count() == 1
        assert api_token("race_manager", "pw").status_code == 429
