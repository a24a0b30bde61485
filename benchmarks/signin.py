"""What the account protections cost on the paths every user takes.

1. Load the demo clinic once.
2. Today as the practitioner, with the idle timeout as shipped (the session touched at most
   once a minute, accounts/middleware.py) and with SESSION_SAVE_EVERY_REQUEST instead,
   alternating so both see the same machine load.
3. POST /api/v1/auth/token with the right password through the throttle, against a plain
   Django authenticate() of the same user (the password hash dominates both).
4. A wrong password through the throttle: the failure counted under a row lock.
5. An authenticated API read (GET /api/v1/protocols), whose token lookup now also checks that
   the token is not revoked.
Print p50/p95 in ms and the extra queries.
"""

from __future__ import annotations

import json
import platform
import statistics
from typing import Any

from benchmarks.timing import count_queries, percentile, time_ms

RUNS = 200


def run(runs: int = RUNS) -> dict[str, float]:
    from django.contrib.auth import authenticate
    from django.test import Client, override_settings

    from mesoclinic import demo
    from mesoclinic.accounts.models import LoginThrottle, User

    demo.load(scale=1)
    user = User.objects.get(username="practitioner")
    browser = Client(HTTP_HOST="localhost")
    browser.force_login(user)
    api = Client(HTTP_HOST="localhost")

    def ok(response: Any, status: int = 200) -> None:
        if response.status_code != status:
            raise AssertionError(f"answered {response.status_code}")

    def today() -> None:
        ok(browser.get("/today/"))

    def token(password: str, status: int) -> None:
        ok(
            api.post(
                "/api/v1/auth/token",
                json.dumps({"username": "practitioner", "password": password}),
                content_type="application/json",
            ),
            status,
        )

    today()
    saving: list[float] = []
    plain: list[float] = []
    for _ in range(runs // 20):
        with override_settings(SESSION_SAVE_EVERY_REQUEST=True):
            saving += time_ms(today, 10)
        plain += time_ms(today, 10)
    with override_settings(SESSION_SAVE_EVERY_REQUEST=True):
        saving_q = count_queries(today)
    plain_q = count_queries(today)

    password = demo.PASSWORD
    fewer = max(20, runs // 5)
    auth_only = time_ms(lambda: authenticate(username="practitioner", password=password), fewer)
    right = time_ms(lambda: token(password, 200), fewer)
    right_q = count_queries(lambda: token(password, 200))
    # Wrong passwords with a limit no run reaches, so every one is counted and none locks.
    with override_settings(LOGIN_FAILURE_LIMIT=10**9, LOGIN_ADDRESS_FAILURE_LIMIT=10**9):
        wrong = time_ms(lambda: token("wrong", 401), fewer)
        wrong_q = count_queries(lambda: token("wrong", 401))
    LoginThrottle.objects.all().delete()

    raw = json.loads(
        api.post(
            "/api/v1/auth/token",
            json.dumps({"username": "practitioner", "password": password}),
            content_type="application/json",
        ).content
    )["token"]
    reads = time_ms(
        lambda: ok(api.get("/api/v1/protocols", HTTP_AUTHORIZATION=f"Bearer {raw}")), runs
    )

    figures = {
        "today_save_p50": statistics.median(saving),
        "today_save_p95": percentile(saving, 0.95),
        "today_plain_p50": statistics.median(plain),
        "today_plain_p95": percentile(plain, 0.95),
        "authenticate_p50": statistics.median(auth_only),
        "token_p50": statistics.median(right),
        "token_p95": percentile(right, 0.95),
        "wrong_p50": statistics.median(wrong),
        "wrong_p95": percentile(wrong, 0.95),
        "read_p50": statistics.median(reads),
        "read_p95": percentile(reads, 0.95),
    }
    print(f"\nSign-in protections ({platform.processor() or platform.machine()}, SQLite)")
    print(
        f"  Today, SESSION_SAVE_EVERY_REQUEST  p50 {figures['today_save_p50']:6.2f} ms  "
        f"p95 {figures['today_save_p95']:6.2f} ms  ({saving_q} queries)"
    )
    print(
        f"  Today, touched once a minute       p50 {figures['today_plain_p50']:6.2f} ms  "
        f"p95 {figures['today_plain_p95']:6.2f} ms  ({plain_q} queries)"
    )
    print(f"  authenticate() alone               p50 {figures['authenticate_p50']:6.2f} ms")
    print(
        f"  POST /auth/token, right password   p50 {figures['token_p50']:6.2f} ms  "
        f"p95 {figures['token_p95']:6.2f} ms  ({right_q} queries)"
    )
    print(
        f"  POST /auth/token, wrong password   p50 {figures['wrong_p50']:6.2f} ms  "
        f"p95 {figures['wrong_p95']:6.2f} ms  ({wrong_q} queries)"
    )
    print(
        f"  GET /protocols with a token        p50 {figures['read_p50']:6.2f} ms  "
        f"p95 {figures['read_p95']:6.2f} ms"
    )
    return figures
