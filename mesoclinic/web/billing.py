"""The money pages: a patient's account (balance, invoices, ledger) where the front desk issues
an invoice from the price list; an invoice, where a payment is taken and a manager credits or
refunds; the manager's price list, daily close and balances outstanding (with CSV). Every
object comes through the access layer; a wrong role is 403 and another clinic's object 404."""

from __future__ import annotations

import csv
import datetime as dt
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from mesoclinic.access import (
    MANAGE,
    MONEY,
    access_invoice,
    access_patient,
    access_payment,
    access_price,
    audit_list,
    prices_for,
)
from mesoclinic.accounts.auditlog import safe_cell
from mesoclinic.accounts.models import AuditEvent, audit
from mesoclinic.billing import actions, fees, money, packages, quotes, reports
from mesoclinic.billing.models import Invoice, LedgerEntry, Payment, PriceItem
from mesoclinic.billing.policy import policy_for
from mesoclinic.lib import limits
from mesoclinic.web.context import caller
from mesoclinic.web.documents import invoice_content

LINES = 4


class InvoiceForm(forms.Form):
    """Up to four lines from the price list, each with its quantity."""

    note = forms.CharField(label="Note on the invoice", max_length=limits.NOTES, required=False)

    def __init__(self, *args: Any, prices: list[PriceItem], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = [("", "None")] + [
            (str(p.pk), f"{p.name} · {money.words(p.amount, p.clinic.currency)}") for p in prices
        ]
        self.prices = {str(p.pk): p for p in prices}
        for n in range(LINES):
            self.fields[f"item_{n}"] = forms.ChoiceField(
                label=f"Line {n + 1}", choices=choices, required=n == 0
            )
            self.fields[f"quantity_{n}"] = forms.IntegerField(
                label=f"Quantity, line {n + 1}", min_value=1, max_value=1000, initial=1
            )

    def lines(self) -> list[actions.LineInput]:
        return [
            actions.LineInput.of(self.prices[chosen], self.cleaned_data[f"quantity_{n}"])
            for n in range(LINES)
            if (chosen := self.cleaned_data.get(f"item_{n}"))
        ]


class PackageForm(forms.Form):
    """A course sold as a package of sessions at one price, tax included."""

    course = forms.ChoiceField(label="Course")
    sessions = forms.IntegerField(label="Sessions in the package", min_value=1, max_value=100)
    price = forms.DecimalField(
        label="Package price",
        min_value=0,
        max_digits=14,
        decimal_places=3,
        help_text="For all its sessions, tax included.",
    )

    def __init__(self, *args: Any, courses: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.courses = {str(c.pk): c for c in courses}
        field = self.fields["course"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [
            (str(c.pk), f"{c.protocol.name}, {c.planned_sessions} sessions planned")
            for c in courses
        ]
        if courses and not self.is_bound:
            self.fields["sessions"].initial = courses[0].planned_sessions


class PaymentForm(forms.Form):
    amount = forms.DecimalField(min_value=0, max_digits=14, decimal_places=3)
    # A card paid online is recorded from the provider's notice, never by hand.
    method = forms.ChoiceField(
        label="How the patient paid",
        choices=[c for c in Payment.Method.choices if c[0] != Payment.Method.ONLINE_CARD],
    )
    reference = forms.CharField(
        max_length=100,
        required=False,
        help_text="The card terminal's or the bank's reference; not needed for cash.",
    )


class CreditForm(forms.Form):
    amount = forms.DecimalField(min_value=0, max_digits=14, decimal_places=3)
    reason = forms.CharField(max_length=limits.REASON, widget=forms.Textarea(attrs={"rows": 2}))


class PriceForm(forms.ModelForm):
    class Meta:
        model = PriceItem
        fields = ["kind", "name", "amount", "tax_rate", "active"]
        labels = {"kind": "What it is", "amount": "Price before tax", "tax_rate": "Tax rate (%)"}

    def clean_name(self) -> str:
        name = str(self.cleaned_data["name"]).strip()
        taken = PriceItem.objects.filter(clinic=self.instance.clinic, name__iexact=name)
        if taken.exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError("The price list already has an item with this name.")
        return name


def _apply(form: forms.Form, exc: ValidationError) -> None:
    """An action's refusal, on the form's field it names (or the whole form)."""
    if hasattr(exc, "error_dict"):
        for field, errors in exc.error_dict.items():
            form.add_error(
                field if field in form.fields else None, [str(e.message) for e in errors]
            )
    else:
        form.add_error(None, exc.messages)


def _open_courses(patient: Any) -> list[Any]:
    return list(
        patient.courses.exclude(status__in=["stopped", "completed"])
        .select_related("protocol", "clinic", "patient")
        .order_by("-created_at")
    )


@login_required
def sell_package(request: HttpRequest, patient_id: int) -> HttpResponse:
    who = caller(request)
    patient = access_patient(who, patient_id, MONEY)
    form = PackageForm(request.POST, courses=_open_courses(patient))
    if request.method == "POST" and form.is_valid():
        try:
            package = packages.sell(
                form.courses[form.cleaned_data["course"]],
                form.cleaned_data["sessions"],
                form.cleaned_data["price"],
                user=request.user,
            )
        except ValidationError as exc:
            _apply(form, exc)
        else:
            messages.success(
                request,
                f"A package of {package.sessions} sessions was sold with invoice "
                f"{package.invoice.number}.",
            )
            return redirect("web:invoice", invoice_id=package.invoice_id)
    return account(request, patient_id, package_form=form)


@login_required
def account(
    request: HttpRequest,
    patient_id: int,
    package_form: PackageForm | None = None,
    quote_form: Any = None,
) -> HttpResponse:
    from mesoclinic.web.quotes import quote_form as new_quote_form

    who = caller(request)
    patient = access_patient(who, patient_id, MONEY, view=True)
    prices = list(prices_for(who).filter(active=True).select_related("clinic"))
    other_form = package_form is not None or quote_form is not None
    posted = request.POST if request.method == "POST" and not other_form else None
    form = InvoiceForm(posted, prices=prices)
    if posted is not None and form.is_valid():
        try:
            invoice = actions.issue_invoice(
                patient, form.lines(), user=request.user, note=form.cleaned_data["note"]
            )
        except ValidationError as exc:
            _apply(form, exc)
        else:
            messages.success(request, f"Invoice {invoice.number} was issued.")
            return redirect("web:invoice", invoice_id=invoice.pk)
    invoices = list(
        Invoice.objects.filter(patient=patient).select_related("credits").order_by("-number")
    )
    for invoice in invoices:
        invoice.figures = actions.amounts(invoice) if invoice.kind == "invoice" else None  # type: ignore[attr-defined]
    package_states = packages.states(patient=patient)
    return render(
        request,
        "web/billing/account.html",
        {
            "patient": patient,
            "balance": actions.balance(patient),
            "currency": patient.clinic.currency,
            "invoices": invoices,
            "ledger": LedgerEntry.objects.filter(patient=patient).order_by("-at", "-id")[:50],
            "form": form,
            "prices": prices,
            "packages": package_states,
            "package_form": package_form or PackageForm(courses=_open_courses(patient)),
            "quotes": patient.quotes.select_related("course__protocol", "package__invoice"),
            "quote_form": quote_form or new_quote_form(patient, who),
            "fees": fees.pending(patient),
            "acceptance": patient.policy_acceptances.first(),
        },
        status=400 if request.method == "POST" else 200,
    )


def _invoice_page(
    request: HttpRequest,
    invoice: Invoice,
    pay: PaymentForm | None = None,
    credit: CreditForm | None = None,
    status: int = 200,
) -> HttpResponse:
    figures = actions.amounts(invoice) if invoice.kind == Invoice.Kind.INVOICE else None
    payments = list(invoice.payments.select_related("by", "refund_of").order_by("at", "id"))
    package = getattr(invoice, "package", None) if figures else None
    quote = getattr(package, "quote", None) if package else None
    deposit_due = quotes.deposit_due(quote) if quote else None
    return render(
        request,
        "web/billing/invoice.html",
        {
            "invoice": invoice,
            "figures": figures,
            "payments": payments,
            "credit_notes": invoice.credit_notes.order_by("number"),
            "pay_form": pay or PaymentForm(initial={"amount": figures["due"] if figures else 0}),
            "credit_form": credit or CreditForm(),
            "currency": invoice.currency,
            "quote": quote,
            "deposit_due": deposit_due,
            "online": policy_for(invoice.clinic).online,
            "waiting": invoice.checkouts.filter(status="open").exists() if figures else False,
        },
        status=status,
    )


@login_required
def invoice_detail(request: HttpRequest, invoice_id: int) -> HttpResponse:
    invoice = access_invoice(caller(request), invoice_id, MONEY, view=True)
    return _invoice_page(request, invoice)


@login_required
def take_payment(request: HttpRequest, invoice_id: int) -> HttpResponse:
    invoice = access_invoice(caller(request), invoice_id, MONEY)
    form = PaymentForm(request.POST)
    if request.method == "POST" and form.is_valid():
        try:
            actions.record_payment(
                invoice,
                form.cleaned_data["amount"],
                form.cleaned_data["method"],
                user=request.user,
                reference=form.cleaned_data["reference"],
            )
        except ValidationError as exc:
            _apply(form, exc)
        else:
            amount = money.words(form.cleaned_data["amount"], invoice.currency)
            messages.success(request, f"A payment of {amount} was recorded.")
            return redirect("web:invoice", invoice_id=invoice.pk)
    return _invoice_page(request, invoice, pay=form, status=400)


@login_required
def credit_note(request: HttpRequest, invoice_id: int) -> HttpResponse:
    invoice = access_invoice(caller(request), invoice_id, MANAGE)
    form = CreditForm(request.POST)
    if request.method == "POST" and form.is_valid():
        try:
            note = actions.issue_credit_note(
                invoice, form.cleaned_data["amount"], form.cleaned_data["reason"], user=request.user
            )
        except ValidationError as exc:
            _apply(form, exc)
        else:
            messages.success(request, f"Credit note {note.number} was issued.")
            return redirect("web:invoice", invoice_id=invoice.pk)
    return _invoice_page(request, invoice, credit=form, status=400)


@login_required
def refund(request: HttpRequest, payment_id: int) -> HttpResponse:
    payment = access_payment(caller(request), payment_id, MANAGE)
    form = CreditForm(request.POST)
    if request.method == "POST" and form.is_valid():
        try:
            actions.refund(
                payment, form.cleaned_data["amount"], form.cleaned_data["reason"], user=request.user
            )
        except ValidationError as exc:
            _apply(form, exc)
        else:
            amount = money.words(form.cleaned_data["amount"], payment.currency)
            messages.success(request, f"A refund of {amount} was recorded.")
            return redirect("web:invoice", invoice_id=payment.invoice_id)
    messages.error(request, " ".join(str(e) for errs in form.errors.values() for e in errs))
    return redirect("web:invoice", invoice_id=payment.invoice_id)


@login_required
def email_invoice(request: HttpRequest, invoice_id: int) -> HttpResponse:
    """Email the invoice to the patient as a PDF, and record that it was sent."""
    invoice = access_invoice(caller(request), invoice_id, MONEY)
    patient = invoice.patient
    if request.method != "POST":
        return redirect("web:invoice", invoice_id=invoice.pk)
    if not patient.email:
        messages.error(request, "The patient has no email address on file.")
        return redirect("web:invoice", invoice_id=invoice.pk)
    title = f"{invoice.get_kind_display()} {invoice.number}"
    message = EmailMessage(
        f"{title} · {invoice.clinic.name}",
        f"Dear {patient.first_name},\n\nPlease find attached {title.lower()} from "
        f"{invoice.clinic.name}, for {money.words(invoice.total, invoice.currency)}.\n\n"
        f"{invoice.clinic.name}\n{invoice.clinic.phone}".rstrip(),
        to=[patient.email],
    )
    message.attach(
        f"{invoice.kind.replace('_', '-')}-{invoice.number}.pdf",
        invoice_content(invoice),
        "application/pdf",
    )
    message.send()
    audit(
        clinic=invoice.clinic,
        user=request.user,
        action=AuditEvent.Action.EXPORT,
        obj=invoice,
        patient_id=patient.pk,
        via="web",
        sent_to=patient.email,
    )
    messages.success(request, f"{title} was emailed to {patient.email}.")
    return redirect("web:invoice", invoice_id=invoice.pk)


# The manager's pages.


@login_required
def price_list(request: HttpRequest) -> HttpResponse:
    who = caller(request)
    clinic = who.require(MANAGE).clinic
    form = PriceForm(request.POST or None, instance=PriceItem(clinic=clinic))
    if request.method == "POST" and form.is_valid():
        item = form.save()
        audit(
            clinic=clinic, user=request.user, action=AuditEvent.Action.CREATE, obj=item, via="web"
        )
        messages.success(request, f"{item.name} was added to the price list.")
        return redirect("web:price_list")
    return render(
        request,
        "web/billing/prices.html",
        {"page": "prices", "prices": prices_for(who, MANAGE), "form": form},
        status=400 if request.method == "POST" else 200,
    )


@login_required
def edit_price(request: HttpRequest, price_id: int) -> HttpResponse:
    item = access_price(caller(request), price_id, MANAGE)
    form = PriceForm(request.POST or None, instance=item)
    if request.method == "POST" and form.is_valid():
        form.save()
        audit(
            clinic=item.clinic,
            user=request.user,
            action=AuditEvent.Action.UPDATE,
            obj=item,
            via="web",
            amount=str(item.amount),
            tax_rate=str(item.tax_rate),
            active=item.active,
        )
        messages.success(
            request, f"{item.name} was saved. Invoices already issued keep their price."
        )
        return redirect("web:price_list")
    return render(
        request, "web/billing/price_form.html", {"page": "prices", "form": form, "item": item}
    )


def _day(request: HttpRequest, tz: Any) -> dt.date:
    try:
        return dt.date.fromisoformat(request.GET.get("date", ""))
    except ValueError:
        return timezone.localdate(timezone.now(), tz)


@login_required
def daily_close(request: HttpRequest) -> HttpResponse:
    who = caller(request)
    clinic = who.require(MANAGE).clinic
    found = reports.daily_close(clinic, _day(request, clinic.tz))
    if request.GET.get("format") == "csv":
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="daily-close-{found.day}.csv"'
        writer = csv.writer(response)
        writer.writerow(["date", "method", "payments", "taken", "refunded", "net", "currency"])
        for m in found.methods:
            writer.writerow(
                [found.day, m.method, m.payments, m.taken, m.refunded, m.net, found.currency]
            )
        return response
    owed_sessions, owed_value = packages.liability(clinic)
    return render(
        request,
        "web/billing/daily_close.html",
        {
            "page": "money",
            "close": found,
            "previous": found.day - dt.timedelta(days=1),
            "next": found.day + dt.timedelta(days=1),
            "owed_sessions": owed_sessions,
            "owed_value": owed_value,
        },
    )


@login_required
def outstanding(request: HttpRequest) -> HttpResponse:
    who = caller(request)
    clinic = who.require(MANAGE).clinic
    rows = reports.outstanding(clinic)
    # The list names patients and what they owe: reading it is audited like a list of charts.
    audit_list(who, "balances outstanding", [r.patient_id for r in rows])
    if request.GET.get("format") == "csv":
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="balances-outstanding.csv"'
        writer = csv.writer(response)
        writer.writerow(["patient_id", "name", "balance", "currency"])
        for r in rows:
            writer.writerow([r.patient_id, safe_cell(r.name), r.balance, clinic.currency])
        return response
    return render(
        request,
        "web/billing/outstanding.html",
        {"page": "money", "rows": rows, "currency": clinic.currency},
    )
