"""The patient's money in the portal: quotes to read and accept by signature, invoices with
what is due, and paying a deposit or a balance by card online (Stripe Checkout). Everything
comes through the access layer at the patient's own level."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.contrib import messages as flash
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST, require_safe

from mesoclinic.access import (
    OWN_MONEY,
    access_invoice,
    access_quote,
    audit_list,
    invoices_for,
    quotes_for,
)
from mesoclinic.billing import actions, money, quotes
from mesoclinic.billing.models import Invoice, Quote
from mesoclinic.billing.policy import policy_for
from mesoclinic.portal.views import patient_caller, patient_page
from mesoclinic.web import documents
from mesoclinic.web.chart import reading_paragraphs
from mesoclinic.web.quotes import begin_checkout, returned_checkout


class AcceptQuoteForm(forms.Form):
    read_to_end = forms.BooleanField(
        label="I have read the whole quote above, with its payment terms.",
        error_messages={"required": "Read the quote to its end, then tick this box."},
    )
    signed_name = forms.CharField(
        label="Your full name, typed as your signature",
        max_length=200,
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
    )
    text_sha256 = forms.CharField(max_length=64, widget=forms.HiddenInput)


@patient_page
@require_safe
def payments(request: HttpRequest) -> HttpResponse:
    who = patient_caller(request)
    patient = who.patient
    assert patient is not None
    found = list(
        invoices_for(who, OWN_MONEY)
        .filter(kind=Invoice.Kind.INVOICE)
        .select_related("package__quote")
        .order_by("-number")[:50]
    )
    for invoice in found:
        invoice.figures = actions.amounts(invoice)  # type: ignore[attr-defined]
    audit_list(who, "invoices", [patient.pk])
    today = patient.clinic.local(timezone.now()).date()
    waiting = [
        q
        for q in quotes_for(who, OWN_MONEY).filter(status=Quote.Status.ISSUED)
        if not quotes.refusal(q, today)
    ]
    return render(
        request,
        "portal/payments.html",
        {
            "page": "payments",
            "patient": patient,
            "clinic": patient.clinic,
            "currency": patient.clinic.currency,
            "invoices": found,
            "waiting": waiting,
            "accepted": quotes_for(who, OWN_MONEY).filter(status=Quote.Status.ACCEPTED),
            "online": policy_for(patient.clinic).online,
        },
    )


@patient_page
def quote(request: HttpRequest, quote_id: int) -> HttpResponse:
    who = patient_caller(request)
    found = access_quote(who, quote_id, OWN_MONEY, view=request.method == "GET")
    form = AcceptQuoteForm(request.POST or None, initial={"text_sha256": found.text_sha256})
    if request.method == "POST" and form.is_valid():
        try:
            found = quotes.accept(
                found,
                signed_name=form.cleaned_data["signed_name"],
                signature="",
                text_sha256=form.cleaned_data["text_sha256"],
                user=request.user,
                accepted_in="portal",
                via="portal",
            )
        except ValidationError as exc:
            form.add_error("signed_name", exc.messages)
        else:
            flash.success(request, "Thank you: you have accepted the quote.")
            return redirect("portal:quote", quote_id=found.pk)
    today = found.clinic.local(timezone.now()).date()
    return render(
        request,
        "portal/quote.html",
        {
            "page": "payments",
            "clinic": found.clinic,
            "quote": found,
            "currency": found.currency,
            "paragraphs": reading_paragraphs(found.text),
            "refusal": quotes.refusal(found, today),
            "form": form,
            "deposit_due": quotes.deposit_due(found),
            "online": policy_for(found.clinic).online,
        },
        status=400 if form.errors else 200,
    )


@patient_page
@require_safe
def quote_pdf(request: HttpRequest, quote_id: int) -> HttpResponse:
    found = access_quote(patient_caller(request), quote_id, OWN_MONEY)
    return documents.quote_document(request, found)


@patient_page
@require_POST
def pay(request: HttpRequest, invoice_id: int) -> HttpResponse:
    """Go to the card provider's page for what is due (or the deposit, when one is due)."""
    invoice = access_invoice(patient_caller(request), invoice_id, OWN_MONEY)
    quote = getattr(getattr(invoice, "package", None), "quote", None)
    due = actions.amounts(invoice)["due"]
    deposit = quotes.deposit_due(quote) if quote else Decimal("0")
    amount = deposit if request.POST.get("what") == "deposit" and deposit else due
    try:
        checkout = begin_checkout(
            request,
            invoice,
            amount,
            back_to=reverse("portal:paid"),
            cancel_to=reverse("portal:payments"),
        )
    except ValidationError as exc:
        flash.error(request, " ".join(exc.messages))
        return redirect("portal:payments")
    return HttpResponseRedirect(checkout.url)


@patient_page
@require_safe
def paid(request: HttpRequest) -> HttpResponse:
    who = patient_caller(request)
    assert who.patient is not None
    found = returned_checkout(request, who.patient.clinic_id)
    if found is None or found.patient_id != who.patient.pk:
        flash.error(request, "This payment is not one of yours.")
    elif found.payment_id:
        flash.success(
            request,
            f"Thank you: your card payment of {money.words(found.amount, found.currency)} "
            "is received.",
        )
    else:
        flash.info(
            request,
            "Your payment is being confirmed by the card provider. It shows here once it is.",
        )
    return redirect("portal:payments")
