"""The calendar's pages, under /calendar/."""

from django.urls import path

from mesoclinic.web import calendar

urlpatterns = [
    path("", calendar.calendar, name="calendar"),
    path("book/", calendar.book, name="calendar_book"),
    path(
        "appointments/<int:appointment_id>/",
        calendar.appointment_detail,
        name="calendar_appointment",
    ),
    path("appointments/<int:appointment_id>/move/", calendar.move, name="calendar_move"),
    path("appointments/<int:appointment_id>/cancel/", calendar.cancel, name="calendar_cancel"),
    path("appointments/<int:appointment_id>/no-show/", calendar.no_show, name="calendar_no_show"),
    path("appointments/<int:appointment_id>/arrived/", calendar.arrived, name="calendar_arrived"),
]
