"""`mesoclinic move-to --database postgres://…`: copy every row of the current database into an
empty PostgreSQL database, check the copy table by table, and report (docs/deployment.md,
Moving to PostgreSQL)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from mesoclinic.ops import move


class Command(BaseCommand):
    help = (
        "Copy every row of the current database into an empty PostgreSQL database, then check "
        "each table's row count and checksum. Stop the server and the worker first. Photos are "
        "files and are copied separately."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--database",
            required=True,
            metavar="URL",
            help="the empty PostgreSQL database, as postgres://user:password@host:5432/name",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            report = move.move_to(options["database"], say=self.stdout.write)
        except move.MoveError as exc:
            raise CommandError(str(exc)) from exc
        width = max((len(t.table) for t in report.tables), default=5)
        self.stdout.write(f"  {'table':<{width}}  {'rows':>8}  checksum")
        for table in report.tables:
            verdict = "matches" if table.matches else "DIFFERS"
            self.stdout.write(f"  {table.table:<{width}}  {table.rows:>8}  {verdict}")
        rate = report.rows / report.copy_seconds if report.copy_seconds else 0
        self.stdout.write(
            f"Moved {report.rows} rows in {len(report.tables)} tables in "
            f"{report.seconds:.1f} seconds, {report.copy_seconds:.1f} of them copying and "
            f"checking ({rate:.0f} rows a second); every table's row count and checksum match."
        )
        self.stdout.write(
            "Set DATABASE_URL to the new database's address before you start the server again."
        )
        self.stdout.write(photos_note())


def photos_note() -> str:
    if settings.PHOTO_STORAGE == "s3":
        return (
            "Photos are in object storage, not in the database: keep the same PHOTO_S3_* "
            "settings and the moved records find them."
        )
    return (
        f"Photos are files, not rows, and were not copied: copy the folder {settings.MEDIA_ROOT} "
        "to the new server's media folder (MEDIA_ROOT, by default DATA_DIR/media) yourself, "
        "for example with rsync."
    )
