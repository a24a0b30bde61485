"""The API's OpenAPI schema, with every error an operation can answer.

django-ninja documents only the responses an endpoint declares, which here are its successes, so
a client generated from the schema knew nothing of the problem+json errors. `DocumentedAPI`
completes each operation's responses from what the operation is:

1. 401 and 403 where a token is required: no token or a bad one, and a role that may not act;
2. 404 where the path names an object (another clinic's objects are not found either);
3. 400, 413 and 422 where there is a body: not JSON, too large, or invalid; 422 also where there
   are parameters;
4. 409 where the operation can be refused by the state of things (a safety gate, a busy
   calendar, an alert already handled), from the list below;
5. the few an operation answers on its own (a wrong password is 401 at `POST /auth/token`).

Every error is described by one `Problem` schema, as application/problem+json. The photo image
is described as an image, not JSON.
"""

from __future__ import annotations

from typing import Any

from ninja import NinjaAPI
from ninja.openapi.schema import OpenAPISchema

PROBLEM = "application/problem+json"

# Operations that a conflict with the state of things can refuse with 409, by the name of the
# function that serves them.
CONFLICTS = {
    # A session or an allergy test refused by the protocol's safety gates.
    "record_session",
    "give_allergy_test",
    "read_allergy_test",
    "plan_course",
    # A calendar that cannot take the booking.
    "book_appointment",
    "move_appointment",
    "book_course",
    "book_maintenance",
    "cancel_appointment",
    "no_show",
    # An alert or a lot already handled.
    "acknowledge_alert",
    "close_alert",
    "recall_from_alert",
    "recall_lot",
    # A patient who may already be registered (name and birth, phone or email).
    "create_patient",
}

# Statuses an operation answers beyond those its shape implies.
EXTRA: dict[str, set[int]] = {
    # A wrong password is 401; a user with no clinic, or not of the clinic asked for, is 403;
    # guessing passwords is throttled.
    "issue_token": {401, 403, 429},
    # The body names an object (a session, a patient) that is not found in the clinic.
    "report_adverse_event": {404},
    "book_appointment": {404},
}

DESCRIPTIONS = {
    400: "The body is not JSON.",
    401: "No token, or a wrong or expired one.",
    403: "Your role may not do this.",
    404: "No such object in your clinic.",
    409: "Refused by the state of things; `reasons` (where given) says why, each with a code.",
    413: "The body is larger than this operation accepts; `limit` gives the limit in bytes.",
    422: "Invalid input; `errors` names each field and the reason.",
    429: "Too many attempts; the Retry-After header says when to try again.",
}

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "An error, as RFC 9457 problem details.",
    "type": "object",
    "properties": {
        "type": {"type": "string", "description": "A URI naming the kind of problem."},
        "title": {"type": "string", "description": "A short summary of the status."},
        "status": {"type": "integer", "description": "The HTTP status."},
        "detail": {"type": "string", "description": "What went wrong, in a sentence."},
        "errors": {
            "type": "array",
            "description": "Each field at fault and why ('' for the request as a whole).",
            "items": {
                "type": "object",
                "properties": {
                    "field": {"type": "string"},
                    "message": {"type": "string"},
                },
                "required": ["field", "message"],
            },
        },
        "reasons": {
            "type": "array",
            "description": "Why a session or a booking was refused, each with a code.",
            "items": {
                "type": "object",
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "overridable": {"type": "boolean"},
                },
                "required": ["code", "message"],
            },
        },
        "limit": {"type": "integer", "description": "The largest body accepted, in bytes."},
    },
    "required": ["type", "title", "status", "detail"],
}

IMAGE: dict[str, Any] = {
    "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
    "image/png": {"schema": {"type": "string", "format": "binary"}},
}


def _name(operation: dict[str, Any]) -> str:
    """The serving function's name: ninja's operation id is module_function."""
    op_id: str = operation.get("operationId", "")
    # mesoclinic_api_<module>_<function>; no module of the API has an underscore in its name.
    return op_id.split("_", 3)[-1]


def statuses(operation: dict[str, Any]) -> set[int]:
    """Every error status the operation can answer."""
    name = _name(operation)
    params = operation.get("parameters", [])
    found: set[int] = set(EXTRA.get(name, set()))
    if operation.get("security"):
        found |= {401, 403}
    if any(p["in"] == "path" for p in params):
        found.add(404)
    if "requestBody" in operation:
        found |= {400, 413, 422}
    if params:
        found.add(422)
    if name in CONFLICTS:
        found.add(409)
    return found


DECIMAL_TEXT = {"pattern": r"^-?[0-9]+(\.[0-9]+)?$", "maxLength": 40}


def _decimals_as_text(node: Any) -> None:
    """pydantic documents a Decimal as a number or any string; the string is a decimal number
    written out, so say so (and how long it may be). An optional Decimal adds a null."""
    if isinstance(node, dict):
        options = node.get("anyOf", [])
        kinds = [o.get("type") for o in options if isinstance(o, dict)]
        if kinds in (["number", "string"], ["number", "string", "null"]) and len(options[1]) == 1:
            options[1].update(DECIMAL_TEXT)
        for value in node.values():
            _decimals_as_text(value)
    elif isinstance(node, list):
        for value in node:
            _decimals_as_text(value)


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    _decimals_as_text(schema["components"].get("schemas", {}))
    schema["components"].setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    problem_ref = {"schema": {"$ref": "#/components/schemas/Problem"}}
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            # ninja keys the responses it declares by int; JSON would then carry a status twice.
            responses = {str(k): v for k, v in operation.get("responses", {}).items()}
            operation["responses"] = responses
            for status in sorted(statuses(operation)):
                responses[str(status)] = {
                    "description": DESCRIPTIONS[status],
                    "content": {PROBLEM: problem_ref},
                }
            if path.endswith("/image"):
                responses["200"] = {"description": "The image.", "content": IMAGE}
    return schema


class DocumentedAPI(NinjaAPI):
    def get_openapi_schema(
        self, *, path_prefix: str | None = None, path_params: dict[str, Any] | None = None
    ) -> OpenAPISchema:
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        document_errors(schema)
        return schema
