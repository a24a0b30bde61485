from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "mesoclinic.api"
    label = "api"

    def ready(self) -> None:
        # The calendar's endpoints register themselves on the API defined in views.py.
        from mesoclinic.api import scheduling  # noqa: F401
