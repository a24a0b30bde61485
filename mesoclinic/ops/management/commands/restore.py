"""`mesoclinic restore PATH [--force] [--with-photos]`: puts a backup back as the SQLite
database and verifies every table's row count against the backup's manifest (docs/backup.md).
Stop the server and the worker first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from mesoclinic.ops import backup


class Command(BaseCommand):
    help = (
        "Restore a backup made by `mesoclinic backup` into the configured SQLite database and "
        "verify it. Stop the server and the worker first."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path, help="the backup's .sqlite3 file")
        parser.add_argument(
            "--force",
            action="store_true",
            help="replace a database that already has data",
        )
        parser.add_argument(
            "--with-photos",
            action="store_true",
            help="also put back the photos archived with the backup",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            counts = backup.restore(
                options["path"], force=options["force"], with_photos=options["with_photos"]
            )
        except backup.BackupError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"Restored {options['path']} into {backup.sqlite_path()}: {len(counts)} tables, "
            f"{sum(counts.values())} rows, every count as the manifest records."
        )
