"""The manager's pages: the formulary and its lots (with recalls and tracing), and the staff
with their roles and licences. Only a manager of the clinic may see them: every object is
fetched through one helper per kind, which answers 403 for another role and 404 for another
clinic's object."""

from __future__ import annotations

import csv
import datetime as dt
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.views.decorators.http import require_POST

from mesoclinic.access import (
    access_lot,
    access_member,
    access_product,
    audit_list,
    members_for,
    products_for,
)
from mesoclinic.accounts.models import AuditEvent, Membership, PractitionerLicence, User, audit
from mesoclinic.courses.tracing import lot_exposures
from mesoclinic.formulary.models import Lot, Product, ProductIngredient
from mesoclinic.web.context import MANAGER, caller, require
from mesoclinic.web.manage_forms import (
    ClinicSettingsForm,
    ComponentFormSet,
    InviteForm,
    LicenceForm,
    LotForm,
    ProductForm,
    RecallForm,
    RoleForm,
    save_components,
)

# Formulary and lots.


@login_required
def formulary(request: HttpRequest) -> HttpResponse:
    who = caller(request)
    who.require(MANAGER)
    components = ProductIngredient.objects.select_related("ingredient").order_by("ingredient__name")
    products = products_for(who, MANAGER).prefetch_related(
        Prefetch("components", queryset=components),
        Prefetch("lots", queryset=Lot.objects.order_by("-received_on", "lot_number")),
    )
    return render(
        request,
        "web/manage/formulary.html",
        {"page": "formulary", "products": products, "today": dt.date.today()},
    )


@login_required
def add_product(request: HttpRequest) -> HttpResponse:
    found = require(request, MANAGER)
    data = request.POST if request.method == "POST" else None
    form = ProductForm(data, instance=Product(clinic=found.clinic))
    formset = ComponentFormSet(data, prefix="components", form_kwargs={"clinic": found.clinic})
    if request.method == "POST" and form.is_valid() and formset.is_valid():
        with transaction.atomic():
            product = form.save()
            parts = save_components(product, formset)
            audit(
                clinic=found.clinic,
                user=request.user,
                action=AuditEvent.Action.CREATE,
                obj=product,
                via="web",
                components=[
                    {
                        "ingredient": c.ingredient.key,
                        "concentration": str(c.concentration),
                        "unit": c.unit,
                    }
                    for c in parts
                ],
            )
        messages.success(request, f"{product.name} was added to the formulary.")
        return redirect("web:manage_formulary")
    return render(
        request,
        "web/manage/product_form.html",
        {"page": "formulary", "form": form, "formset": formset},
    )


@login_required
def add_lot(request: HttpRequest, product_id: int) -> HttpResponse:
    product = access_product(caller(request), product_id, MANAGER)
    form = LotForm(request.POST or None, instance=Lot(product=product))
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            lot = form.save()
            audit(
                clinic=product.clinic,
                user=request.user,
                action=AuditEvent.Action.CREATE,
                obj=lot,
                via="web",
                lot_number=lot.lot_number,
            )
        messages.success(request, f"Lot {lot.lot_number} of {product.name} was received.")
        return redirect("web:manage_formulary")
    return render(
        request,
        "web/manage/lot_form.html",
        {"page": "formulary", "form": form, "product": product},
    )


@login_required
def lot_detail(request: HttpRequest, lot_id: int) -> HttpResponse:
    lot = access_lot(caller(request), lot_id, MANAGER)
    form = RecallForm(request.POST or None)
    if request.method == "POST":
        if lot.recalled:
            messages.error(request, "This lot is already recalled.")
            return redirect("web:manage_lot", lot_id=lot.pk)
        if form.is_valid():
            with transaction.atomic():
                lot.do_recall(form.cleaned_data["reason"], request.user)
                audit(
                    clinic=lot.product.clinic,
                    user=request.user,
                    action=AuditEvent.Action.UPDATE,
                    obj=lot,
                    via="web",
                    recalled=True,
                    reason=lot.recall_reason,
                )
            messages.success(request, f"Lot {lot.lot_number} is recalled.")
            return redirect("web:manage_lot", lot_id=lot.pk)
    patients = lot_exposures(lot)
    if patients:
        # The list carries contact details: reading it is recorded like reading a chart.
        audit(
            clinic=lot.product.clinic,
            user=request.user,
            action=AuditEvent.Action.VIEW,
            obj=lot,
            via="web",
            patients=[p["id"] for p in patients],
        )
        audit_list(caller(request), "lot patients", [p["id"] for p in patients], lot=lot.pk)
    return render(
        request,
        "web/manage/lot.html",
        {
            "page": "formulary",
            "lot": lot,
            "form": form,
            "patients": patients,
            "expired": lot.is_expired_on(dt.date.today()),
        },
    )


CSV_HEADER = [
    "patient_id",
    "last_name",
    "first_name",
    "phone",
    "email",
    "kind",
    "at",
    "where",
    "volume_ml",
]


@login_required
def lot_patients_csv(request: HttpRequest, lot_id: int) -> HttpResponse:
    """One row per injection from the lot, so each row says when and where the patient got it."""
    lot = access_lot(caller(request), lot_id, MANAGER)
    clinic = lot.product.clinic
    patients = lot_exposures(lot)
    filename = f"lot-{lot.pk}-patients.csv"
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow(CSV_HEADER)
    for p in patients:
        for e in p["exposures"]:
            writer.writerow(
                [
                    p["id"],
                    _cell(p["last_name"]),
                    _cell(p["first_name"]),
                    # The patient form allows only digits, spaces and + ( ) - . in a phone.
                    p["phone"],
                    _cell(p["email"]),
                    e["kind"],
                    clinic.local(e["at"]).isoformat(timespec="minutes"),
                    _cell(e.get("area") or e.get("site") or ""),
                    e.get("volume_ml", ""),
                ]
            )
    audit(
        clinic=clinic,
        user=request.user,
        action=AuditEvent.Action.EXPORT,
        obj=lot,
        via="web",
        patients=[p["id"] for p in patients],
    )
    audit_list(
        caller(request),
        "lot patients CSV",
        [p["id"] for p in patients],
        action=AuditEvent.Action.EXPORT,
        lot=lot.pk,
    )
    return response


