"""The manager's staff pages: the list of members with their role, last sign-in and licences;
one member's page with their licences and the history of renewals; changing a role,
deactivating and reactivating; adding, renewing and correcting a licence. The rules and the
audit rows are in accounts/staff.py; these views only fetch, validate and answer."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from mesoclinic.access import access_licence, access_member, licences_for, members_for
from mesoclinic.accounts import staff as actions
from mesoclinic.accounts.licences import THRESHOLDS, local_today
from mesoclinic.accounts.models import Membership, PractitionerLicence
from mesoclinic.web.context import MANAGER, caller
from mesoclinic.web.manage_forms import LicenceForm, RoleForm
from mesoclinic.web.staff_forms import LICENCE_DATA, PhotoForm, RenewForm


def _licence_row(licence: PractitionerLicence, today: dt.date) -> dict[str, Any]:
    days_left = (licence.expires_on - today).days
    return {
        "licence": licence,
        "expired": days_left < 0,
        "days_left": days_left,
        "soon": 0 <= days_left <= THRESHOLDS[0],
    }


BOOKED_ROLES = (Membership.Role.PRACTITIONER, Membership.Role.MANAGER)


@login_required
def staff(request: HttpRequest) -> HttpResponse:
    who = caller(request)
    members = list(
        members_for(who, MANAGER)
        .select_related("user")
        .order_by("deactivated_at", "user__last_name", "user__first_name", "user__username")
    )
    current = licences_for(who, MANAGER).filter(superseded_by__isnull=True)
    by_user: dict[int, list[PractitionerLicence]] = {}
    for licence in current:
        by_user.setdefault(licence.user_id, []).append(licence)
    today = local_today(who.clinic)
    rows = [
        {
            "member": m,
            "licences": [_licence_row(lic, today) for lic in by_user.get(m.user_id, [])],
            "role_form": RoleForm(initial={"role": m.role}, member=m, prefix=f"m{m.pk}"),
            "is_me": m.user_id == request.user.pk,
            # Practitioners and managers are booked; their hours are set on a page of its own.
            "has_hours": m.is_active and m.role in BOOKED_ROLES,
        }
        for m in members
    ]
    active = sum(1 for m in members if m.is_active)
    return render(
        request, "web/manage/staff.html", {"page": "staff", "rows": rows, "active": active}
    )


@login_required
def member(request: HttpRequest, membership_id: int) -> HttpResponse:
    """One member: their role and state, and every licence they have held here, the current
    ones first, each renewal beside the licence it replaced."""
    found = access_member(caller(request), membership_id)
    licences = list(
        licences_for(caller(request), MANAGER)
        .filter(user_id=found.user_id)
        .select_related("superseded_by")
        .order_by("-expires_on", "-pk")
    )
    today = local_today(found.clinic)
    context = {
        "page": "staff",
        "member": found,
        "current": [_licence_row(lic, today) for lic in licences if lic.is_current],
        "history": [_licence_row(lic, today) for lic in licences if not lic.is_current],
        "is_me": found.user_id == request.user.pk,
        "today": today,
        "photo_form": PhotoForm(initial={"photo_url": found.photo_url}),
    }
    return render(request, "web/staff/member.html", context)


@login_required
@require_POST
def set_photo(request: HttpRequest, membership_id: int) -> HttpResponse:
    """The photo the public site shows of a practitioner: an https address, or none."""
    found = access_member(caller(request), membership_id)
    form = PhotoForm(request.POST)
    if not form.is_valid():
        for error in form.errors.get("photo_url", []):
            messages.error(request, f"Photo address: {error}")
        return redirect("web:manage_member", membership_id=found.pk)
    if actions.do_set_photo(found, form.cleaned_data["photo_url"], user=request.user):
        messages.success(
            request,
            f"{found.user.display_name}'s photo on the public site is "
            + ("set." if found.photo_url else "removed."),
        )
    return redirect("web:manage_member", membership_id=found.pk)


def _back(request: HttpRequest, member: Membership) -> HttpResponse:
    """Back to the page the form was sent from: the member's page or the staff list."""
    if request.POST.get("next") == "member":
        return redirect("web:manage_member", membership_id=member.pk)
    return redirect("web:manage_staff")


@login_required
@require_POST
def change_role(request: HttpRequest, membership_id: int) -> HttpResponse:
    found = access_member(caller(request), membership_id)
    form = RoleForm(request.POST, member=found, prefix=f"m{found.pk}")
    if not form.is_valid():
        for error in form.errors.get("role", []):
            messages.error(request, f"{found.user.display_name}: {error}")
        return _back(request, found)
    try:
        changed = actions.do_change_role(found, form.cleaned_data["role"], user=request.user)
    except actions.StaffChangeRefused as refused:
        messages.error(request, f"{found.user.display_name}: {refused}")
        return _back(request, found)
    if changed:
        messages.success(request, f"{found.user.display_name} is now {found.get_role_display()}.")
    return _back(request, found)


