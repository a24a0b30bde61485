"""`mesoclinic backup [PATH] [--with-photos]`: a consistent copy of the live SQLite database,
with a manifest beside it (docs/backup.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from mesoclinic.ops import backup


class Command(BaseCommand):
    help = (
        "Copy the SQLite database while the server runs, verify the copy and write a manifest "
        "beside it. PostgreSQL: use pg_dump (docs/backup.md)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "path",
            nargs="?",
            type=Path,
            help="where to write the copy; default DATA_DIR/backups/mesoclinic-<time>.sqlite3",
        )
        parser.add_argument(
            "--with-photos",
            action="store_true",
            help="also archive the clinical photos into <name>.photos.tar beside the copy",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        dest = options["path"] or backup.default_path()
        try:
            made = backup.backup(dest, with_photos=options["with_photos"])
        except backup.BackupError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Backed up the database to {made.path}")
        self.stdout.write(f"Manifest: {made.manifest_path}")
        if made.photos_path:
            self.stdout.write(f"Photos: {made.photos_path}")
        self.stdout.write("Rows per table:")
        counts = made.manifest["counts"]
        width = max((len(t) for t in counts), default=0)
        for table, count in counts.items():
            self.stdout.write(f"  {table:<{width}}  {count}")
