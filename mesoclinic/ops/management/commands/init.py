"""`mesoclinic init`: create the clinic and its first manager on a new database
(docs/setup.md). Asks for what the flags do not give; `--no-input` asks for nothing and fails
naming what is missing."""

from __future__ import annotations

import getpass
import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from mesoclinic.accounts.models import Clinic
from mesoclinic.ops import setup
from mesoclinic.web.manage_forms import ClinicSettingsForm
from mesoclinic.web.setup_forms import FirstManagerForm

# (flag, form field, question). The clinic's fields first, then the manager's.
CLINIC_FIELDS = [
    ("clinic_name", "name", "Clinic name"),
    ("address", "address", "Address"),
    ("city", "city", "City"),
    ("phone", "phone", "Clinic phone number"),
    ("timezone", "timezone", "Time zone (such as Europe/London or America/New_York)"),
    ("currency", "currency", "Currency (three letters, such as USD)"),
    (
        "date_format",
        "date_format",
        "Date format: 31/12/2026, 12/31/2026, 2026-12-31 or 31 Dec 2026",
    ),
    ("time_format", "time_format", "Time format: 24h or 12h"),
    ("locale", "locale", "Region: en-US, en-GB, en-CA, en-AU or en-IE"),
]
MANAGER_FIELDS = [
    ("username", "username", "Manager's username"),
    ("first_name", "first_name", "Manager's first name"),
    ("last_name", "last_name", "Manager's last name"),
    ("email", "email", "Manager's email"),
]
PASSWORD_ENV = "MESOCLINIC_MANAGER_PASSWORD"


class Command(BaseCommand):
    help = (
        "Create the clinic (name, address, phone, time zone, currency, date and time format, "
        "region) and its first manager on an empty database. The manager's password is asked, "
        f"or read from {PASSWORD_ENV} with --no-input."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        for flag, _field, question in CLINIC_FIELDS + MANAGER_FIELDS:
            parser.add_argument(f"--{flag.replace('_', '-')}", dest=flag, help=question)
        parser.add_argument(
            "--no-input",
            action="store_false",
            dest="interactive",
            help=f"ask nothing: every value comes from a flag, the password from {PASSWORD_ENV}",
        )
        parser.add_argument(
            "--another",
            action="store_true",
            help="add another clinic although the database has one already",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["another"] and Clinic.objects.exists():
            raise CommandError(
                "This database already has a clinic, so nothing was created. Sign in and use "
                "the setup guide, or run `mesoclinic init --another` to add a second clinic."
            )
        interactive = options["interactive"]
        clinic_form = ClinicSettingsForm(
            self._values(CLINIC_FIELDS, options, interactive, _clinic_defaults()),
            instance=Clinic(),
        )
        manager_values = self._values(MANAGER_FIELDS, options, interactive, {})
        manager_values["password"] = self._password(interactive)
        manager_form = FirstManagerForm(manager_values)
        problems = _problems(clinic_form) + _problems(manager_form)
        if problems:
            raise CommandError("Nothing was created:\n" + "\n".join(problems))
        user = manager_form.user()
        try:
            clinic = setup.do_create_clinic(
                clinic_form.instance,
                user,
                password=manager_form.cleaned_data["password"],
                another=options["another"],
            )
        except setup.ClinicExists as exc:
            raise CommandError(f"{exc} Nothing was created.") from exc
        self.stdout.write(
            f"Created {clinic.name} and its manager {user.username}. Start the server, sign "
            "in as them, and the setup guide leads you through the rest."
        )

    def _values(
        self,
        fields: list[tuple[str, str, str]],
        options: dict[str, Any],
        interactive: bool,
        defaults: dict[str, str],
    ) -> dict[str, str]:
        values: dict[str, str] = {}
        for flag, field, question in fields:
            value = options.get(flag)
            if value is None and interactive:
                default = defaults.get(field, "")
                hint = f" [{default}]" if default else ""
                value = input(f"{question}{hint}: ").strip() or default
            values[field] = value if value is not None else defaults.get(field, "")
        if "date_format" in values:
            # The format may be given as it looks (31/12/2026) or by its key (d/m/Y).
            by_example = {str(label): key for key, label in Clinic.DateFormat.choices}
            values["date_format"] = by_example.get(values["date_format"], values["date_format"])
        return values

    def _password(self, interactive: bool) -> str:
        if not interactive:
            return os.environ.get(PASSWORD_ENV, "")
        first = getpass.getpass("Manager's password: ")
        if first != getpass.getpass("The password again: "):
            raise CommandError("The two passwords differ. Nothing was created.")
        return first


def _clinic_defaults() -> dict[str, str]:
    return {
        "timezone": "UTC",
        "currency": "USD",
        "date_format": str(Clinic.DateFormat.DAY_MONTH_NAME.label),
        "time_format": Clinic.TimeFormat.H24,
        "locale": Clinic.Locale.EN_US,
        "baseline_required": "on",
    }


def _problems(form: Any) -> list[str]:
    """Each error as "- Label: reason.", the way a person reads it."""
    form.is_valid()
    out: list[str] = []
    for name, errors in form.errors.items():
        label = form[name].label if name in form.fields else "The values"
        out.extend(f"- {label}: {error}" for error in errors)
    return out
