from django.apps import AppConfig


class SiteConfig(AppConfig):
    name = "mesoclinic.site"
    label = "site"
    verbose_name = "Public site"
