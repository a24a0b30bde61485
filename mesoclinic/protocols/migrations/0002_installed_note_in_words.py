"""A clinic's first version of each shipped protocol was noted "Installed from cellulite.toml
(file version 1)", then "Installed with mesoclinic (protocol version 1)": a file name reached
the protocol pages. The stored notes are rewritten in words. Going back leaves them in words."""

from typing import Any

from django.db import migrations

from mesoclinic.protocols.models import readable_note


def rewrite(apps: Any, schema_editor: Any) -> None:
    ClinicProtocol = apps.get_model("protocols", "ClinicProtocol")
    rows = ClinicProtocol.objects.filter(change_note__startswith="Installed ")
    for row in rows.only("pk", "change_note").iterator():
        words = readable_note(row.change_note)
        if words != row.change_note:
            ClinicProtocol.objects.filter(pk=row.pk).update(change_note=words)


class Migration(migrations.Migration):
    dependencies = [
        ("protocols", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(rewrite, migrations.RunPython.noop),
    ]
