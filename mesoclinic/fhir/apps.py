from django.apps import AppConfig


class FhirConfig(AppConfig):
    """The FHIR R4B API, and the Bulk Data `$export` jobs the worker runs."""

    name = "mesoclinic.fhir"
    label = "fhir"
