"""Calendar feed tokens are stored as their SHA-256, like API tokens.

The existing addresses keep working: each raw token is hashed into `token_hash` before the
raw column is dropped, so a subscribed calendar does not notice. Going back cannot recover
an address from its hash, so the reverse revokes every feed (its token column gets the hash,
which no address matches), and the clinic makes new ones."""

import hashlib

from django.db import migrations, models
from django.utils import timezone


def hash_existing(apps, schema_editor):  # type: ignore[no-untyped-def]
    CalendarFeed = apps.get_model("scheduling", "CalendarFeed")
    for feed in CalendarFeed.objects.all().only("pk", "token"):
        CalendarFeed.objects.filter(pk=feed.pk).update(
            token_hash=hashlib.sha256(feed.token.encode("utf-8")).hexdigest()
        )


def revoke_all(apps, schema_editor):  # type: ignore[no-untyped-def]
    CalendarFeed = apps.get_model("scheduling", "CalendarFeed")
    for feed in CalendarFeed.objects.all().only("pk", "token_hash", "revoked_at"):
        CalendarFeed.objects.filter(pk=feed.pk).update(
            token=feed.token_hash, revoked_at=feed.revoked_at or timezone.now()
        )


class Migration(migrations.Migration):
    dependencies = [
        ("scheduling", "0003_no_patient_overlap"),
    ]

    operations = [
        migrations.AddField(
            model_name="calendarfeed",
            name="token_hash",
            field=models.CharField(max_length=64, null=True),
        ),
        migrations.AlterField(
            model_name="calendarfeed",
            name="token",
            field=models.CharField(max_length=64, null=True, unique=True),
        ),
        migrations.RunPython(hash_existing, revoke_all),
        migrations.RemoveField(model_name="calendarfeed", name="token"),
        migrations.AlterField(
            model_name="calendarfeed",
            name="token_hash",
            field=models.CharField(max_length=64, unique=True),
        ),
    ]
