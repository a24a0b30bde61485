"""Pages under /analytics/ (see mesoclinic/web/analytics.py)."""

from django.urls import path

from mesoclinic.web import analytics

urlpatterns = [path("", analytics.analytics, name="analytics")]
