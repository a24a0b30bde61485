"""What the chart's course card shows about safety: its serious adverse events and its
infection-watch prompts with the patient's answers. Kept apart from web/safety.py so that the
chart can import it without importing the chart back."""

from __future__ import annotations

from typing import Any

from mesoclinic.courses.models import Course
from mesoclinic.safety import logic
from mesoclinic.safety.models import AdverseEvent, WatchPrompt
from mesoclinic.web.forms import CTCAE_GRADES

GRADE_WORDS = dict(CTCAE_GRADES)


def adverse_events(course: Course) -> list[AdverseEvent]:
    events = list(
        AdverseEvent.objects.filter(course=course)
        .select_related("session", "side_effect", "reported_by")
        .prefetch_related("suspected_lots__product")
    )
    for e in events:
        e.grade_words = GRADE_WORDS.get(e.ctcae_grade, "")  # type: ignore[attr-defined]
    return events


def watch_rows(course: Course) -> list[dict[str, Any]]:
    prompts = (
        WatchPrompt.objects.filter(session__course=course)
        .select_related("session", "follow_up")
        .order_by("session__number", "week")
    )
    return [
        {
            "prompt": p,
            "signs": [logic.SIGN_WORDS[s] for s in logic.reported(p.answers)],
            "warning": bool(p.warning_signs),
            "skip_words": logic.SKIP_WORDS.get(p.skip_reason, p.skip_reason),
        }
        for p in prompts
    ]


def course_safety(course: Course) -> dict[str, Any]:
    return {
        "adverse_events": adverse_events(course),
        "ae_outcomes": AdverseEvent.Outcome.choices,
        "watch": watch_rows(course),
    }
