"""A URL configuration in which the chart lives elsewhere (tests/test_addresses.py)."""

from django.http import HttpResponse
from django.urls import include, path


def _chart(request: object, patient_id: int) -> HttpResponse:
    return HttpResponse()


urlpatterns = [
    path("elsewhere/", include(([path("<int:patient_id>/", _chart, name="chart")], "web"))),
]
