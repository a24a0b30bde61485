"""Public pages the infection-watch emails link to (signed links, no login)."""

from django.urls import path  # noqa: F401

app_name = "safety"
urlpatterns: list = []
