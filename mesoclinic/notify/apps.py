from django.apps import AppConfig


class NotifyConfig(AppConfig):
    name = "mesoclinic.notify"
    label = "notify"
