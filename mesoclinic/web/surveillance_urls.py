"""The safety inbox under /safety/alerts/ (see mesoclinic/web/surveillance.py)."""

from django.urls import path

from mesoclinic.web import surveillance

urlpatterns = [
    path("", surveillance.alerts, name="safety_alerts"),
    path("run/", surveillance.run_now, name="safety_surveil"),
    path("<int:alert_id>/", surveillance.alert_detail, name="safety_alert"),
    path("<int:alert_id>/acknowledge/", surveillance.acknowledge, name="safety_alert_acknowledge"),
    path("<int:alert_id>/close/", surveillance.close, name="safety_alert_close"),
    path("<int:alert_id>/recall/", surveillance.recall, name="safety_alert_recall"),
]
