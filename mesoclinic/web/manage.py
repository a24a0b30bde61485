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
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from mesoclinic.access import (
    access_lot,
    access_product,
    access_vial,
    audit_list,
    products_for,
)
from mesoclinic.accounts.models import AuditEvent, Membership, User, audit
from mesoclinic.billing import money
from mesoclinic.courses.tracing import lot_exposures
from mesoclinic.formulary import stock
from mesoclinic.formulary.models import (
    AlreadyRecalled,
    Lot,
    Product,
    ProductIngredient,
    StockMovement,
)
from mesoclinic.web.context import MANAGER, caller, require
from mesoclinic.web.manage_forms import (
    ClinicSettingsForm,
    CloseVialForm,
    ComponentFormSet,
    InviteForm,
    LotForm,
    ProductForm,
    RecallForm,
    StockForm,
    save_components,
)
from mesoclinic.web.recall_notices import notices_context

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


def _recall(lot: Lot, reason: str, user: Any) -> None:
    """Recall the lot and audit it, in one transaction (Lot.do_recall locks the row)."""
    with transaction.atomic():
        lot.do_recall(reason, user)
        audit(
            clinic=lot.product.clinic,
            user=user,
            action=AuditEvent.Action.UPDATE,
            obj=lot,
            via="web",
            recalled=True,
            reason=lot.recall_reason,
        )


@login_required
def lot_detail(request: HttpRequest, lot_id: int) -> HttpResponse:
    lot = access_lot(caller(request), lot_id, MANAGER)
    form = RecallForm(request.POST or None)
    if request.method == "POST":
        if lot.recalled:
            messages.error(request, str(AlreadyRecalled(lot)))
            return redirect("web:manage_lot", lot_id=lot.pk)
        if form.is_valid():
            try:
                _recall(lot, form.cleaned_data["reason"], request.user)
            except AlreadyRecalled as exc:
                messages.error(request, str(exc))
                return redirect("web:manage_lot", lot_id=lot.pk)
            messages.success(request, f"Lot {lot.lot_number} is recalled.")
            return redirect("web:manage_lot", lot_id=lot.pk)
    return lot_page(request, lot, form)


def lot_page(
    request: HttpRequest,
    lot: Lot,
    form: RecallForm,
    stock_form: StockForm | None = None,
    status: int = 200,
) -> HttpResponse:
    """The lot's page: the lot, its stock and vials, its recall, and who received it."""
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
            **_stock_context(lot, stock_form),
            **notices_context(lot),
        },
        status=status,
    )


def _stock_context(lot: Lot, stock_form: StockForm | None = None) -> dict[str, Any]:
    now = timezone.now()
    currency = lot.product.clinic.currency
    found = stock.lot_values([lot], currency, now)[lot.pk]
    return {
        "stock": found.stock,
        # Its cost of a vial and its value at cost, from its deliveries' costs.
        "lot_value": found,
        "currency": currency,
        "stock_form": stock_form or StockForm(currency=currency),
        "close_form": CloseVialForm(),
        "movements": list(lot.movements.select_related("by", "vial").order_by("-at", "-id")[:20]),
        "counted": found.counted,
        "now": now,
    }


@login_required
def change_stock(request: HttpRequest, lot_id: int) -> HttpResponse:
    """Vials received, mL wasted or a shelf count, from the lot's page."""
    who = caller(request)
    lot = access_lot(who, lot_id, MANAGER)
    form = StockForm(request.POST, currency=lot.product.clinic.currency)
    if request.method == "POST" and form.is_valid():
        kind, amount = form.cleaned_data["kind"], form.cleaned_data["amount"]
        reason = form.cleaned_data["reason"]
        moved: StockMovement | None
        with transaction.atomic():
            if kind == "received":
                moved = stock.receive(
                    lot,
                    int(amount),
                    user=request.user,
                    reason=reason,
                    vial_cost=form.cleaned_data["vial_cost"],
                )
            elif kind == "waste":
                moved = stock.record_waste(lot, amount, reason, user=request.user)
            else:
                moved = stock.record_count(lot, int(amount), reason, user=request.user)
            audit(
                clinic=lot.product.clinic,
                user=request.user,
                action=AuditEvent.Action.UPDATE,
                obj=lot,
                via="web",
                stock=kind,
                vials=moved.vials if moved else 0,
                ml=str(moved.ml) if moved else "0",
                vial_cost=str(moved.vial_cost) if moved and moved.vial_cost is not None else None,
            )
        if kind == "count" and moved is None:
            messages.success(request, "The count agrees with the stock; nothing was changed.")
        else:
            messages.success(request, "The stock of the lot was updated.")
        return redirect("web:manage_lot", lot_id=lot.pk)
    return lot_page(request, lot, RecallForm(), form, status=400)


