"""Stopping or completing a course from the chart. Stopping asks first which future visits of
the course will be cancelled, and cancels them with the stop, in one transaction."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from mesoclinic.access import access_course, access_session
from mesoclinic.courses import actions
from mesoclinic.courses.models import Course
from mesoclinic.scheduling.actions import do_cancel
from mesoclinic.scheduling.models import Appointment
from mesoclinic.web import forms
from mesoclinic.web.chart import chart_url
from mesoclinic.web.context import CLINICAL, caller, reading
from mesoclinic.web.forms import put_errors


def future_visits(course: Course) -> list[Appointment]:
    """The course's visits still to come that a stop would cancel."""
    return list(
        Appointment.objects.filter(
            course=course,
            status__in=(Appointment.Status.BOOKED, Appointment.Status.CONFIRMED),
            starts_at__gt=timezone.now(),
        )
        .select_related("practitioner")
        .order_by("starts_at")
    )


def do_change_course_status(
    course: Course, action: str, reason: str, cancel_visits: bool, user: Any
) -> list[Appointment]:
    """Stop (with a reason) or complete the course; on a stop, cancel its future visits if
    asked. Returns the visits cancelled. All or nothing."""
    with transaction.atomic():
        if action == "stop":
            actions.do_stop_course(course, reason, user, via="web")
        else:
            actions.do_complete_course(course, user, via="web")
        cancelled = future_visits(course) if action == "stop" and cancel_visits else []
        for visit in cancelled:
            do_cancel(
                visit, user=user, reason=f"The course was stopped: {reason.strip()}", via="web"
            )
    return cancelled


@login_required
def course_status(request: HttpRequest, course_id: int) -> HttpResponse:
    course = access_course(caller(request), course_id, CLINICAL, view=reading(request))
    action = request.POST.get("action") or request.GET.get("action") or "stop"
    form = forms.CourseStatusForm(request.POST or None, initial={"action": action})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            cancelled = do_change_course_status(
                course, data["action"], data["reason"], data["cancel_visits"], request.user
            )
        except ValidationError as exc:
            put_errors(form, exc)
        else:
            done = "stopped" if data["action"] == "stop" else "marked completed"
            extra = f" {len(cancelled)} future visit(s) cancelled." if cancelled else ""
            messages.success(request, f"The course is {done}.{extra}")
            return redirect(chart_url(course))
    return render(
        request,
        "web/clinical/course_status.html",
        {
            "page": "patients",
            "patient": course.patient,
            "course": course,
            "form": form,
            "action": action if action in ("stop", "complete") else "stop",
            "visits": future_visits(course),
        },
    )


@login_required
def amend_session(request: HttpRequest, session_id: int) -> HttpResponse:
    """Correct a charted session with a reason; the original stays on record and in view."""
    session = access_session(caller(request), session_id, CLINICAL, view=reading(request))
    form = forms.AmendSessionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            actions.do_amend_session(
                session,
                field=data["field"],
                value=data["value"],
                reason=data["reason"],
                user=request.user,
                via="web",
            )
        except ValidationError as exc:
            put_errors(form, exc)
        else:
            messages.success(request, f"Session {session.number} amended.")
            return redirect("web:session", session_id=session.pk)
    return render(
        request,
        "web/clinical/amend_session.html",
        {
            "page": "patients",
            "session": session,
            "patient": session.course.patient,
            "course": session.course,
            "form": form,
            "current": {f: actions.current_value(session, f) for f in actions.AMENDABLE},
        },
    )
