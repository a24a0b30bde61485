from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Running the product: health and readiness, the worker's heartbeat, backups."""

    name = "mesoclinic.ops"
    label = "ops"
