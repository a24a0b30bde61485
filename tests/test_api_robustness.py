"""No malformed request makes the API fail: every one gets a 4xx problem+json, never a 5xx.

Each case is (method, path, body, expected status). Paths and bodies are templates filled in
from the `scene` fixture; a body given as a str is sent as the raw request body.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent
from mesoclinic.courses.models import AllergyTest, Session, SideEffect
from mesoclinic.formulary.models import Lot, Product
from mesoclinic.patients.models import Consent, Patient
from tests.conftest import Api, Scene, ago, api_for, iso, problem_of, shared_copy

HUGE = 10**30  # far past any 64-bit key
NAIVE = "2024-03-01T10:00:00"
FUTURE = "2999-12-31T23:59:59-12:00"


def _later(**kwargs: float) -> str:
    return iso(timezone.now() + dt.timedelta(**kwargs))


PATIENT = {"first_name": "Ana", "last_name": "Lopez", "date_of_birth": "1990-05-17"}
COURSE = {"protocol": "cellulite", "areas": ["thighs"], "cadence_days": 7, "planned_sessions": 15}


def injection(**changes: Any) -> dict[str, Any]:
    return {"area": "thighs", "lot": "{lot}", "volume_ml": "2", **changes}


def session(**changes: Any) -> dict[str, Any]:
    return {
        "performed_at": "{recent}",
        "stimulants_avoided": True,
        "injections": [injection()],
        **changes,
    }


def allergy_test(**changes: Any) -> dict[str, Any]:
    return {
        "given_at": "{recent}",
        "injections": [{"lot": "{lot}", "site": "left"}, {"lot": "{lot}", "site": "right"}],
        **changes,
    }


def effect(**changes: Any) -> dict[str, Any]:
    return {"kind": "swelling", "onset_at": "{recent}", "grade": 1, **changes}


def product(**changes: Any) -> dict[str, Any]:
    return {
        "name": "Slim",
        "supplier": "Acme",
        "vial": "single",
        "components": [{"ingredient": "caffeine", "concentration": "1"}],
        **changes,
    }


# (method, path, body, status). "{patient}" etc. are the scene's ids; "{recent}" is a time a
# minute ago, valid wherever a time is expected.
CASES: list[tuple[str, str, Any, int]] = [
    # Bodies that are not JSON, or not an object.
    ("POST", "/patients", "{bad json", 400),
    ("POST", "/patients", "", 422),
    ("POST", "/patients", "[1, 2, 3]", 422),
    ("POST", "/patients", "null", 422),
    ("POST", "/patients", '"a string"', 422),
    ("POST", "/patients", "42", 422),
    ("POST", "/patients/{patient}/screenings", "[]", 422),
    ("POST", "/courses/{course}/sessions", "{'single': 'quotes'}", 400),
    ("POST", "/courses/{course}/sessions", '{"performed_at": ', 400),
    ("PUT", "/protocols/cellulite", "[]", 422),
    ("POST", "/auth/token", "{", 400),
    ("POST", "/auth/token", "[]", 422),
    # Wrong types.
    ("POST", "/patients", {**PATIENT, "first_name": 5}, 422),
    ("POST", "/patients", {**PATIENT, "first_name": ["Ana"]}, 422),
    ("POST", "/patients", {**PATIENT, "date_of_birth": "yesterday"}, 422),
    ("POST", "/patients", {**PATIENT, "date_of_birth": "1990-02-30"}, 422),
    ("POST", "/patients", {**PATIENT, "date_of_birth": 19900517}, 422),
    ("POST", "/patients", {**PATIENT, "email": {"a": 1}}, 422),
    ("POST", "/patients", {**PATIENT, "first_name": "A" * 101}, 422),
    ("POST", "/patients/{patient}/allergies", {"ingredient": None}, 422),
    ("POST", "/patients/{patient}/screenings", {"answers": "all no"}, 422),
    ("POST", "/patients/{patient}/screenings", {"answers": None}, 422),
    ("POST", "/patients/{patient}/consents", {"signed_name": "Ana", "products": "all"}, 422),
    ("POST", "/patients/{patient}/consents", {"signed_name": "Ana", "products": [HUGE]}, 422),
    ("POST", "/patients/{patient}/consents", {"signed_name": "Ana", "course": "one"}, 422),
    ("POST", "/patients/{patient}/consents", {"signed_name": "Ana", "course": HUGE}, 422),
    ("POST", "/patients/{patient}/courses", {**COURSE, "cadence_days": "seven"}, 422),
    ("POST", "/patients/{patient}/courses", {**COURSE, "areas": "thighs"}, 422),
    ("POST", "/patients/{patient}/courses", {**COURSE, "areas": [7]}, 422),
    ("POST", "/patients/{patient}/courses", {**COURSE, "planned_sessions": 15.5}, 422),
    ("POST", "/patients/{patient}/courses", {**COURSE, "first_session_on": "soon"}, 422),
    ("POST", "/courses/{course}/stop", {"reason": None}, 422),
    ("POST", "/courses/{course}/allergy-tests", allergy_test(injections="both arms"), 422),
    ("POST", "/courses/{course}/allergy-tests", allergy_test(injections=[{"lot": "x"}]), 422),
    ("POST", "/allergy-tests/{test}/reading", {"read_at": "{recent}", "result": "maybe"}, 422),
    ("POST", "/allergy-tests/{test}/reading", {"read_at": "{recent}"}, 422),
    ("POST", "/courses/{course}/sessions", session(stimulants_avoided="perhaps"), 422),
    ("POST", "/courses/{course}/sessions", session(injections={"area": "thighs"}), 422),
    ("POST", "/courses/{course}/sessions", session(injections=[injection(lot="L100")]), 422),
    ("POST", "/courses/{course}/sessions", session(injections=[injection(volume_ml="a lot")]), 422),
    ("POST", "/courses/{course}/sessions", session(injections=[injection(volume_ml="-1")]), 422),
    ("POST", "/courses/{course}/sessions", session(injections=[injection(volume_ml="NaN")]), 422),
    ("POST", "/courses/{course}/sessions", session(injections=[injection(volume_ml="0.001")]), 422),
    ("POST", "/courses/{course}/sessions", session(injections=[injection(technique="x")]), 422),
    ("POST", "/courses/{course}/sessions", session(override_codes="interval_too_short"), 422),
    ("POST", "/courses/{course}/sessions", session(practitioner="me"), 422),
    ("POST", "/sessions/{session}/side-effects", effect(grade="severe"), 422),
    ("POST", "/sessions/{session}/side-effects", effect(grade=2.5), 422),
    ("POST", "/sessions/{session}/side-effects", effect(kind=None), 422),
    ("POST", "/side-effects/{effect}/resolve", {"resolved_at": 1700000000.5}, 422),
    ("POST", "/follow-ups/{follow_up}/close", {"outcome": ["done"]}, 422),
    ("POST", "/products", product(vial=None), 422),
    ("POST", "/products", product(components=[{"ingredient": "caffeine"}]), 422),
    (
        "POST",
        "/products",
        product(components=[{"ingredient": "caffeine", "concentration": "-1"}]),
        422,
    ),
    ("POST", "/products/{product}/lots", {"lot_number": "N1", "expires_on": "2025-02-30"}, 422),
    ("POST", "/products/{product}/lots", {"lot_number": "", "expires_on": "2030-01-01"}, 422),
    ("POST", "/lots/{lot}/recall", {"reason": 5}, 422),
    ("PUT", "/protocols/cellulite", {"document": "the whole thing"}, 422),
    ("PUT", "/protocols/cellulite", {"document": {}}, 422),
    ("PUT", "/protocols/cellulite", {"document": {"key": "cellulite", "sessions": [1, 2]}}, 422),
    ("POST", "/auth/token", {"username": 5, "password": None}, 422),
    ("POST", "/auth/token", {"username": "manager", "password": "pw", "clinic": "mine"}, 422),
    ("GET", "/courses/{course}/session-check?performed_at=soon", None, 422),
    ("GET", "/courses/{course}/session-check?lots=a,b", None, 422),
    ("GET", "/courses/{course}/session-check?practitioner=me", None, 422),
    ("GET", "/patients/{patient}/consent-text?course=one", None, 422),
    ("GET", "/patients/{patient}/consent-text?products=1;2", None, 422),
    # Huge numbers.
    ("POST", "/patients/{patient}/courses", {**COURSE, "cadence_days": HUGE}, 422),
    ("POST", "/patients/{patient}/courses", {**COURSE, "planned_sessions": HUGE}, 422),
    ("POST", "/patients/{patient}/courses", {**COURSE, "planned_sessions": -15}, 422),
    (
        "POST",
        "/patients/{patient}/courses",
        '{"protocol": "cellulite", "areas": ["thighs"], '
        '"cadence_days": 1e400, "planned_sessions": 15}',
        422,
    ),
    (
        "POST",
        "/courses/{course}/allergy-tests",
        allergy_test(injections=[{"lot": HUGE, "site": "a"}] * 2),
        422,
    ),
    ("POST", "/courses/{course}/sessions", session(injections=[injection(lot=HUGE)]), 422),
    ("POST", "/courses/{course}/sessions", session(injections=[injection(lot=-1)]), 422),
    ("POST", "/courses/{course}/sessions", session(injections=[injection(volume_ml=1e300)]), 422),
    ("POST", "/courses/{course}/sessions", session(burning_minutes=HUGE), 422),
    ("POST", "/courses/{course}/sessions", session(practitioner=HUGE), 422),
    ("POST", "/sessions/{session}/side-effects", effect(grade=HUGE), 422),
    (
        "POST",
        "/products",
        product(components=[{"ingredient": "caffeine", "concentration": "1e30"}]),
        422,
    ),
    ("POST", "/auth/token", {"username": "manager", "password": "pw", "clinic": HUGE}, 422),
    ("GET", f"/courses/{{course}}/session-check?lots={HUGE}", None, 422),
    ("GET", f"/courses/{{course}}/session-check?practitioner={HUGE}", None, 422),
    ("GET", f"/patients/{{patient}}/consent-text?products={HUGE}", None, 422),
    ("GET", f"/patients/{{patient}}/consent-text?course={HUGE}", None, 404),
    ("GET", f"/patients/{HUGE}", None, 404),
    ("GET", f"/courses/{HUGE}", None, 404),
    ("POST", f"/lots/{HUGE}/recall", {"reason": "x"}, 404),
    # Times without a time zone, and times out of range.
    ("POST", "/patients/{patient}/consents", {"signed_name": "Ana", "signed_at": NAIVE}, 422),
    ("POST", "/courses/{course}/allergy-tests", allergy_test(given_at=NAIVE), 422),
    ("POST", "/allergy-tests/{test}/reading", {"read_at": NAIVE, "result": "none"}, 422),
    ("POST", "/courses/{course}/sessions", session(performed_at=NAIVE), 422),
    ("POST", "/sessions/{session}/side-effects", effect(onset_at=NAIVE), 422),
    ("POST", "/side-effects/{effect}/resolve", {"resolved_at": NAIVE}, 422),
    ("GET", f"/courses/{{course}}/session-check?performed_at={NAIVE}", None, 422),
    ("POST", "/courses/{course}/sessions", session(performed_at="0001-01-01T00:00:00Z"), 422),
    ("POST", "/courses/{course}/sessions", session(performed_at=FUTURE), 422),
    (
        "POST",
        "/courses/{course}/allergy-tests",
        allergy_test(given_at="0001-01-01T00:00:00+05:00"),
        422,
    ),
    ("POST", "/patients/{patient}/consents", {"signed_name": "Ana", "signed_at": FUTURE}, 422),
    ("POST", "/patients/{patient}/courses", {**COURSE, "first_session_on": "9999-12-31"}, 422),
    ("POST", "/products/{product}/lots", {"lot_number": "N1", "expires_on": "0001-01-01"}, 422),
    ("GET", "/courses/{course}/session-check?performed_at=0001-01-01T00:00:00%2B00:00", None, 422),
    # Times in the future (charting is after the fact).
    ("POST", "/courses/{course}/sessions", session(performed_at="{future}"), 422),
    ("POST", "/courses/{course}/allergy-tests", allergy_test(given_at="{future}"), 422),
    ("POST", "/allergy-tests/{test}/reading", {"read_at": "{future}", "result": "none"}, 422),
    ("POST", "/sessions/{session}/side-effects", effect(onset_at="{future}"), 422),
    ("POST", "/side-effects/{effect}/resolve", {"resolved_at": "{future}"}, 422),
    # Ids that do not exist, and strings where an id is expected.
    ("GET", "/patients/999999", None, 404),
    ("GET", "/patients/0", None, 404),
    ("GET", "/patients/-1", None, 404),
    ("GET", "/patients/abc", None, 422),
    ("GET", "/patients/1.5", None, 422),
    ("GET", "/courses/999999", None, 404),
    ("GET", "/courses/abc", None, 422),
    ("GET", "/sessions/999999", None, 404),
    ("GET", "/sessions/%F0%9F%92%89", None, 422),
    ("GET", "/protocols/nope", None, 404),
    ("PUT", "/protocols/nope", {"document": {}}, 404),
    ("POST", "/patients/999999/allergies", {"ingredient": "caffeine"}, 404),
    ("POST", "/patients/999999/screenings", {"answers": {}}, 404),
    ("GET", "/patients/999999/consent-text", None, 404),
    ("POST", "/patients/999999/consents", {"signed_name": "Ana"}, 404),
    ("POST", "/patients/999999/courses", COURSE, 404),
    ("POST", "/courses/999999/stop", {"reason": "x"}, 404),
    ("POST", "/courses/999999/allergy-tests", allergy_test(), 404),
    ("POST", "/allergy-tests/999999/reading", {"read_at": "{recent}", "result": "none"}, 404),
    ("POST", "/allergy-tests/abc/reading", {"read_at": "{recent}", "result": "none"}, 422),
    ("GET", "/courses/999999/session-check", None, 404),
    ("POST", "/courses/999999/sessions", session(), 404),
    ("POST", "/sessions/999999/side-effects", effect(), 404),
    ("POST", "/side-effects/999999/resolve", {"resolved_at": "{recent}"}, 404),
    ("POST", "/follow-ups/999999/close", {"outcome": "x"}, 404),
    ("POST", "/follow-ups/abc/close", {"outcome": "x"}, 422),
    ("POST", "/products/999999/lots", {"lot_number": "N1", "expires_on": "2030-01-01"}, 404),
    ("POST", "/lots/999999/recall", {"reason": "x"}, 404),
    ("GET", "/lots/999999/patients", None, 404),
    ("GET", "/lots/abc/patients", None, 422),
    ("POST", "/patients/{patient}/consents", {"signed_name": "Ana", "course": 999999}, 404),
    ("POST", "/patients/{patient}/consents", {"signed_name": "Ana", "products": [999999]}, 422),
    ("POST", "/courses/{course}/sessions", session(injections=[injection(lot=999999)]), 422),
    ("POST", "/courses/{course}/sessions", session(practitioner=999999), 422),
    ("GET", "/courses/{course}/session-check?lots=999999", None, 422),
    # Refusals and conflicts of state are problems too.
    ("POST", "/courses/{course}/sessions", session(), 409),
    ("POST", "/lots/{lot}/recall", {"reason": "   "}, 422),
    (
        "POST",
        "/patients/{patient}/allergies",
        {"ingredient": "caffeine", "reaction": "x" * 201},
        422,
    ),
    ("PUT", "/protocols/cellulite", {"document": {}, "change_note": "n" * 301}, 422),
    (
        "POST",
        "/products",
        product(components=[{"ingredient": "caffeine", "concentration": "1", "unit": ""}]),
        422,
    ),
]


def fill(value: Any, scene: Scene) -> Any:
    names = {
        **scene.ids,
        "recent": iso(ago(minutes=1)),
        "future": _later(hours=2),
    }
    if isinstance(value, str):
        if value.startswith("{") and value.endswith("}") and value[1:-1] in names:
            return names[value[1:-1]]  # keep an id an int, as JSON would carry it
        return re.sub(r"\{(\w+)\}", lambda m: str(names.get(m[1], m[0])), value)
    if isinstance(value, list):
        return [fill(v, scene) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, scene) for k, v in value.items()}
    return value


def send(api: Api, method: str, path: str, body: Any) -> Any:
    api.client.raise_request_exception = False  # a crash must show as a 500, not a traceback
    if method == "GET":
        return api.get(path)
    if method == "PUT" and isinstance(body, str):
        return api.client.put(
            f"/api/v1{path}", body, content_type="application/json", headers=api._headers()
        )
    if method == "PUT":
        return api.put(path, body)
    if isinstance(body, str):
        return api.post(path, raw=body)
    return api.post(path, body)


def case_id(case: tuple[str, str, Any, int]) -> str:
    method, path, body, status = case
    text = body if isinstance(body, str) else repr(body)
    return f"{method} {path} {text[:60]} -> {status}"


class ApiRobustnessTests:
    # Every test here starts from the same scene: it is built once for the class
    # (tests.conftest.class_scene), each test getting its own copy in its own savepoint.
    @pytest.fixture
    def scene(self, class_scene: Scene, db: Any) -> Scene:
        return shared_copy(class_scene)

    @pytest.mark.parametrize(("method", "path", "body", "status"), CASES, ids=map(case_id, CASES))
    def test_malformed_input_gets_a_problem_never_a_5xx(
        self, scene: Scene, method: str, path: str, body: Any, status: int
    ) -> None:
        api = api_for(scene.world.manager)
        counts = (Patient.objects.count(), Session.objects.count(), AllergyTest.objects.count())
        r = send(api, method, fill(path, scene), fill(body, scene))
        assert r.status_code < 500, r.content[:300]
        problem = problem_of(r, status)
        if status == 422 and "errors" in problem:
            assert all({"field", "message"} <= set(e) for e in problem["errors"])
            assert all(e["message"] for e in problem["errors"])
        after = (Patient.objects.count(), Session.objects.count(), AllergyTest.objects.count())
        assert after == counts, "a refused request must not write"

    @pytest.mark.parametrize(
        ("path", "body", "field"),
        [
            (
                "/patients/{patient}/consents",
                {"signed_name": "Ana", "signed_at": NAIVE},
                "signed_at",
            ),
            ("/courses/{course}/allergy-tests", allergy_test(given_at=NAIVE), "given_at"),
            (
                "/courses/{course}/allergy-tests",
                allergy_test(injections=[{"lot": "{lot}", "site": "a", "given_at": NAIVE}] * 2),
                "injections.0.given_at",
            ),
            ("/allergy-tests/{test}/reading", {"read_at": NAIVE, "result": "none"}, "read_at"),
            ("/courses/{course}/sessions", session(performed_at=NAIVE), "performed_at"),
            ("/sessions/{session}/side-effects", effect(onset_at=NAIVE), "onset_at"),
            ("/sessions/{session}/side-effects", effect(resolved_at=NAIVE), "resolved_at"),
            ("/side-effects/{effect}/resolve", {"resolved_at": NAIVE}, "resolved_at"),
        ],
    )
    def test_a_naive_time_is_refused_saying_a_time_zone_is_needed(
        self, scene: Scene, path: str, body: Any, field: str
    ) -> None:
        r = send(api_for(scene.world.manager), "POST", fill(path, scene), fill(body, scene))
        problem = problem_of(r, 422)
        [error] = [e for e in problem["errors"] if e["field"] == field]
        assert re.search(r"time ?zone", error["message"], re.IGNORECASE), error

    def test_a_preferred_time_of_day_with_a_zone_is_refused_by_name(self, scene: Scene) -> None:
        # Found by the schema fuzzer: "17:24:03Z" as a preference was a 500.
        r = send(
            api_for(scene.world.manager),
            "POST",
            f"/courses/{scene.course['id']}/booking",
            {"preferences": {"latest_time": "17:24:03Z"}, "dry_run": True},
        )
        [error] = problem_of(r, 422)["errors"]
        assert error["field"] == "preferences.latest_time"
        assert "without a time zone" in error["message"]

    def test_a_naive_time_in_the_session_check_is_refused_too(self, scene: Scene) -> None:
        r = api_for(scene.world.practitioner).get(
            f"/courses/{scene.course['id']}/session-check", performed_at=NAIVE
        )
        problem = problem_of(r, 422)
        assert problem["errors"] == [
            {"field": "performed_at", "message": "must include a time zone offset."}
        ]

    def test_every_time_in_the_future_is_refused_by_name(self, scene: Scene) -> None:
        api = api_for(scene.world.practitioner)
        soon = _later(hours=1)
        cases = [
            (f"/courses/{scene.course['id']}/sessions", session(performed_at=soon), "performed_at"),
            (
                f"/courses/{scene.course['id']}/allergy-tests",
                allergy_test(given_at=soon),
                "given_at",
            ),
            (
                f"/allergy-tests/{scene.course['allergy_test']}/reading",
                {"read_at": soon, "result": "none"},
                "read_at",
            ),
            (f"/sessions/{scene.session['id']}/side-effects", effect(onset_at=soon), "onset_at"),
            (
                f"/side-effects/{scene.side_effect['id']}/resolve",
                {"resolved_at": soon},
                "resolved_at",
            ),
            (
                f"/patients/{scene.patient.pk}/consents",
                {"signed_name": "Ana", "signed_at": soon},
                "signed_at",
            ),
        ]
        for path, body, field in cases:
            problem = problem_of(api.post(path, fill(body, scene)), 422)
            assert problem["errors"] == [{"field": field, "message": "cannot be in the future."}]
        # Nothing was written by any of them.
        assert Session.objects.count() == 1
        assert AllergyTest.objects.count() == 1
        assert Consent.objects.count() == 1
        assert SideEffect.objects.filter(resolved_at__isnull=False).count() == 0

    def test_unicode_names_round_trip(self, scene: Scene) -> None:
        api = api_for(scene.world.front_desk)
        names = [
            ("Zoë", "Ñúñez"),
            ("Łucja", "Żółć"),
            ("美咲", "佐藤"),
            ("Αλεξάνδρα", "Παπαδοπούλου"),
            ("Nguyễn", "Thị Minh Khai"),
            ("Saoirse 🌿", "O'Brien-Ó Dálaigh"),
        ]
        for first, last in names:
            r = api.post("/patients", {**PATIENT, "first_name": first, "last_name": last})
            assert r.status_code == 201, r.content
            assert (r.json()["first_name"], r.json()["last_name"]) == (first, last)
            found = api.get("/patients", q=last).json()
            assert [(p["first_name"], p["last_name"]) for p in found] == [(first, last)]
        assert api.get("/patients", q="佐").json()[0]["first_name"] == "美咲"
        assert api.get("/patients", q="🌿").json()[0]["last_name"] == "O'Brien-Ó Dálaigh"
        # Unicode in a signed name and a product name is kept as typed.
        consent = api_for(scene.world.practitioner).post(
            f"/patients/{scene.patient.pk}/consents", {"signed_name": "Ana López 李"}
        )
        assert consent.json()["signed_name"] == "Ana López 李"
        created = api_for(scene.world.manager).post("/products", product(name="Mélange Ø ✓"))
        assert created.json()["name"] == "Mélange Ø ✓"
        assert Product.objects.filter(name="Mélange Ø ✓").exists()

    def test_a_search_with_odd_characters_answers(self, scene: Scene) -> None:
        api = api_for(scene.world.front_desk)
        for q in ["%", "_", "' OR 1=1 --", "\\", "a" * 1000, "2024-13-45", "99999-01-01"]:
            r = api.get("/patients", q=q)
            assert r.status_code == 200, (q, r.content[:200])
            assert r.json() == [], q
        # A NUL character is refused by name, not a crash (PostgreSQL refuses it in a query).
        assert problem_of(api.get("/patients", q="\x00"), 422)["detail"].startswith("Text may")
        assert api.get("/lots", number="' OR 1=1 --").json() == []
        clinical = api_for(scene.world.practitioner)
        assert clinical.get("/follow-ups", status="' OR 1=1 --").json() == []

    def test_a_refused_request_writes_no_audit_row(self, scene: Scene) -> None:
        events = AuditEvent.objects.count()
        api = api_for(scene.world.manager)
        send(api, "POST", "/patients", "{bad json")
        send(api, "POST", f"/courses/{scene.course['id']}/sessions", session(performed_at=NAIVE))
        send(api, "GET", "/patients/999999", None)
        assert AuditEvent.objects.count() == events
        assert Lot.objects.filter(recalled=True).count() == 0


class ApiEdgeTests:
    def test_an_unknown_api_path_is_a_problem(self, world) -> None:
        r = api_for(world.front_desk).get("/no-such-thing")
        assert r.status_code == 404
        assert r["Content-Type"] == "application/problem+json"
        assert "/api/v1/no-such-thing" in r.json()["detail"]

    def test_a_wrong_method_is_a_problem_that_names_the_allowed_ones(self, world) -> None:
        r = api_for(world.front_desk).put("/patients", {})
        assert r.status_code == 405
        assert r["Content-Type"] == "application/problem+json"
        assert "POST" in r["Allow"]

    def test_a_nul_character_is_refused_in_a_body_and_a_query(self, world) -> None:
        api = api_for(world.front_desk)
        body = {"first_name": "A\\u0000", "last_name": "B", "date_of_birth": "1990-01-01"}
        r = api.post("/patients", raw=json.dumps(body).replace("\\\\u0000", "\\u0000"))
        assert r.status_code == 422
        assert "NUL" in r.json()["detail"]
        r = api.client.get("/api/v1/patients?q=%00", headers=api._headers())
        assert r.status_code == 422