@login_required
@require_POST
def deactivate(request: HttpRequest, membership_id: int) -> HttpResponse:
    found = access_member(caller(request), membership_id)
    try:
        actions.do_deactivate(found, user=request.user)
    except actions.StaffChangeRefused as refused:
        messages.error(request, str(refused))
        return _back(request, found)
    messages.success(
        request,
        f"{found.user.display_name} is deactivated: they can no longer sign in to "
        f"{found.clinic.name}, and their API tokens and calendar addresses for it are ended.",
    )
    return _back(request, found)


@login_required
@require_POST
def reactivate(request: HttpRequest, membership_id: int) -> HttpResponse:
    found = access_member(caller(request), membership_id)
    try:
        actions.do_reactivate(found, user=request.user)
    except actions.StaffChangeRefused as refused:
        messages.error(request, str(refused))
        return _back(request, found)
    messages.success(
        request, f"{found.user.display_name} is active again, as {found.get_role_display()}."
    )
    return _back(request, found)


@login_required
def add_licence(request: HttpRequest, membership_id: int) -> HttpResponse:
    found = access_member(caller(request), membership_id)
    form = LicenceForm(
        request.POST or None,
        instance=PractitionerLicence(user=found.user, clinic=found.clinic),
    )
    if request.method == "POST" and form.is_valid():
        actions.do_add_licence(found, form.cleaned_data, user=request.user)
        messages.success(request, f"The licence of {found.user.display_name} was added.")
        return redirect("web:manage_member", membership_id=found.pk)
    return render(
        request,
        "web/manage/licence_form.html",
        {"page": "staff", "form": form, "member": found},
    )


def _holder(licence: PractitionerLicence) -> Membership:
    """The membership of a licence's holder in its clinic, deactivated or not."""
    return Membership.every.select_related("user", "clinic").get(
        clinic_id=licence.clinic_id, user_id=licence.user_id
    )


@login_required
def renew_licence(request: HttpRequest, licence_id: int) -> HttpResponse:
    licence = access_licence(caller(request), licence_id, MANAGER)
    holder = _holder(licence)
    if not licence.is_current:
        messages.error(request, "This licence was already renewed.")
        return redirect("web:manage_member", membership_id=holder.pk)
    initial = {"kind": licence.kind, "number": licence.number, "jurisdiction": licence.jurisdiction}
    form = RenewForm(
        request.POST or None,
        initial=initial,
        instance=PractitionerLicence(user=licence.user, clinic=licence.clinic),
        after=licence.expires_on,
    )
    if request.method == "POST" and form.is_valid():
        try:
            actions.do_renew_licence(licence, form.cleaned_data, user=request.user)
        except actions.StaffChangeRefused as refused:
            form.add_error("expires_on", str(refused))
        else:
            messages.success(
                request,
                f"The licence of {holder.user.display_name} was renewed until "
                f"{form.cleaned_data['expires_on']:%-d %b %Y}; the old one is kept below.",
            )
            return redirect("web:manage_member", membership_id=holder.pk)
    return render(
        request,
        "web/staff/licence_form.html",
        {
            "page": "staff",
            "form": form,
            "member": holder,
            "licence": licence,
            "renew": True,
            "today": local_today(holder.clinic),
        },
    )


@login_required
def edit_licence(request: HttpRequest, licence_id: int) -> HttpResponse:
    licence = access_licence(caller(request), licence_id, MANAGER)
    holder = _holder(licence)
    if not licence.is_current:
        messages.error(request, "A licence that was renewed is kept as it was.")
        return redirect("web:manage_member", membership_id=holder.pk)
    previous = PractitionerLicence.objects.filter(superseded_by=licence).first()
    form = RenewForm(
        request.POST or None,
        initial={k: getattr(licence, k) for k in LICENCE_DATA},
        instance=PractitionerLicence(user=licence.user, clinic=licence.clinic),
        after=previous.expires_on if previous else None,
    )
    if request.method == "POST" and form.is_valid():
        try:
            changed = actions.do_edit_licence(licence, form.cleaned_data, user=request.user)
        except actions.StaffChangeRefused as refused:
            form.add_error("expires_on", str(refused))
        else:
            messages.success(
                request,
                "The licence was corrected." if changed else "Nothing changed.",
            )
            return redirect("web:manage_member", membership_id=holder.pk)
    return render(
        request,
        "web/staff/licence_form.html",
        {
            "page": "staff",
            "form": form,
            "member": holder,
            "licence": licence,
            "renew": False,
            "today": local_today(holder.clinic),
        },
    )
