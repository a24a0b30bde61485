"""Pages under /analytics/ (see mesoclinic/web/analytics.py)."""

from django.urls import path  # noqa: F401

urlpatterns: list = []
