"""The infection watch's outbox: planning a prompt at 2, 4, 8 and 12 weeks after each session,
and sending the due ones, once however many workers run.

1. `do_plan_watch` creates the prompts of every session performed within logic.PLAN_WINDOW
   that lacks them. The unique constraint on (session, week) and `ignore_conflicts` make
   planning twice, or by two workers at once, create nothing more. A prompt that is already
   stale, or whose patient has no email, is created as skipped with its reason, so the chart
   shows why no email went.
2. `send_due` claims due prompts through lib/outbox.py (the reminders' claim, lease and retry)
   and `deliver` sends each one, asking logic.skip_reason again right before sending.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from django.utils import timezone

from mesoclinic.courses.models import Session
from mesoclinic.lib.outbox import Outbox
from mesoclinic.safety import logic
from mesoclinic.safety.emails import watch_message
from mesoclinic.safety.models import WatchPrompt

BATCH = 10
Status = WatchPrompt.Status
OUTBOX = Outbox(WatchPrompt, lease=logic.LEASE, max_attempts=logic.MAX_ATTEMPTS)


def do_plan_watch(now: dt.datetime | None = None) -> int:
    """Create the missing prompts of every session performed within logic.PLAN_WINDOW, and
    bring back prompts skipped for want of an email once the patient has one. Returns how many
    rows this call created, skipped ones included."""
    now = now or timezone.now()
    sessions = list(
        Session.objects.filter(
            performed_at__gt=now - logic.PLAN_WINDOW, performed_at__lte=now
        ).select_related("course__clinic", "course__patient")
    )
    have = set(WatchPrompt.objects.filter(session__in=sessions).values_list("session_id", "week"))
    rows = [
        _planned(s, week, now)
        for s in sessions
        for week in logic.WATCH_WEEKS
        if (s.pk, week) not in have
    ]
    WatchPrompt.objects.bulk_create(rows, ignore_conflicts=True)
    _revive(now)
    return len(rows)


def _planned(session: Session, week: int, now: dt.datetime) -> WatchPrompt:
    clinic = session.course.clinic
    due = logic.due_at(session.performed_at, week, clinic.tz)
    reason = logic.skip_reason(email=session.course.patient.email, due=due, now=now)
    return WatchPrompt(
        clinic=clinic,
        session=session,
        week=week,
        due_at=due,
        next_attempt_at=due,
        status=Status.SKIPPED if reason else Status.PENDING,
        skip_reason=reason or "",
    )


def _revive(now: dt.datetime) -> None:
    """A prompt skipped because the patient had no email goes back to pending once they have
    one, unless it has gone stale meanwhile."""
    skipped = WatchPrompt.objects.filter(
        status=Status.SKIPPED,
        skip_reason__in=logic.REVIVABLE,
        due_at__gte=now - logic.STALE_AFTER,
    ).exclude(session__course__patient__email="")
    for prompt in skipped:
        WatchPrompt.objects.filter(pk=prompt.pk, status=Status.SKIPPED).update(
            status=Status.PENDING,
            skip_reason="",
            attempts=0,
            next_attempt_at=max(prompt.due_at, now),
            last_error="",
        )


@dataclass(frozen=True)
class Outcome:
    """What happened to one claimed prompt; the worker logs one line of it."""

    prompt: int
    session: int
    week: int
    status: str
    detail: str = ""

    @classmethod
    def of(cls, prompt: WatchPrompt, status: str, detail: str = "") -> Outcome:
        return cls(prompt.pk, prompt.session_id, prompt.week, status, detail)

    def __str__(self) -> str:
        detail = f": {self.detail}" if self.detail else ""
        return (
            f"watch prompt {self.prompt} (week {self.week}, session {self.session}) "
            f"{self.status}{detail}"
        )


def deliver(prompt: WatchPrompt) -> Outcome:
    """Send one claimed prompt, unless the patient, read afresh, has no email or it has gone
    stale. A failure to send is retried with the outbox's backoff."""
    fresh = (
        WatchPrompt.objects.select_related("clinic", "session__course__patient")
        .filter(pk=prompt.pk)
        .first()
    )
    if fresh is None:  # The session was deleted, and its prompts with it.
        return Outcome.of(prompt, "gone")
    to = fresh.session.course.patient.email
    reason = logic.skip_reason(email=to, due=fresh.due_at, now=timezone.now())
    return Outcome.of(
        prompt,
        *OUTBOX.send(prompt, skip_reason=reason, to=to, message=lambda: watch_message(fresh, to)),
    )


def send_due(
    worker: str,
    *,
    limit: int = BATCH,
    report: Callable[[Outcome], None] | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> list[Outcome]:
    """Claim and deliver due prompts until none is left (or `stop()`)."""
    return OUTBOX.drain(worker, deliver, limit=limit, report=report, stop=stop)
