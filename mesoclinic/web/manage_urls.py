"""The manager's pages: formulary and lots, staff and licences."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
