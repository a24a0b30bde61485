from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "mesoclinic.api"
    label = "api"
