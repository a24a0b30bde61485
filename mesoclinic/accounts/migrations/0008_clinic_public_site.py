import django.core.validators
from django.db import migrations, models


def fill_slugs(apps, schema_editor):
    from mesoclinic.accounts.models import unique_slug

    Clinic = apps.get_model("accounts", "Clinic")
    taken: set[str] = set()
    for clinic in Clinic.objects.order_by("pk"):
        clinic.slug = unique_slug(clinic.name, taken.__contains__)
        taken.add(clinic.slug)
        clinic.save(update_fields=["slug"])


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0007_quiet_hours"),
    ]

    operations = [
        migrations.AddField(
            model_name="clinic",
            name="slug",
            # Without an index at first: the unique one comes with the AlterField below (an
            # index here too would make PostgreSQL create its "_like" index twice).
            field=models.SlugField(default="", max_length=60, db_index=False),
            preserve_default=False,
        ),
        migrations.RunPython(fill_slugs, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="clinic",
            name="slug",
            field=models.SlugField(
                help_text="The clinic's public pages are at /site/<this>/. Letters, digits and hyphens.",
                max_length=60,
                unique=True,
            ),
        ),
        migrations.AddField(
            model_name="clinic",
            name="brand_colour",
            field=models.CharField(
                default="#2f5d8a",
                help_text="The colour of the public pages' headings and buttons, such as #2f5d8a.",
                max_length=7,
                validators=[
                    django.core.validators.RegexValidator(
                        "^#(?:[0-9a-fA-F]{3}){1,2}$",
                        "Enter a colour as # and six hexadecimal digits, such as #2f5d8a.",
                    )
                ],
            ),
        ),
        migrations.AddField(
            model_name="clinic",
            name="logo_url",
            field=models.URLField(
                blank=True,
                help_text="The address of the clinic's logo, beginning with https://. Leave empty for none.",
                max_length=500,
            ),
        ),
        migrations.AddField(
            model_name="practitionerlicence",
            name="lookup_url",
            field=models.URLField(
                blank=True,
                help_text="The page of the licensing board where anyone can check this licence.",
                max_length=500,
                verbose_name="licensing board's lookup",
            ),
        ),
    ]
