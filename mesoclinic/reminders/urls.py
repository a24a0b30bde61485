from django.urls import path

from mesoclinic.reminders import views

app_name = "reminders"

urlpatterns = [
    path("confirm/<str:token>/", views.confirm, name="confirm"),
    path("change/<str:token>/", views.change, name="change"),
]
