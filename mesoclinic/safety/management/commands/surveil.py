"""`mesoclinic surveil [--clinic NAME] [--dry-run]`: run safety surveillance now.

It runs the Bernoulli CUSUM per practitioner and per lot and the MaxSPRT per new lot
(safety/surveil.py) for one clinic or for every clinic, prints the baseline rate and every
signal, and records the run and its alerts unless --dry-run is given. The worker runs the same
thing on a schedule (SURVEIL_INTERVAL_HOURS).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from mesoclinic.accounts.models import Clinic
from mesoclinic.safety import surveil


class Command(BaseCommand):
    help = (
        "Run safety surveillance (CUSUM per practitioner and lot, MaxSPRT per new lot) and raise "
        "alerts; --dry-run prints what it finds and writes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--clinic", help="the clinic's id or exact name (default: every one)")
        parser.add_argument(
            "--dry-run", action="store_true", help="print the signals, record nothing, send nothing"
        )

    def handle(self, *args: Any, clinic: str | None, dry_run: bool, **options: Any) -> None:
        clinics = [_clinic(clinic)] if clinic else list(Clinic.objects.order_by("pk"))
        for c in clinics:
            report = surveil.run(c, dry_run=dry_run, via="command")
            self.say(
                f"{c.name}: {report.sessions} sessions, {report.adverse_sessions} with an adverse "
                f"event; baseline rate {surveil.percent(report.baseline_rate)}; "
                f"{len(report.signals)} statistics, {len(report.alarms)} signalling "
                f"({report.seconds:.2f} s){' — dry run, nothing recorded' if dry_run else ''}"
            )
            names = surveil.subject_names(c, report.alarms)
            for signal in report.alarms:
                self.say("  " + surveil.describe(signal, names, report.baseline_rate))
            if not dry_run:
                self.say(
                    f"  {len(report.raised)} new alert{'s' if len(report.raised) != 1 else ''}, "
                    f"{len(report.updated)} updated"
                )

    def say(self, line: str) -> None:
        self.stdout.write(line)
        self.stdout.flush()


def _clinic(value: str) -> Clinic:
    """The clinic by id, or by its exact name (any case)."""
    found = (
        list(Clinic.objects.filter(pk=int(value)))
        if value.isdigit()
        else list(Clinic.objects.filter(name__iexact=value.strip()))
    )
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        ids = ", ".join(str(c.pk) for c in found)
        raise CommandError(f"Several clinics are called {value!r} (ids {ids}); give the id.")
    known = ", ".join(f"{c.pk} ({c.name})" for c in Clinic.objects.order_by("pk")[:20])
    raise CommandError(
        f"No clinic {value!r}. Give the id or the exact name of one of: {known or 'none'}."
    )
