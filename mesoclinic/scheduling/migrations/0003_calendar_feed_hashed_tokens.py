"""Calendar feed tokens are stored as their SHA-256, like API tokens.

The existing addresses keep working: each raw token is hashed into `token_hash` before the
raw column is dropped, so a subscribed calendar does not notice."""

import hashlib

from django.db import migrations, models


def hash_existing(apps, schema_editor):  # type: ignore[no-untyped-def]
    CalendarFeed = apps.get_model("scheduling", "CalendarFeed")
    for feed in CalendarFeed.objects.all().only("pk", "token"):
        CalendarFeed.objects.filter(pk=feed.pk).update(
            token_hash=hashlib.sha256(feed.token.encode("utf-8")).hexdigest()
        )


class Migration(migrations.Migration):
    dependencies = [
        ("scheduling", "0002_calendar_feed"),
    ]

    operations = [
        migrations.AddField(
            model_name="calendarfeed",
            name="token_hash",
            field=models.CharField(max_length=64, null=True),
        ),
        # A hash cannot be turned back into the address, so this migration cannot be reversed.
        migrations.RunPython(hash_existing),
        migrations.RemoveField(model_name="calendarfeed", name="token"),
        migrations.AlterField(
            model_name="calendarfeed",
            name="token_hash",
            field=models.CharField(max_length=64, unique=True),
        ),
    ]
