"""Pages under /outcomes/ (see mesoclinic/web/outcomes.py)."""

from django.urls import path  # noqa: F401

urlpatterns: list = []
