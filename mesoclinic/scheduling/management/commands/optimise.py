"""`mesoclinic optimise --clinic X`: re-plan a clinic's open future appointments.

It prints each change and the totals (patient wait, idle gaps, moves) for the calendar as
booked, for greedy first fit and for CP-SAT, and changes nothing unless `--apply` is given.
docs/optimiser.md says what it optimises, which rules it keeps and how.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from mesoclinic.accounts.models import Clinic, Membership, User
from mesoclinic.scheduling import optimise as opt
from mesoclinic.scheduling import optimise_db
from mesoclinic.scheduling.models import Appointment

MOST_PROBLEMS = 20  # rules the calendar already breaks, listed before "and N more"


class Command(BaseCommand):
    help = (
        "Re-plan a clinic's open future appointments: shorter waits for patients and fewer "
        "idle gaps for practitioners, keeping every rule. Prints the changes; --apply makes them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--clinic", required=True, help="the clinic's id or exact name")
        parser.add_argument(
            "--apply", action="store_true", help="move the appointments (otherwise a dry run)"
        )
        parser.add_argument(
            "--move-confirmed",
            action="store_true",
            help="move confirmed appointments too (by default only booked ones move)",
        )
        parser.add_argument(
            "--seconds", type=float, default=30.0, help="time for CP-SAT in all (default 30)"
        )
        parser.add_argument(
            "--notice-hours",
            type=float,
            default=24.0,
            help="nothing in the next hours moves, and nothing moves into them (default 24)",
        )
        parser.add_argument(
            "--max-shift-days",
            type=int,
            default=7,
            help="how far an appointment may move from where it is booked (default 7)",
        )
        defaults = opt.Weights()
        parser.add_argument("--weight-wait", type=int, default=defaults.wait)
        parser.add_argument("--weight-idle", type=int, default=defaults.idle)
        parser.add_argument("--weight-move", type=int, default=defaults.move)
        parser.add_argument(
            "--user", help="the username the audit trail names (a manager of the clinic)"
        )

    def handle(self, *args: Any, **o: Any) -> None:
        clinic = _clinic(o["clinic"])
        user = _manager(clinic, o["user"]) if o["user"] else None
        weights = (o["weight_wait"], o["weight_idle"], o["weight_move"])
        if o["seconds"] <= 0 or min(o["notice_hours"], o["max_shift_days"], *weights) < 0:
            raise CommandError(
                "--seconds must be positive, and the notice, the shift and the weights not "
                "negative."
            )
        options = optimise_db.Options(
            move_confirmed=o["move_confirmed"],
            notice=dt.timedelta(hours=o["notice_hours"]),
            max_shift=dt.timedelta(days=o["max_shift_days"]),
            weights=opt.Weights(*weights),
        )
        calendar = optimise_db.load(clinic, options)
        instance = calendar.instance
        self._header(calendar)
        if not calendar.open:
            self.say("Nothing to re-plan.")
            return
        result = opt.optimise(instance, seconds=o["seconds"])
        self._changes(calendar, result)
        self._totals(result)
        self._broken(calendar)
        if not result.changes(instance):
            return
        if not o["apply"]:
            self.say("Dry run: nothing was changed. Run again with --apply to make these changes.")
            return
        try:
            moved = optimise_db.apply(calendar, result.plan, user=user)
        except optimise_db.PlanRefused as exc:
            lines = [str(exc), *(f"  - {p.message}" for p in exc.problems)]
            raise CommandError("\n".join(lines)) from exc
        self.say(f"Moved {_count(len(moved), 'appointment')}; each move is in the audit trail.")

    def _header(self, calendar: optimise_db.Calendar) -> None:
        clinic, instance = calendar.clinic, calendar.instance
        movable = calendar.open
        whom = {a.practitioner_id for a in movable}
        kept = (
            f"; {_count(calendar.kept_confirmed, 'confirmed appointment')} kept where "
            f"{'it is' if calendar.kept_confirmed == 1 else 'they are'} (--move-confirmed moves "
            f"{'it' if calendar.kept_confirmed == 1 else 'them'})"
            if calendar.kept_confirmed
            else ""
        )
        self.say(
            f"{clinic.name} ({clinic.timezone}): {_count(len(movable), 'open appointment')} "
            f"with {_count(len(whom), 'practitioner')} from "
            f"{instance.clock.words(instance.release)} on{kept}."
        )

    def _changes(self, calendar: optimise_db.Calendar, result: opt.Result) -> None:
        instance = calendar.instance
        changes = result.changes(instance)
        if not changes:
            self.say("No change: the calendar as booked is as good as the optimiser can make it.")
            return
        self.say(f"Changes ({len(changes)}):")
        clock = instance.clock
        for visit, start in changes:
            a = calendar.appointments[visit.id]
            self.say(
                f"  {a.patient} · {Appointment.Kind(a.kind).label} · "
                f"{clock.words(visit.start)} → {clock.words(start)} · "
                f"{a.practitioner.display_name}"
            )

    def _totals(self, result: opt.Result) -> None:
        self.say(f"{'Totals':18s}{'patient wait':>14s}{'idle gaps':>12s}{'moves':>8s}")
        for name, s in (
            ("as booked", result.current),
            ("greedy first fit", result.greedy),
            ("CP-SAT", result.final),
        ):
            self.say(f"  {name:16s}{_hours(s.wait):>14s}{_hours(s.idle):>12s}{s.moves:>8d}")
        self.say(
            f"Greedy took {result.greedy_seconds:.1f} s; CP-SAT {result.cpsat_seconds:.1f} s "
            f"({_count(result.blocks, 'solve')}, {result.improved} kept)."
        )
        if result.greedy_failed:
            self.say(
                f"Greedy found no plan for {_count(result.greedy_failed, 'group')} of "
                "appointments; those keep their times unless CP-SAT found better."
            )

    def _broken(self, calendar: optimise_db.Calendar) -> None:
        """Rules the calendar as booked already breaks: shown so that someone looks, and never
        made worse by the plan."""
        instance = calendar.instance
        problems = opt.check(instance, instance.current(), strict=True)
        if not problems:
            return
        self.say("Already breaking a rule as booked (the plan makes none of these worse):")
        for p in problems[:MOST_PROBLEMS]:
            patients = {
                str(calendar.appointments[i].patient)
                for i in p.visits
                if i in calendar.appointments
            }
            self.say(f"  - {p.message} ({', '.join(sorted(patients))})")
        if len(problems) > MOST_PROBLEMS:
            self.say(f"  … and {len(problems) - MOST_PROBLEMS} more.")

    def say(self, line: str) -> None:
        self.stdout.write(line)


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


def _manager(clinic: Clinic, username: str) -> User:
    user = User.objects.filter(username=username).first()
    if (
        user is None
        or not Membership.objects.filter(
            user=user, clinic=clinic, role=Membership.Role.MANAGER
        ).exists()
    ):
        raise CommandError(f"{username!r} is not a manager of {clinic.name}.")
    return user


def _hours(minutes: int) -> str:
    return f"{minutes / 60:,.1f} h"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
