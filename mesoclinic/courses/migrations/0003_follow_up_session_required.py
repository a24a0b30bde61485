# A migration of its own, so that on PostgreSQL the rows filled by 0002 are committed before the
# column becomes NOT NULL.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('courses', '0002_outcomes_and_safety'),
    ]

    operations = [
        migrations.AlterField(
            model_name='followup',
            name='session',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='follow_ups', to='courses.session'),
        ),
    ]
