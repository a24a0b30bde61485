from django.apps import AppConfig


class CoursesConfig(AppConfig):
    name = "mesoclinic.courses"
    label = "courses"
