"""Side effects in the web app: reporting one after a session, marking it resolved, and
closing the follow-up it opened. Each change goes through the same actions as the API, which
judge the status by the protocol and write the audit row."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from mesoclinic.access import access_course, access_follow_up, access_session, access_side_effect
from mesoclinic.accounts.models import Clinic
from mesoclinic.courses import actions, logic
from mesoclinic.courses.models import Course, FollowUp, Session, SideEffect
from mesoclinic.lib.formats import short_when_text, when_text
from mesoclinic.protocols.describe import duration
from mesoclinic.protocols.schema import Protocol
from mesoclinic.web import forms
from mesoclinic.web.chart import chart_url, flash_errors
from mesoclinic.web.context import CLINICAL, caller, reading
from mesoclinic.web.forms import put_errors
from mesoclinic.web.timeline import effect_label


def kind_choices(spec: Protocol) -> list[tuple[str, str]]:
    """The protocol's side effects, each with what the protocol expects of it, then "other"."""
    choices = []
    for kind in spec.side_effects:
        if kind.urgent:
            note = "always urgent"
        elif kind.expected_hours is not None:
            note = f"expected up to {duration(kind.expected_hours.v)}"
        else:
            note = ""
        choices.append((kind.key, f"{kind.label} ({note})" if note else kind.label))
    choices.append((SideEffect.OTHER, "Other (describe it below)"))
    return choices


def _session_label(session: Session, clinic: Clinic) -> str:
    return f"Session {session.number} · {when_text(session.performed_at, clinic)}"


def status_words(effect: SideEffect, clinic: Clinic) -> str:
    """The derived status in words, and what the clinic does next."""
    has_follow_up = effect.follow_ups.filter(status=FollowUp.Status.OPEN).exists()
    if effect.status == logic.URGENT:
        return "urgent — " + (
            "an urgent follow-up was opened; it heads the follow-ups on Today."
            if has_follow_up
            else "see the patient."
        )
    if effect.status == logic.BEYOND_EXPECTED:
        return "beyond what is expected — " + (
            "a follow-up was opened." if has_follow_up else "review it."
        )
    if effect.expected_until is not None and effect.resolved_at is None:
        return f"expected, until {short_when_text(effect.expected_until, clinic)}."
    return "expected."


@login_required
def report_for_session(request: HttpRequest, session_id: int) -> HttpResponse:
    session = access_session(caller(request), session_id, CLINICAL, view=reading(request))
    return _report(request, session.course, session)


@login_required
def report_for_course(request: HttpRequest, course_id: int) -> HttpResponse:
    course = access_course(caller(request), course_id, CLINICAL, view=reading(request))
    return _report(request, course, None)


def _report(request: HttpRequest, course: Course, session: Session | None) -> HttpResponse:
    """The form for one session, or (from the chart) for a session of the course to choose."""
    spec = course.spec
    sessions: list[Session] = [session] if session else list(course.sessions.order_by("-number"))
    for s in sessions:
        s.course = course  # the action reads the protocol through it; no second query
    choices = None if session else [(s.pk, _session_label(s, course.clinic)) for s in sessions]
    chosen = request.GET.get("session", "")
    initial: dict[str, object] = {
        "onset_at": timezone.now(),
        "session": next((s.pk for s in sessions if str(s.pk) == chosen), None)
        or (sessions[0].pk if sessions else None),
    }
    form = forms.SideEffectForm(
        kind_choices(spec), choices, course.clinic.timezone, request.POST or None, initial=initial
    )
    if request.method == "POST" and sessions and form.is_valid():
        data = form.cleaned_data
        target = session or next(s for s in sessions if s.pk == data["session"])
        try:
            effect = actions.do_report_side_effect(
                target,
                kind=data["kind"],
                description=data["description"],
                onset_at=data["onset_at"],
                resolved_at=data["resolved_at"],
                grade=data["grade"],
                user=request.user,
                via="web",
            )
        except ValidationError as exc:
            put_errors(form, exc)
        else:
            messages.success(
                request,
                f"Side effect recorded after session {target.number}: "
                f"{effect_label(effect, spec)}, grade {effect.grade}. "
                f"Status: {status_words(effect, course.clinic)}",
            )
            return redirect(chart_url(course))
    return render(
        request,
        "web/report_side_effect.html",
        {
            "page": "patients",
            "patient": course.patient,
            "course": course,
            "session": session,
            "has_sessions": bool(sessions),
            "form": form,
            "urgent_from_grade": spec.urgent_from_grade.v,
        },
    )


@login_required
@require_POST
def resolve(request: HttpRequest, effect_id: int) -> HttpResponse:
    effect = access_side_effect(caller(request), effect_id, CLINICAL)
    course = effect.session.course
    form = forms.ResolveSideEffectForm(request.POST)
    if form.is_valid():
        try:
            actions.do_resolve_side_effect(
                effect, form.cleaned_data["resolved_at"], request.user, via="web"
            )
        except ValidationError as exc:
            put_errors(form, exc)
        else:
            messages.success(
                request,
                f"{effect_label(effect, course.spec)} marked resolved. "
                f"Status: {status_words(effect, course.clinic)}",
            )
    flash_errors(request, form, "Side effect")
    return redirect(chart_url(course))


@login_required
@require_POST
def close_follow_up(request: HttpRequest, follow_up_id: int) -> HttpResponse:
    """Close any follow-up (a side effect's, a serious adverse event's, an infection-watch
    answer's) with its outcome, from the chart or from Today, and go back there."""
    follow_up = access_follow_up(caller(request), follow_up_id, CLINICAL)
    course = follow_up.session.course
    form = forms.CloseFollowUpForm(request.POST)
    if form.is_valid():
        try:
            actions.do_close_follow_up(
                follow_up,
                form.cleaned_data["outcome"],
                request.user,
                via="web",
                resolution=form.cleaned_data["resolution"],
            )
        except ValidationError as exc:
            put_errors(form, exc)
        else:
            messages.success(request, f"Follow-up closed: {follow_up.reason}.")
    flash_errors(request, form, "Follow-up")
    # Closed from Today or its list of follow-ups, it returns there (a fixed page, never an
    # address from the form).
    if request.POST.get("next") == "today":
        return redirect("web:today")
    if request.POST.get("next") == "follow-ups":
        return redirect("web:today_list", work_list="follow-ups")
    return redirect(chart_url(course))
