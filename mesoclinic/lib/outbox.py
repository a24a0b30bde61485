"""An outbox of emails to send: rows planned ahead, claimed by one worker at a time, retried
with a backoff, and kept as the history. Appointment reminders (reminders.Reminder) and
infection-watch prompts (safety.WatchPrompt) both use it; each keeps its own rules about what
to send and when to skip.

A row of an outbox model has `status` (pending, sending, sent, failed, skipped, …),
`skip_reason`, `next_attempt_at`, `attempts`, `claim_token`, `claimed_by`, `claimed_at`,
`last_error`, `sent_at` and `sent_to`.

1. `claim` takes due rows with one conditional UPDATE (pending and due, or sending with an
   expired lease) that stamps a fresh token, then reads back the rows holding that token. On
   PostgreSQL a row another transaction changed first is re-checked against the WHERE once that
   one commits, and left alone; on SQLite writers take turns. So no row is held twice.
2. The caller's `deliver` reads the row's subject afresh and decides whether to skip it;
   `send` then checks, right before sending, that the claim is still held (`held`), and
   records the outcome under the same condition (`finish`).
3. A failure to send is retried after `backoff()` until the outbox's attempts run out
   (`failed`).

A worker that dies after the SMTP server accepted a message but before recording it leaves the
row in `sending`; after the lease another worker sends it again. That is the one way a message
can go twice, and it is preferred to never sending it.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.core.mail import EmailMessage
from django.db import models
from django.db.models import F, Q, QuerySet
from django.utils import timezone

logger = logging.getLogger(__name__)

PENDING = "pending"
SENDING = "sending"
FAILED = "failed"

BACKOFF_BASE = dt.timedelta(minutes=2)
BACKOFF_CAP = dt.timedelta(hours=1)

M = TypeVar("M", bound=models.Model)
R = TypeVar("R")


def backoff(attempts: int) -> dt.timedelta:
    """The wait after the `attempts`-th failed attempt: doubling from BACKOFF_BASE, capped."""
    return min(BACKOFF_BASE * 2 ** max(attempts - 1, 0), BACKOFF_CAP)


@dataclass(frozen=True)
class Outbox(Generic[M]):
    model: type[M]
    lease: dt.timedelta
    max_attempts: int

    @property
    def rows(self) -> QuerySet[M]:
        return self.model._default_manager.all()

    def due(self) -> Q:
        now = timezone.now()
        return Q(status=PENDING, next_attempt_at__lte=now) | Q(
            status=SENDING, claimed_at__lt=now - self.lease
        )

    def claim(self, worker: str, limit: int) -> list[M]:
        """Take up to `limit` due rows for `worker`; none is ever held by two workers at once.
        When another worker takes every candidate first, look again: the set only shrinks."""
        token = secrets.token_hex(16)
        for _ in range(3):
            candidates = list(
                self.rows.filter(self.due())
                .order_by("next_attempt_at", "pk")
                .values_list("pk", flat=True)[:limit]
            )
            if not candidates:
                return []
            taken = self.rows.filter(self.due(), pk__in=candidates).update(
                status=SENDING,
                claim_token=token,
                claimed_by=worker[:100],
                claimed_at=timezone.now(),
                attempts=F("attempts") + 1,
            )
            if taken:
                break
        return list(self.rows.filter(claim_token=token).order_by("next_attempt_at", "pk"))

    def held(self, row: M) -> QuerySet[M]:
        return self.rows.filter(
            pk=row.pk,
            status=SENDING,
            claim_token=row.claim_token,  # type: ignore[attr-defined]
        )

    def finish(self, row: M, **fields: Any) -> bool:
        """Record the outcome, if this worker still holds the claim."""
        return self.held(row).update(**fields) == 1

    def hand_back(self, row: M) -> bool:
        """Give a claimed row back for another worker at once, the attempt uncounted."""
        return self.finish(row, status=PENDING, attempts=F("attempts") - 1)

    def failed(self, row: M, exc: Exception) -> tuple[str, str]:
        """Record a failed attempt: retry after backoff(), or fail for good once the attempts
        are spent. Answers the outcome's status word and detail for the worker's log."""
        error = f"{type(exc).__name__}: {exc}"[:500]
        attempts: int = row.attempts  # type: ignore[attr-defined]
        if attempts >= self.max_attempts:
            held = self.finish(row, status=FAILED, last_error=error)
            return ("failed" if held else "lost", f"after {attempts} attempts: {error}")
        retry_at = timezone.now() + backoff(attempts)
        held = self.finish(row, status=PENDING, next_attempt_at=retry_at, last_error=error)
        detail = f"attempt {attempts} of {self.max_attempts}, next at {retry_at:%H:%M}Z"
        return ("retry" if held else "lost", f"{detail}: {error}")

    def send(
        self, row: M, *, skip_reason: str | None, to: str, message: Callable[[], EmailMessage]
    ) -> tuple[str, str]:
        """Deliver one claimed row: skip it with `skip_reason` if there is one, give up on a
        row whose attempts ran out while a worker held it, make sure the claim is still ours,
        then build the message and send it. Answers the outcome's status word and detail."""
        if skip_reason:
            held = self.finish(row, status="skipped", skip_reason=skip_reason)
            return ("skipped" if held else "lost", skip_reason)
        attempts: int = row.attempts  # type: ignore[attr-defined]
        if attempts > self.max_attempts:
            error = "gave up: the worker making the last attempt stopped before it finished"
            held = self.finish(row, status=FAILED, last_error=error)
            return ("failed" if held else "lost", error)
        if not self.held(row).exists():
            return ("lost", "another worker took it over after the lease ran out")
        try:
            message().send()
        except Exception as exc:
            if not isinstance(exc, OSError):  # smtplib's errors are OSErrors; else it is a bug.
                logger.exception("%s %s could not be built or sent", self.model.__name__, row.pk)
            return self.failed(row, exc)
        held = self.finish(row, status="sent", sent_at=timezone.now(), sent_to=to, last_error="")
        # A lost claim here means the lease ran out mid-send; the message went, so say so.
        return ("sent" if held else "sent, claim lost", "")

    def drain(
        self,
        worker: str,
        deliver: Callable[[M], R],
        *,
        limit: int,
        report: Callable[[R], None] | None = None,
        stop: Callable[[], bool] = lambda: False,
    ) -> list[R]:
        """Claim and deliver batches until nothing is due, reporting each outcome as it
        happens. Once `stop()` is true, the rest of the batch is handed back for another worker
        at once, rather than left to wait out the lease."""
        outcomes: list[R] = []
        while not stop():
            batch = self.claim(worker, limit)
            if not batch:
                break
            for row in batch:
                if stop():
                    self.hand_back(row)
                    continue
                outcome = deliver(row)
                outcomes.append(outcome)
                if report is not None:
                    report(outcome)
        return outcomes
