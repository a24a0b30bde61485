"""Pages under /photos/ (see mesoclinic/web/photos.py)."""

from django.urls import path  # noqa: F401

urlpatterns: list = []
