"""Fill the folded name and the E.164 phone of every patient registered before they existed."""

from django.db import migrations

from mesoclinic.patients import normal


def fill(apps, schema_editor):  # type: ignore[no-untyped-def]
    Patient = apps.get_model("patients", "Patient")
    for patient in Patient.objects.select_related("clinic").iterator(chunk_size=500):
        region = normal.region_of(patient.clinic.phone)
        Patient.objects.filter(pk=patient.pk).update(
            search_key=normal.search_key(patient.first_name, patient.last_name),
            phone_e164=normal.e164(patient.phone, region),
        )


class Migration(migrations.Migration):
    dependencies = [("patients", "0002_patient_record_history_and_search")]

    operations = [migrations.RunPython(fill, migrations.RunPython.noop)]
