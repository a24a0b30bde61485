from django.apps import AppConfig


class RemindersConfig(AppConfig):
    name = "mesoclinic.reminders"
    label = "reminders"
