from django.apps import AppConfig


class FormularyConfig(AppConfig):
    name = "mesoclinic.formulary"
    label = "formulary"