def _cell(value: Any) -> str:
    """A text cell that a spreadsheet will not run as a formula."""
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


# Staff and licences.


@login_required
def staff(request: HttpRequest) -> HttpResponse:
    found = require(request, MANAGER)
    licences = PractitionerLicence.objects.filter(clinic=found.clinic)
    members = list(
        members_for(caller(request), MANAGER)
        .select_related("user")
        .order_by("user__last_name", "user__first_name", "user__username")
    )
    by_user: dict[int, list[PractitionerLicence]] = {}
    for licence in licences:
        by_user.setdefault(licence.user_id, []).append(licence)
    today = dt.date.today()
    rows = [
        {
            "member": m,
            "licences": [
                {"licence": lic, "expired": not lic.is_valid_on(today)}
                for lic in by_user.get(m.user_id, [])
            ],
            "role_form": RoleForm(initial={"role": m.role}, member=m, prefix=f"m{m.pk}"),
        }
        for m in members
    ]
    return render(request, "web/manage/staff.html", {"page": "staff", "rows": rows})


@login_required
def clinic_settings(request: HttpRequest) -> HttpResponse:
    """The clinic's details: name, address, phone, time zone, currency, date and time format,
    region, and whether session 1 needs a baseline."""
    clinic = require(request, MANAGER).clinic
    form = ClinicSettingsForm(request.POST if request.method == "POST" else None, instance=clinic)
    before = {name: getattr(clinic, name) for name in form.fields}
    if request.method == "POST" and form.is_valid():
        changed = {k: v for k, v in form.cleaned_data.items() if before[k] != v}
        if changed:
            with transaction.atomic():
                form.save()
                audit(
                    clinic=clinic,
                    user=request.user,
                    action=AuditEvent.Action.UPDATE,
                    obj=clinic,
                    via="web",
                    **changed,
                )
        messages.success(request, "Clinic details saved." if changed else "Nothing changed.")
        return redirect("web:manage_clinic")
    return render(request, "web/manage/clinic.html", {"page": "setup", "form": form})


@login_required
def invite(request: HttpRequest) -> HttpResponse:
    found = require(request, MANAGER)
    form = InviteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        with transaction.atomic():
            user = User(
                username=data["username"],
                first_name=data["first_name"].strip(),
                last_name=data["last_name"].strip(),
                email=data["email"],
            )
            user.set_unusable_password()
            user.save()
            member = Membership.objects.create(user=user, clinic=found.clinic, role=data["role"])
            audit(
                clinic=found.clinic,
                user=request.user,
                action=AuditEvent.Action.CREATE,
                obj=member,
                via="web",
                username=user.username,
                role=member.role,
            )
            # Sent inside the transaction: if the mail cannot go, nobody is left with an
            # account they were never told about.
            _send_invitation(request, user, member)
        messages.success(request, f"{user.get_full_name()} was invited by email.")
        return redirect("web:manage_staff")
    return render(request, "web/manage/invite.html", {"page": "staff", "form": form})


def _send_invitation(request: HttpRequest, user: User, member: Membership) -> None:
    """Email a one-time link to Django's password-reset page, where the invitee sets their
    own password. The account has an unusable password until then."""
    path = reverse(
        "password_reset_confirm",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": default_token_generator.make_token(user),
        },
    )
    context = {
        "user": user,
        "member": member,
        "inviter": request.user,
        "link": request.build_absolute_uri(path),
    }
    send_mail(
        f"You are invited to {member.clinic.name} on mesoclinic",
        render_to_string("web/manage/invitation_email.txt", context),
        None,
        [user.email],
    )


@login_required
@require_POST
def change_role(request: HttpRequest, membership_id: int) -> HttpResponse:
    member = access_member(caller(request), membership_id)
    form = RoleForm(request.POST, member=member, prefix=f"m{member.pk}")
    if not form.is_valid():
        for error in form.errors.get("role", []):
            messages.error(request, f"{member.user}: {error}")
        return redirect("web:manage_staff")
    before = member.role
    if form.cleaned_data["role"] != before:
        with transaction.atomic():
            member.role = form.cleaned_data["role"]
            member.save(update_fields=["role"])
            audit(
                clinic=member.clinic,
                user=request.user,
                action=AuditEvent.Action.UPDATE,
                obj=member,
                via="web",
                role_before=before,
                role=member.role,
            )
        messages.success(request, f"{member.user} is now {member.get_role_display()}.")
    return redirect("web:manage_staff")


@login_required
def add_licence(request: HttpRequest, membership_id: int) -> HttpResponse:
    member = access_member(caller(request), membership_id)
    form = LicenceForm(
        request.POST or None,
        instance=PractitionerLicence(user=member.user, clinic=member.clinic),
    )
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            licence = form.save()
            audit(
                clinic=member.clinic,
                user=request.user,
                action=AuditEvent.Action.CREATE,
                obj=licence,
                via="web",
                member=member.pk,
                kind=licence.kind,
                number=licence.number,
            )
        messages.success(request, f"The licence of {member.user} was added.")
        return redirect("web:manage_staff")
    return render(
        request,
        "web/manage/licence_form.html",
        {"page": "staff", "form": form, "member": member},
    )
