from django.urls import path

from mesoclinic.notify import views

app_name = "notify"

urlpatterns = [
    path("notice/<str:token>/", views.notice, name="notice"),
    path("sms/inbound/", views.sms_inbound, name="sms_inbound"),
    path("sms/status/", views.sms_status, name="sms_status"),
]
