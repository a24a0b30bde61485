"""Schemathesis sends generated requests, valid and invalid, to every operation of the API, in
process through its WSGI application, as a manager of a clinic with one of everything.

Not one answer may be a server error, and every answer must be what the OpenAPI schema says the
operation answers: a documented status, its content type, and a body of its shape.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from mesoclinic.wsgi import application
from tests.conftest import Scene, api_for

# Examples per operation and generation mode: enough to reach each operation's error paths,
# few enough that the 64 operations run in about a minute on a small CI machine.
MAX_EXAMPLES = 8

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def run_operation(
    operation: Any, mode: GenerationMode, token: str, ids: dict[str, Any]
) -> str | None:
    """Run generated cases of one operation in one mode; the first failure, or None. Valid
    cases name the scene's own objects in the path, so that they reach past the lookup; invalid
    ones name whatever they like."""
    known = {p.name: ids[p.name] for p in operation.path_parameters if p.name in ids}
    if mode == GenerationMode.NEGATIVE:
        known = {}
    failures: list[str] = []

    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=known or None))
    def run(case: Any) -> None:
        if failures:
            return
        try:
            case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)
        except (Exception, BaseExceptionGroup) as exc:  # every failure is reported, not raised
            failures.append(f"{operation.label} ({mode.value}): {exc}")

    run()
    return failures[0] if failures else None


@pytest.fixture
def connection_kept() -> Iterator[None]:
    """Schemathesis calls the WSGI application directly. Django would then close the database
    connection at the start and end of each request, as it should in production, and on
    PostgreSQL that would end the test's transaction; Django's own test client keeps the
    connection open in the same way."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


class ApiFuzzTests:
    def test_every_operation_answers_as_documented(
        self, scene: Scene, connection_kept: None
    ) -> None:
        token = api_for(scene.world.manager).token
        assert token
        schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", application)
        # PostgreSQL cannot store NUL in text; the API refuses it (tested elsewhere), and
        # leaving it out lets the examples reach further than that refusal.
        schema.config.generation.update(allow_x00=False)
        operations = [result.ok() for result in schema.get_all_operations()]
        ids = {
            "patient_id": scene.patient.pk,
            "course_id": scene.course["id"],
            "test_id": scene.course["allergy_test"],
            "session_id": scene.session["id"],
            "effect_id": scene.side_effect["id"],
            "follow_up_id": scene.follow_up,
            "appointment_id": scene.appointment,
            "product_id": scene.world.product.pk,
            "lot_id": scene.world.lot.pk,
            "key": "cellulite",
        }
        assert len(operations) > 60
        failures = [
            failure
            for operation in operations
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
            if (failure := run_operation(operation, mode, token, ids))
        ]
        assert not failures, "\n\n".join(failures)
