"""Reads and validates protocol files (`protocols/*.toml`).

A malformed file is refused with every problem named: the file, the field and what is wrong.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mesoclinic.protocols.schema import Protocol

PROTOCOL_DIR = Path(__file__).resolve().parent


class ProtocolError(ValueError):
    """A protocol document that cannot be used. `problems` is a list of (field, message)."""

    def __init__(self, origin: str, problems: list[tuple[str, str]]):
        self.origin = origin
        self.problems = problems
        lines = "; ".join(f"{field}: {message}" for field, message in problems)
        super().__init__(f"{origin}: {lines}")


def _field_path(loc: tuple[int | str, ...]) -> str:
    # pydantic puts the generic's parameters and union branches into the location, e.g.
    # ("sessions", "Fact[IntRange]", "value", "min"); keep only the names a person wrote.
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif "[" in part or part in {"function-after", "function-before"}:
            continue
        else:
            parts.append(("." if parts else "") + part)
    return "".join(parts) or "(top level)"


def validate_protocol(
    data: dict[str, Any], origin: str, expected_key: str | None = None
) -> Protocol:
    """Validate a parsed document. Raises ProtocolError naming every field that is wrong,
    including a key that differs from `expected_key` (the file name, or the edited copy)."""
    problems: list[tuple[str, str]] = []
    if expected_key is not None and data.get("key") != expected_key:
        problems.append(("key", f"is {data.get('key')!r} but must be {expected_key!r}"))
    try:
        protocol = Protocol.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            message = error["msg"].removeprefix("Value error, ")
            problems.append((_field_path(tuple(error["loc"])), message))
    if problems:
        raise ProtocolError(origin, problems)
    return protocol


def load_protocol_file(path: Path) -> Protocol:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProtocolError(path.name, [("(file)", f"cannot be read: {exc.strerror}")]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProtocolError(path.name, [("(syntax)", str(exc))]) from None
    protocol = validate_protocol(data, path.name)
    if protocol.key != path.stem:
        raise ProtocolError(
            path.name, [("key", f"is {protocol.key!r} but the file is named {path.stem!r}")]
        )
    return protocol


def shipped_protocols(directory: Path = PROTOCOL_DIR) -> dict[str, Protocol]:
    """Every protocol file that ships with mesoclinic, by key."""
    return {p.stem: load_protocol_file(p) for p in sorted(directory.glob("*.toml"))}
