from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "mesoclinic.api"
    label = "api"

    def ready(self) -> None:
        # The calendar, outcomes, photos, safety and analytics endpoints register themselves on
        # the API defined in views.py.
        from mesoclinic.api import (  # noqa: F401
            analytics,
            outcomes,
            photos,
            safety,
            scheduling,
            surveillance,
        )
