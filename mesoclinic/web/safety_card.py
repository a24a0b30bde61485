"""What the chart's course card shows about safety: its serious adverse events and its
infection-watch prompts with the patient's answers. Kept apart from web/safety.py so that the
chart can import it without importing the chart back."""

from __future__ import annotations

from typing import Any

from mesoclinic.courses.models import Course
from mesoclinic.safety import logic
from mesoclinic.safety.models import AdverseEvent, WatchPrompt
from mesoclinic.web.forms import CTCAE_GRADES
from mesoclinic.web.timeline import Records

GRADE_WORDS = dict(CTCAE_GRADES)


def adverse_events(course: Course, events: list[AdverseEvent] | None = None) -> list[AdverseEvent]:
    """The course's serious adverse events with their grade in words; `events`, when given,
    are the course's events already read (timeline.load reads them as this does)."""
    if events is None:
        events = list(
            AdverseEvent.objects.filter(course=course)
            .select_related("session", "side_effect", "reported_by")
            .prefetch_related("suspected_lots__product")
        )
    for e in events:
        e.grade_words = GRADE_WORDS.get(e.ctcae_grade, "")  # type: ignore[attr-defined]
    return events


def watch_rows(course: Course, prompts: list[WatchPrompt] | None = None) -> list[dict[str, Any]]:
    if prompts is None:
        prompts = list(
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


def watch_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What the card shows before the full schedule: every answer (warning signs first), the
    next prompt to go, and the counts by status, so four prompts a session stay readable."""
    answered = [r for r in rows if r["prompt"].status == WatchPrompt.Status.ANSWERED]
    answered.sort(key=lambda r: (not r["warning"], -r["prompt"].answered_at.timestamp()))
    waiting = [
        r["prompt"]
        for r in rows
        if r["prompt"].status in (WatchPrompt.Status.PENDING, WatchPrompt.Status.SENDING)
    ]
    counts: dict[str, int] = {}
    for r in rows:
        label = r["prompt"].get_status_display().lower()
        counts[label] = counts.get(label, 0) + 1
    return {
        "answered": answered,
        "next": min(waiting, key=lambda p: p.due_at) if waiting else None,
        "counts": sorted(counts.items()),
    }


def course_safety(course: Course, records: Records | None = None) -> dict[str, Any]:
    """The card's keys; from the course's timeline records when given, with no query."""
    watch = watch_rows(course, records.watch_prompts if records else None)
    return {
        "adverse_events": adverse_events(course, records.adverse_events if records else None),
        "ae_outcomes": AdverseEvent.Outcome.choices,
        "watch": watch,
        "watch_summary": watch_summary(watch),
    }
