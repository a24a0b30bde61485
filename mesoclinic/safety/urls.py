"""Public pages the infection-watch emails link to (signed links, no login)."""

from django.urls import path

from mesoclinic.safety import views

app_name = "safety"
urlpatterns = [
    path("<str:token>/", views.watch, name="watch"),
]