@login_required
def open_lot_vial(request: HttpRequest, lot_id: int) -> HttpResponse:
    lot = access_lot(caller(request), lot_id, MANAGER)
    if request.method != "POST":
        return redirect("web:manage_lot", lot_id=lot.pk)
    try:
        with transaction.atomic():
            vial = stock.open_vial(lot, user=request.user)
            audit(
                clinic=lot.product.clinic,
                user=request.user,
                action=AuditEvent.Action.CREATE,
                obj=vial,
                via="web",
            )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{vial.label} is open.")
    return redirect("web:manage_lot", lot_id=lot.pk)


@login_required
def close_lot_vial(request: HttpRequest, vial_id: int) -> HttpResponse:
    vial = access_vial(caller(request), vial_id, MANAGER)
    form = CloseVialForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            with transaction.atomic():
                stock.close_vial(
                    vial,
                    form.cleaned_data["reason"],
                    note=form.cleaned_data["note"],
                    user=request.user,
                )
                audit(
                    clinic=vial.lot.product.clinic,
                    user=request.user,
                    action=AuditEvent.Action.UPDATE,
                    obj=vial,
                    via="web",
                    closed=form.cleaned_data["reason"],
                )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, f"{vial.label} is closed.")
    elif request.method == "POST":
        messages.error(request, " ".join(str(e) for errs in form.errors.values() for e in errs))
    return redirect("web:manage_lot", lot_id=vial.lot_id)


# The stock of every product and its value at cost.

STOCK_CSV_HEADER = [
    "product",
    "supplier",
    "unopened_vials",
    "ml_in_open_vials",
    "value_at_cost",
    "currency",
    "reorder_at_vials",
    "reorder_now",
    "lots_without_cost",
]


@login_required
def stock_page(request: HttpRequest) -> HttpResponse:
    """Each product's unopened vials, mL in open vials, value at cost and reorder level, over
    its lots that may be used; `?format=csv` downloads the products' rows. Managers only: the
    costs are what the clinic paid."""
    who = caller(request)
    products = products_for(who, MANAGER)
    clinic = who.clinic
    found = stock.value(clinic, products, timezone.now())
    if request.GET.get("format") == "csv":
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="stock.csv"'
        writer = csv.writer(response)
        writer.writerow(STOCK_CSV_HEADER)
        for row in found.products:
            writer.writerow(
                [
                    _cell(row.product.name),
                    _cell(row.product.supplier),
                    row.unopened,
                    row.open_ml,
                    money.rounded(row.value, found.currency),
                    found.currency,
                    row.product.reorder_vials,
                    "yes" if row.low else "no",
                    len(row.uncosted),
                ]
            )
        return response
    return render(
        request,
        "web/manage/stock.html",
        {"page": "formulary", "stock": found, "today": clinic.local(timezone.now()).date()},
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
    "vial",
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
                    e["vial"] or "",
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


# The clinic's settings and invitations (the rest of the staff pages: web/staff.py).


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
                    **_audited(changed),
                )
        messages.success(request, "Clinic details saved." if changed else "Nothing changed.")
        return redirect("web:manage_clinic")
    return render(request, "web/manage/clinic.html", {"page": "setup", "form": form})


def _audited(changed: dict[str, Any]) -> dict[str, Any]:
    """The changed settings as the audit's JSON holds them: quiet hours as "20:00"."""
    return {k: f"{v:%H:%M}" if isinstance(v, dt.time) else v for k, v in changed.items()}


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
