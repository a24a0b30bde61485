from django.apps import AppConfig


class SchedulingConfig(AppConfig):
    name = "mesoclinic.scheduling"
    label = "scheduling"

    def ready(self) -> None:
        # Calendar feeds end with their practitioner's membership or account (feeds.py).
        from mesoclinic.scheduling import feeds  # noqa: F401
