"""The money pages beyond the invoice: quotes the patient accepts by signature, the deposit and
any amount due paid online (Stripe Checkout, and its webhook), the late-cancellation and
no-show fees, settling a stopped course's package, and the manager's payment policy. Every
object comes through the access layer."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from mesoclinic.access import (
    MANAGE,
    MONEY,
    access_appointment,
    access_invoice,
    access_package,
    access_patient,
    access_quote,
    prices_for,
)
from mesoclinic.accounts.models import AuditEvent, Clinic, audit
from mesoclinic.billing import fees, money, online, packages, quotes
from mesoclinic.billing.models import OnlineCheckout, PaymentPolicy, PriceItem, Quote
from mesoclinic.billing.policy import policy_for, terms_text
from mesoclinic.lib import limits
from mesoclinic.web.billing import _apply, _open_courses
from mesoclinic.web.chart import reading_paragraphs
from mesoclinic.web.context import caller

log = logging.getLogger(__name__)


class QuoteForm(forms.Form):
    course = forms.ChoiceField(label="Course")
    kind = forms.ChoiceField(
        label="Priced as",
        choices=Quote.Kind.choices,
        widget=forms.RadioSelect,
        initial=Quote.Kind.PACKAGE,
    )
    sessions = forms.IntegerField(label="Number of sessions", min_value=1, max_value=100)
    price = forms.ChoiceField(
        label="Price of one session", required=False, help_text="For the planned sessions."
    )
    package_price = forms.DecimalField(
        label="Package price",
        required=False,
        min_value=0,
        max_digits=14,
        decimal_places=3,
        help_text="For a package: all its sessions, tax included.",
    )
    discount_percent = forms.DecimalField(
        label="Discount (%)", min_value=0, max_value=100, decimal_places=2, initial=0
    )

    def __init__(
        self, *args: Any, courses: list[Any], prices: list[PriceItem], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.courses = {str(c.pk): c for c in courses}
        self.prices = {str(p.pk): p for p in prices}
        course = self.fields["course"]
        price = self.fields["price"]
        assert isinstance(course, forms.ChoiceField) and isinstance(price, forms.ChoiceField)
        course.choices = [
            (str(c.pk), f"{c.protocol.name}, {c.planned_sessions} sessions planned")
            for c in courses
        ]
        price.choices = [("", "None")] + [
            (str(p.pk), f"{p.name} · {money.words(p.amount, p.clinic.currency)}") for p in prices
        ]
        if courses and not self.is_bound:
            self.fields["sessions"].initial = courses[0].planned_sessions

    def issue(self, user: Any) -> Quote:
        data = self.cleaned_data
        return quotes.issue(
            self.courses[data["course"]],
            kind=data["kind"],
            user=user,
            sessions=data["sessions"],
            item=self.prices.get(data["price"] or ""),
            package_price=data["package_price"],
            discount_percent=data["discount_percent"],
        )


class SignQuoteForm(forms.Form):
    signed_name = forms.CharField(label="Patient's full name, typed", max_length=200)
    signature = forms.CharField(
        max_length=limits.SIGNATURE, widget=forms.HiddenInput, required=False
    )
    text_sha256 = forms.CharField(max_length=64, widget=forms.HiddenInput)


class PolicyForm(forms.ModelForm):
    # The model keeps any length; the form bounds its text, as every form does.
    insurance_notice = forms.CharField(
        label="Insurance notice on every quote",
        max_length=limits.REASON,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    extra_terms = forms.CharField(
        label="The clinic's own terms, added after these",
        max_length=limits.NOTES,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
    )

    class Meta:
        model = PaymentPolicy
        fields = [
            "deposit_percent",
            "quote_valid_days",
            "late_cancel_hours",
            "late_cancel_fee",
            "no_show_fee",
            "package_refund",
            "insurance_notice",
            "extra_terms",
            "stripe_secret_key",
            "stripe_webhook_secret",
        ]
        labels = {
            "deposit_percent": "Deposit asked with a quote (% of its total)",
            "quote_valid_days": "Days a quote stays valid",
            "late_cancel_hours": "A cancellation is late less than this many hours before a visit",
            "late_cancel_fee": "Late-cancellation fee",
            "no_show_fee": "No-show fee",
            "package_refund": "When a prepaid course stops early, the patient gets back",
            "stripe_secret_key": "Stripe secret key",
            "stripe_webhook_secret": "Stripe webhook signing secret",
        }
        help_texts = {
            "stripe_secret_key": "Leave both Stripe fields empty to take no card payment online.",
        }
        widgets = {
            "stripe_secret_key": forms.PasswordInput(render_value=True),
            "stripe_webhook_secret": forms.PasswordInput(render_value=True),
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if bool(data.get("stripe_secret_key")) != bool(data.get("stripe_webhook_secret")):
            self.add_error(
                "stripe_webhook_secret",
                "Give both the secret key and the webhook signing secret, or neither.",
            )
        return data


def quote_form(patient: Any, who: Any, data: Any = None) -> QuoteForm:
    prices = list(prices_for(who).filter(active=True, kind="session").select_related("clinic"))
    # Prefixed: the account page also has the invoice and package forms, with fields of the
    # same names, and each label must reach its own field.
    return QuoteForm(data, courses=_open_courses(patient), prices=prices, prefix="quote")


def _quote_page(
    request: HttpRequest, quote: Quote, form: SignQuoteForm | None = None, status: int = 200
) -> HttpResponse:
    why = quotes.refusal(quote, quote.clinic.local(timezone.now()).date())
    return render(
        request,
        "web/billing/quote.html",
        {
            "quote": quote,
            "currency": quote.currency,
            "paragraphs": reading_paragraphs(quote.text),
            "refusal": why,
            "form": form or SignQuoteForm(initial={"text_sha256": quote.text_sha256}),
            "deposit_due": quotes.deposit_due(quote),
            "online": policy_for(quote.clinic).online,
        },
        status=status,
    )


@login_required
def new_quote(request: HttpRequest, patient_id: int) -> HttpResponse:
    who = caller(request)
    patient = access_patient(who, patient_id, MONEY)
    form = quote_form(patient, who, request.POST)
    if request.method == "POST" and form.is_valid():
        try:
            quote = form.issue(request.user)
        except ValidationError as exc:
            _apply(form, exc)
        else:
            messages.success(request, "The quote is ready for the patient to read and sign.")
            return redirect("web:quote", quote_id=quote.pk)
    from mesoclinic.web.billing import account

    return account(request, patient_id, quote_form=form)


@login_required
def quote_detail(request: HttpRequest, quote_id: int) -> HttpResponse:
    """The quote as the patient reads it; signing it here is the patient accepting it in the
    clinic, witnessed by the signed-in staff member."""
    who = caller(request)
    quote = access_quote(who, quote_id, MONEY, view=request.method == "GET")
    if request.method != "POST":
        return _quote_page(request, quote)
    form = SignQuoteForm(request.POST)
    if form.is_valid():
        try:
            quote = quotes.accept(
                quote,
                signed_name=form.cleaned_data["signed_name"],
                signature=form.cleaned_data["signature"],
                text_sha256=form.cleaned_data["text_sha256"],
                user=request.user,
                accepted_in="clinic",
            )
        except ValidationError as exc:
            _apply(form, exc)
        else:
            messages.success(
                request,
                f"The quote is accepted, and invoice {quote.package.invoice.number} is issued "  # type: ignore[union-attr]
                "for the course.",
            )
            return redirect("web:quote", quote_id=quote.pk)
    return _quote_page(request, quote, form, status=400)


@login_required
@require_POST
def withdraw_quote(request: HttpRequest, quote_id: int) -> HttpResponse:
    quote = access_quote(caller(request), quote_id, MONEY)
    try:
        quotes.withdraw(quote, user=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, "The quote is withdrawn.")
    return redirect("web:quote", quote_id=quote.pk)


# Paying online.


def begin_checkout(
    request: HttpRequest, invoice: Any, amount: Decimal, *, back_to: str, cancel_to: str
) -> OnlineCheckout:
    """A card payment at the provider for `amount` of the invoice; the provider sends the
    browser back to `back_to` with the session's id, or to `cancel_to`."""
    back = request.build_absolute_uri(back_to)
    return online.start(
        invoice,
        amount,
        user=request.user,
        success_url=f"{back}?session={{CHECKOUT_SESSION_ID}}",
        cancel_url=request.build_absolute_uri(cancel_to),
    )


