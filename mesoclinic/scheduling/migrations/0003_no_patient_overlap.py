"""A patient is never booked into two active visits at once (PostgreSQL's exclusion constraint;
on SQLite the constraint is nothing and the serialised check in the booking path holds).

Before this constraint only the booking path checked it, so racing requests may have left a
patient in two visits at once; PostgreSQL would then refuse to create the constraint with a bare
"conflicting key value". The first step lists those visits in words instead, so the clinic can
cancel or move one of each pair and run the migration again. Nothing is changed for it: which
visit to keep is the clinic's decision."""

import django.contrib.postgres.fields.ranges
from django.conf import settings
from django.db import migrations, models

import mesoclinic.scheduling.models

INACTIVE = ("cancelled", "no_show")


def refuse_existing_overlaps(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT a.patient_id, a.id, a.starts_at, b.id, b.starts_at
            FROM scheduling_appointment a
            JOIN scheduling_appointment b
              ON a.patient_id = b.patient_id AND a.id < b.id
             AND a.starts_at < b.ends_at AND b.starts_at < a.ends_at
            WHERE a.status <> ALL(%s) AND b.status <> ALL(%s)
            ORDER BY a.patient_id, a.starts_at
            LIMIT 50
            """,
            [list(INACTIVE), list(INACTIVE)],
        )
        pairs = cursor.fetchall()
    if pairs:
        lines = [
            f"patient {patient}: appointment {a} at {a_at:%Y-%m-%d %H:%M} UTC and "
            f"appointment {b} at {b_at:%Y-%m-%d %H:%M} UTC"
            for patient, a, a_at, b, b_at in pairs
        ]
        raise RuntimeError(
            "These patients are booked into two visits at the same time. Cancel or move one "
            "visit of each pair, then run the migration again:\n" + "\n".join(lines)
        )


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_clinic_phone"),
        ("courses", "0003_follow_up_session_required"),
        ("patients", "0001_initial"),
        ("scheduling", "0002_calendar_feed"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RunPython(refuse_existing_overlaps, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="appointment",
            constraint=mesoclinic.scheduling.models.PostgresExclusionConstraint(
                condition=models.Q(("status__in", ["cancelled", "no_show"]), _negated=True),
                expressions=[
                    (
                        mesoclinic.scheduling.models.TsTzRange(
                            "starts_at",
                            "ends_at",
                            django.contrib.postgres.fields.ranges.RangeBoundary(),
                        ),
                        "&&",
                    ),
                    ("patient", "="),
                ],
                name="appointment_no_patient_overlap",
                violation_error_message="The patient already has an appointment then.",
            ),
        ),
    ]
