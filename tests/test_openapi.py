"""The OpenAPI schema tells a client the truth: every error an operation answers, the photo image
as an image, each body under its own name, and a limit on every text it accepts."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    response = Client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    data: dict[str, Any] = response.json()
    return data


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, ops in schema["paths"].items()
        for method, op in ops.items()
    ]


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        node = schema["components"]["schemas"][name]
    return node


def body_schema(schema: dict[str, Any], op: dict[str, Any]) -> dict[str, Any]:
    content = op["requestBody"]["content"]
    return resolve(schema, next(iter(content.values()))["schema"])


class OpenApiTests:
    def test_every_error_is_documented_as_a_problem(self, schema: dict[str, Any]) -> None:
        for method, path, op in operations(schema):
            errors = {int(s): r for s, r in op["responses"].items() if int(s) >= 400}
            assert 422 in errors or not (op.get("parameters") or op.get("requestBody")), path
            for status, response in errors.items():
                assert list(response["content"]) == [PROBLEM], (method, path, status)
                ref = response["content"][PROBLEM]["schema"]["$ref"]
                assert ref == "#/components/schemas/Problem"

    def test_401_and_403_only_where_a_token_is_needed(self, schema: dict[str, Any]) -> None:
        for method, path, op in operations(schema):
            if path.endswith("/auth/token"):
                continue
            needs_token = bool(op.get("security"))
            assert ("401" in op["responses"]) == needs_token, (method, path)
            assert ("403" in op["responses"]) == needs_token, (method, path)

    def test_404_where_the_path_names_an_object(self, schema: dict[str, Any]) -> None:
        for method, path, op in operations(schema):
            if "{" in path:
                assert "404" in op["responses"], (method, path)
        listed = schema["paths"]["/api/v1/patients"]["get"]["responses"]
        assert "404" not in listed

    def test_a_body_may_be_too_large_or_not_json(self, schema: dict[str, Any]) -> None:
        for method, path, op in operations(schema):
            has_body = "requestBody" in op
            assert ("413" in op["responses"]) == has_body, (method, path)
            assert ("400" in op["responses"]) == has_body, (method, path)

    def test_409_where_an_operation_can_be_refused(self, schema: dict[str, Any]) -> None:
        paths = schema["paths"]
        assert "409" in paths["/api/v1/courses/{course_id}/sessions"]["post"]["responses"]
        assert "409" in paths["/api/v1/appointments"]["post"]["responses"]
        assert "409" in paths["/api/v1/safety/alerts/{alert_id}/close"]["post"]["responses"]
        assert "409" not in paths["/api/v1/patients/{patient_id}"]["get"]["responses"]

    def test_the_token_endpoint_answers_a_wrong_password_with_401(
        self, schema: dict[str, Any]
    ) -> None:
        responses = schema["paths"]["/api/v1/auth/token"]["post"]["responses"]
        assert {"401", "422"} <= set(responses)

    def test_the_photo_image_is_an_image(self, schema: dict[str, Any]) -> None:
        ok = schema["paths"]["/api/v1/photos/{photo_id}/image"]["get"]["responses"]["200"]
        assert set(ok["content"]) == {"image/jpeg", "image/png"}

    def test_the_allergy_reading_is_documented_with_its_own_fields(
        self, schema: dict[str, Any]
    ) -> None:
        reading = schema["paths"]["/api/v1/allergy-tests/{test_id}/reading"]["post"]
        assert set(body_schema(schema, reading)["properties"]) == {"read_at", "result", "notes"}
        visit = body_schema(schema, schema["paths"]["/api/v1/courses/{course_id}/visits"]["post"])
        item = resolve(schema, visit["properties"]["measurements"]["items"])
        assert {"kind", "value", "items", "site", "area"} == set(item["properties"])
        assert "ReadingIn" not in schema["components"]["schemas"]

    def test_every_text_the_api_accepts_has_a_maximum_length(self, schema: dict[str, Any]) -> None:
        unbounded: list[str] = []

        def walk(node: dict[str, Any], where: str) -> None:
            node = resolve(schema, node)
            for option in node.get("anyOf", []):
                walk(option, where)
            kind = node.get("type")
            bounded = {"enum", "format", "maxLength", "pattern"} & set(node)
            if kind == "string" and not bounded:
                unbounded.append(where)
            if kind == "array":
                walk(node["items"], f"{where}[]")
            for name, prop in node.get("properties", {}).items():
                walk(prop, f"{where}.{name}")
            extra = node.get("additionalProperties")
            if isinstance(extra, dict) and extra:
                walk(extra, f"{where}.*")

        for method, path, op in operations(schema):
            if "requestBody" in op:
                content = op["requestBody"]["content"]
                if "application/json" in content:
                    walk(content["application/json"]["schema"], f"{method} {path}")
        assert unbounded == []