@login_required
@require_POST
def pay_online(request: HttpRequest, invoice_id: int) -> HttpResponse:
    invoice = access_invoice(caller(request), invoice_id, MONEY)
    try:
        amount = Decimal(request.POST.get("amount", ""))
    except ArithmeticError:
        messages.error(request, "Give the amount to pay online as a number.")
        return redirect("web:invoice", invoice_id=invoice.pk)
    try:
        checkout = begin_checkout(
            request,
            invoice,
            amount,
            back_to=reverse("web:checkout_return"),
            cancel_to=reverse("web:invoice", args=[invoice.pk]),
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("web:invoice", invoice_id=invoice.pk)
    return HttpResponseRedirect(checkout.url)


def returned_checkout(request: HttpRequest, clinic_id: int) -> OnlineCheckout | None:
    """The checkout the provider sent the browser back from, confirmed with the provider."""
    found = (
        OnlineCheckout.objects.select_related("clinic", "invoice", "payment")
        .filter(provider_id=request.GET.get("session", ""), clinic_id=clinic_id)
        .first()
    )
    if found is not None and found.payment_id is None:
        online.confirm(found)
        found.refresh_from_db()
    return found


@login_required
def checkout_return(request: HttpRequest) -> HttpResponse:
    who = caller(request)
    clinic = who.require(MONEY).clinic
    found = returned_checkout(request, clinic.pk)
    if found is None:
        messages.error(request, "No online payment of this clinic matches this page.")
        return redirect("web:today")
    if found.payment_id:
        messages.success(
            request, f"The card payment of {money.words(found.amount, found.currency)} is recorded."
        )
    else:
        messages.info(request, "The card provider has not yet confirmed the payment.")
    return redirect("web:invoice", invoice_id=found.invoice_id)


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest, clinic_id: int) -> HttpResponse:
    """Stripe's notices for one clinic, verified by the clinic's webhook signing secret. A
    notice that is not from Stripe is refused with 403, as the text messages' provider's
    notices are, and changes nothing."""
    clinic = get_object_or_404(Clinic, pk=clinic_id)
    try:
        outcome = online.handle_webhook(
            clinic, request.body, request.headers.get("Stripe-Signature", "")
        )
    except online.WebhookRefused as exc:
        log.warning("webhook for clinic %s refused: %s", clinic_id, exc)
        return JsonResponse(
            {
                "type": "about:blank",
                "title": "Forbidden",
                "status": 403,
                "detail": "The notice's signature does not match this clinic's signing secret.",
            },
            status=403,
            content_type="application/problem+json",
        )
    return JsonResponse({"received": True, "outcome": outcome})


