from __future__ import annotations

import datetime as dt

from django.db import models
from django.utils import timezone


class WorkerHeartbeat(models.Model):
    """The last tick of each `mesoclinic worker` process. Reminders and infection-watch prompts
    are sent only by the worker, so /readyz and the Today page read these rows to tell when
    none is running (ops/health.py)."""

    # host:pid, as the worker names itself when it claims outbox rows.
    worker = models.CharField(max_length=200, unique=True)
    ticked_at = models.DateTimeField()
    # The worker's --interval, so that freshness is judged in the worker's own ticks.
    interval_seconds = models.FloatField()

    class Meta:
        indexes = [models.Index(fields=["-ticked_at"], name="ops_heartbeat_latest")]

    def __str__(self) -> str:
        return f"{self.worker} at {self.ticked_at:%Y-%m-%d %H:%M:%S}"

    # A worker that stopped long ago is history, not a worker; its row is removed on a later
    # beat so the table stays as small as the number of running workers.
    FORGET_AFTER = dt.timedelta(days=7)

    @classmethod
    def beat(cls, worker: str, interval_seconds: float) -> None:
        now = timezone.now()
        cls.objects.update_or_create(
            worker=worker, defaults={"ticked_at": now, "interval_seconds": interval_seconds}
        )
        cls.objects.filter(ticked_at__lt=now - cls.FORGET_AFTER).delete()
