from django.apps import AppConfig


class ImportsConfig(AppConfig):
    name = "mesoclinic.imports"
    label = "imports"
