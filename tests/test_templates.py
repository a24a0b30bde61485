"""Checks over every template file."""

from __future__ import annotations

import re
from pathlib import Path

import mesoclinic

TEMPLATES = Path(mesoclinic.__file__).parent / "templates"


def test_no_template_comment_spans_lines() -> None:
    # Django's {# #} comment ends at the line's end: one that spans lines is printed on the
    # page as text. A longer note uses {% comment %}.
    spanning = [
        f"{path.relative_to(TEMPLATES)}:{number}"
        for path in sorted(TEMPLATES.rglob("*.html")) + sorted(TEMPLATES.rglob("*.txt"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\{#(?!.*#\})", line)
    ]
    assert spanning == []
