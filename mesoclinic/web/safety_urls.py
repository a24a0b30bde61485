"""Pages under /safety/ (see mesoclinic/web/safety.py)."""

from django.urls import path  # noqa: F401

urlpatterns: list = []
