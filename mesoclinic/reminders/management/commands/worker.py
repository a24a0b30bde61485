"""`mesoclinic worker`: the one background process. Each tick plans reminders, sends the due
ones, plans and sends infection-watch prompts (safety/watch.py), text messages, recall notices
and maintenance invitations (notify/actions.py), emails each clinic's managers the day's stock
alerts once a day (formulary/alerts.py), runs FHIR bulk exports (fhir/bulk.py), passes expired
waitlist offers on
(portal/waitlist.py), and moves side effects that
outlasted their expected duration on (courses.actions). Every SURVEIL_INTERVAL_HOURS it runs
safety surveillance for each clinic (safety/surveil.py).

Run any number of workers: a reminder is claimed by one at a time (reminders/actions.py).
SIGTERM or Ctrl-C lets the reminder in hand finish and hands the rest of the batch back, then
the worker exits with status 0.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections

from mesoclinic.accounts import licences
from mesoclinic.courses.actions import do_sweep_side_effects
from mesoclinic.fhir import bulk as fhir_bulk
from mesoclinic.formulary import alerts as stock_alerts
from mesoclinic.notify import actions as notify
from mesoclinic.ops.models import WorkerHeartbeat
from mesoclinic.portal import waitlist
from mesoclinic.reminders import actions
from mesoclinic.safety import surveil, watch

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Plan and send appointment reminders, and sweep side effects, every --interval seconds."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="run one tick and exit")
        parser.add_argument(
            "--interval", type=float, default=60.0, help="seconds between ticks (default 60)"
        )
        parser.add_argument(
            "--batch", type=int, default=actions.BATCH, help="reminders claimed at a time"
        )

    def handle(self, *args: Any, once: bool, interval: float, batch: int, **options: Any) -> None:
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.batch = max(batch, 1)
        self.interval = max(interval, 0.1)
        self.stopping = threading.Event()
        if once:
            self.tick()
            return
        previous = {sig: signal.signal(sig, self.stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        self.say(f"worker {self.worker} started: a tick every {interval:g} s")
        try:
            while not self.stopping.is_set():
                try:
                    self.tick()
                except Exception:
                    # A database or mail server that is down for a while must not end the loop.
                    logger.exception("worker tick failed")
                finally:
                    close_old_connections()
                self.stopping.wait(self.interval)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.say(f"worker {self.worker} stopped")

    def stop(self, signum: int, frame: Any) -> None:
        self.stopping.set()

    def tick(self) -> None:
        # The heartbeat first: /readyz and the Today page tell from it that a worker runs, so
        # a tick that fails later (the mail server is down) still counts as the worker alive.
        WorkerHeartbeat.beat(self.worker, self.interval)
        planned = actions.do_plan_reminders()
        if planned:
            self.say(f"planned {planned} reminder{'s' if planned != 1 else ''}")
        actions.send_due(
            self.worker, limit=self.batch, report=self.report, stop=self.stopping.is_set
        )
        # The infection watch: prompts 2, 4, 8 and 12 weeks after each session
        # (mesoclinic/safety/watch.py), through the same kind of outbox as reminders.
        prompts = watch.do_plan_watch()
        if prompts:
            self.say(f"planned {prompts} watch prompt{'s' if prompts != 1 else ''}")
        watch.send_due(self.worker, limit=self.batch, report=self.report, stop=self.stopping.is_set)
        # Licence warnings 60, 30 and 7 days before expiry (accounts/licences.py), to the
        # clinic's managers and the practitioner, each once.
        warnings = licences.do_plan_warnings()
        if warnings:
            self.say(f"planned {warnings} licence warning{'s' if warnings != 1 else ''}")
        licences.send_due(
            self.worker, limit=self.batch, report=self.report, stop=self.stopping.is_set
        )
        # Text messages (visit texts to patients who agreed, recall notices' texts), recall
        # notices' emails and maintenance invitations (mesoclinic/notify/actions.py).
        notify.send_due(
            self.worker, limit=self.batch, report=self.report, stop=self.stopping.is_set
        )
        # The day's stock alerts, to each clinic's managers once a day from STOCK_ALERTS_HOUR
        # on the clinic's clock, when something needs attention (formulary/alerts.py).
        days = stock_alerts.do_plan()
        if days:
            self.say(f"planned the stock alerts of {days} clinic{'s' if days != 1 else ''}")
        stock_alerts.send_due(
            self.worker, limit=self.batch, report=self.report, stop=self.stopping.is_set
        )
        # Waitlist offers whose time ran out go to the next patient (portal/waitlist.py).
        expired = waitlist.do_expire_offers()
        if expired:
            self.say(f"{expired} waitlist offer{'s' if expired != 1 else ''} expired")
        swept = do_sweep_side_effects()
        if swept:
            self.say(f"{swept} side effect{'s' if swept != 1 else ''} now beyond expected")
        # FHIR bulk `$export` jobs, one a tick and each claimed by one worker; and the files of
        # exports older than FHIR_EXPORT_RETENTION_HOURS deleted (mesoclinic/fhir/bulk.py).
        for job in fhir_bulk.run_due(self.worker):
            self.say(f"FHIR export {job.pk}: {job.status}")
        gone = fhir_bulk.sweep()
        if gone:
            self.say(f"deleted {gone} expired FHIR export{'s' if gone != 1 else ''}")
        # Safety surveillance, per clinic, when its last run is older than
        # SURVEIL_INTERVAL_HOURS (mesoclinic/safety/surveil.py).
        for found in surveil.run_due():
            self.say(
                f"surveillance of {found.clinic.name}: {len(found.alarms)} signalling, "
                f"{len(found.raised)} new alert{'s' if len(found.raised) != 1 else ''}"
            )

    def report(self, outcome: object) -> None:
        """One line per reminder or watch prompt handled."""
        self.say(str(outcome))

    def say(self, line: str) -> None:
        # Flushed at once, so a supervisor's log (journald) shows each line as it happens.
        self.stdout.write(line)
        self.stdout.flush()
