"""Staff pages. Every view fetches its objects through the access layer (mesoclinic/access.py),
which answers 404 for another clinic's object and 403 for a role that may not see it."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from mesoclinic.access import access_change_request, audit_list
from mesoclinic.accounts import licences
from mesoclinic.accounts.models import AuditEvent, Membership, audit
from mesoclinic.courses.models import FollowUp
from mesoclinic.patients.models import Patient
from mesoclinic.patients.records import Duplicate, find_duplicates
from mesoclinic.patients.search import search
from mesoclinic.reminders.actions import do_handle_change_request
from mesoclinic.web import today as today_page
from mesoclinic.web.context import ALL_STAFF, caller, choose_clinic, require
from mesoclinic.web.forms import PatientForm


@login_required
@require_POST
def switch_clinic(request: HttpRequest) -> HttpResponse:
    """Staff of several clinics choose the one they act in; everything they see follows it."""
    raw = request.POST.get("clinic", "")
    if not raw.isdigit() or choose_clinic(request, int(raw)) is None:
        messages.error(request, "You are not a member of that clinic.")
    return redirect("web:today")


@login_required
def today(request: HttpRequest) -> HttpResponse:
    who = caller(request)
    found = who.require(ALL_STAFF)
    context = today_page.build(
        found.clinic, me=request.user, manager=found.role == Membership.Role.MANAGER
    )
    audit_list(who, "today", today_page.patients_shown(context))
    # Staff: licences that expire within 60 days or have expired, for a manager all of the
    # clinic's, for anyone else their own (templates/web/staff/_licence_warnings.html).
    context["licence_warnings"] = licences.warnings_for(found, licences.local_today(found.clinic))
    return render(request, "web/today.html", {"page": "today", **context})


@login_required
def today_list(request: HttpRequest, work_list: str) -> HttpResponse:
    """One of Today's work lists in full: Today shows the first rows of each."""
    who = caller(request)
    found = who.require(ALL_STAFF)
    if work_list not in today_page.WORK_LISTS:
        raise Http404("No such list.")
    rows = today_page.work_list(found.clinic, work_list)
    audit_list(who, f"today: {work_list}", today_page.list_patients(work_list, rows))
    return render(
        request,
        "web/today_list.html",
        {
            "page": "today",
            "name": work_list,
            "title": today_page.WORK_LISTS[work_list],
            "found": rows,
            "now": timezone.now(),
            "follow_up_resolutions": FollowUp.Resolution.choices,
        },
    )


@login_required
def patients(request: HttpRequest) -> HttpResponse:
    found = require(request, ALL_STAFF)
    # PostgreSQL refuses a NUL in text, in the search and in the audit row alike.
    query = request.GET.get("q", "").replace("\x00", "")
    results = list(search(found.clinic, query)[:50]) if query.strip() else []
    if query.strip():
        # One row naming each patient the search showed, and one for the search itself even
        # when it found no one: what was looked for is part of the trail.
        audit(
            clinic=found.clinic,
            user=request.user,
            action=AuditEvent.Action.VIEW,
            object_type="patients.Patient",
            via="web",
            query=query,
        )
        audit_list(caller(request), "patient search", [p.pk for p in results], query=query)
    template = (
        "web/_patient_results.html" if request.headers.get("HX-Request") else "web/patients.html"
    )
    return render(request, template, {"page": "patients", "query": query, "results": results})


@login_required
def register_patient(request: HttpRequest) -> HttpResponse:
    found = require(request, ALL_STAFF)
    form = PatientForm(request.POST or None, instance=Patient(clinic=found.clinic))
    duplicates: list[Duplicate] = []
    if request.method == "POST" and form.is_valid():
        duplicates = [] if "register_anyway" in request.POST else _duplicates(found, form)
        audit_list(caller(request), "possible duplicates", [d.patient.pk for d in duplicates])
    if request.method == "POST" and form.is_valid() and not duplicates:
        with transaction.atomic():
            patient = form.save()
            audit(
                clinic=found.clinic,
                user=request.user,
                action=AuditEvent.Action.CREATE,
                obj=patient,
                patient_id=patient.pk,
                via="web",
            )
        return redirect("web:chart", patient_id=patient.pk)
    return render(
        request,
        "web/register_patient.html",
        {"page": "patients", "form": form, "duplicates": duplicates},
    )


def _duplicates(found: Membership, form: PatientForm) -> list[Duplicate]:
    data = form.cleaned_data
    return find_duplicates(
        found.clinic,
        first_name=data["first_name"],
        last_name=data["last_name"],
        date_of_birth=data["date_of_birth"],
        phone=data.get("phone", ""),
        email=data.get("email", ""),
    )


@login_required
@require_POST
def handle_change_request(request: HttpRequest, request_id: int) -> HttpResponse:
    """Mark a patient's request to change a visit as dealt with (the move or cancellation
    itself is done from the calendar)."""
    change = access_change_request(caller(request), request_id, ALL_STAFF)
    if do_handle_change_request(change, user=request.user):
        messages.success(request, f"Marked {change.appointment.patient}'s request as handled.")
    else:
        messages.info(request, "That request was already handled.")
    return redirect("web:today")