# Fees and packages.


@login_required
@require_POST
def charge_fee(request: HttpRequest, appointment_id: int) -> HttpResponse:
    appointment = access_appointment(caller(request), appointment_id, MONEY)
    try:
        invoice = fees.charge(appointment, user=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("web:account", patient_id=appointment.patient_id)
    messages.success(request, f"Invoice {invoice.number} is issued for the fee.")
    return redirect("web:invoice", invoice_id=invoice.pk)


@login_required
@require_POST
def settle_package(request: HttpRequest, package_id: int) -> HttpResponse:
    package = access_package(caller(request), package_id, MANAGE)
    try:
        rest = packages.settle(package, user=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(
            request,
            f"The package is settled: {money.words(rest, package.currency)} is given back."
            if rest
            else "The package is settled: by the clinic's policy nothing is given back.",
        )
    return redirect("web:account", patient_id=package.patient_id)


@login_required
def payment_policy(request: HttpRequest) -> HttpResponse:
    who = caller(request)
    clinic = who.require(MANAGE).clinic
    policy = policy_for(clinic)
    form = PolicyForm(request.POST or None, instance=policy)
    if request.method == "POST" and form.is_valid():
        saved = form.save()
        audit(
            clinic=clinic,
            user=request.user,
            action=AuditEvent.Action.UPDATE,
            obj=saved,
            via="web",
            fields=sorted(form.changed_data),
        )
        messages.success(request, "The payment policy is saved. Quotes issued from now show it.")
        return redirect("web:payment_policy")
    return render(
        request,
        "web/billing/payment_policy.html",
        {
            "page": "money",
            "form": form,
            "terms": terms_text(policy),
            "webhook_url": request.build_absolute_uri(
                reverse("web:stripe_webhook", args=[clinic.pk])
            ),
        },
        status=400 if form.errors else 200,
    )
