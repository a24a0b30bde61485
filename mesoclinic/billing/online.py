"""Online card payment through Stripe Checkout, with Stripe's official library.

- `start` creates a Checkout Session for an amount due on an invoice and keeps it
  (OnlineCheckout); the patient pays on Stripe's page.
- Stripe then posts `checkout.session.completed` to the clinic's webhook. `handle_webhook`
  verifies its signature with the clinic's webhook secret, keeps the event by its id (a
  replayed event changes nothing), and records the payment once, by the PaymentIntent's id
  (a unique constraint on online payments' references backs this under concurrent delivery).
- `confirm` asks Stripe for the session when the patient comes back, so a payment shows at
  once even before its webhook arrives; it records through the same path.
- `refund_at_provider` refunds a card payment at Stripe before the refund is written here.

Stripe cannot be reached from the test machines: the tests run a server on loopback that
answers as Stripe's documented API does (tests/fake_stripe.py), through STRIPE_API_BASE."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import stripe
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent, Clinic, audit
from mesoclinic.billing import actions, money
from mesoclinic.billing.models import Invoice, OnlineCheckout, Payment, ProviderEvent
from mesoclinic.billing.policy import policy_for

log = logging.getLogger(__name__)


PAID_EVENTS = ("checkout.session.completed", "checkout.session.async_payment_succeeded")


class WebhookRefused(Exception):
    """A webhook that is not from the provider (a bad signature) or not for a set-up clinic."""


def _client(clinic: Clinic) -> stripe.StripeClient:
    policy = policy_for(clinic)
    if not policy.online:
        raise ValidationError({"amount": "this clinic does not take card payments online."})
    return stripe.StripeClient(
        policy.stripe_secret_key,
        base_addresses={"api": settings.STRIPE_API_BASE},
        max_network_retries=1,
    )


def minor_units(amount: Decimal, currency: str) -> int:
    """An amount in the currency's smallest unit, as Stripe takes it (cents, or yen)."""
    return int(money.rounded(amount, currency).scaleb(money.places(currency)))


def from_minor(units: int, currency: str) -> Decimal:
    return money.rounded(Decimal(units).scaleb(-money.places(currency)), currency)


def _provider_error(exc: stripe.StripeError) -> str:
    return exc.user_message or "the card provider could not be reached; try again later."


def start(
    invoice: Invoice, amount: Decimal, *, user: Any, success_url: str, cancel_url: str
) -> OnlineCheckout:
    """A Checkout Session for `amount` of what is due on `invoice`."""
    if invoice.kind != Invoice.Kind.INVOICE:
        raise ValidationError({"amount": "a payment is against an invoice, not a credit note."})
    currency = invoice.currency
    amount = money.rounded(amount, currency)
    due = actions.amounts(invoice)["due"]
    if amount <= 0:
        raise ValidationError({"amount": "must be more than 0."})
    if amount > due:
        raise ValidationError({"amount": f"is more than the {money.words(due, currency)} due."})
    client = _client(invoice.clinic)
    metadata = {"invoice": str(invoice.pk), "clinic": str(invoice.clinic_id)}
    params: dict[str, Any] = {
        "mode": "payment",
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": currency.lower(),
                    "unit_amount": minor_units(amount, currency),
                    "product_data": {
                        "name": f"Invoice {invoice.number} from {invoice.clinic.name}"
                    },
                },
            }
        ],
        "success_url": success_url,
        "cancel_url": cancel_url,
        "client_reference_id": str(invoice.pk),
        "metadata": metadata,
        "payment_intent_data": {"metadata": metadata},
    }
    if invoice.patient.email:
        params["customer_email"] = invoice.patient.email
    try:
        session = client.v1.checkout.sessions.create(params=params)  # type: ignore[arg-type]
    except stripe.StripeError as exc:
        log.warning("checkout for invoice %s refused: %s", invoice.pk, exc)
        raise ValidationError({"amount": _provider_error(exc)}) from exc
    checkout = OnlineCheckout.objects.create(
        clinic=invoice.clinic,
        patient=invoice.patient,
        invoice=invoice,
        amount=amount,
        currency=currency,
        provider_id=session.id,
        url=session.url or "",
        created_at=timezone.now(),
        created_by=user,
    )
    audit(
        clinic=invoice.clinic,
        user=user,
        action=AuditEvent.Action.CREATE,
        obj=checkout,
        patient_id=invoice.patient_id,
        via="web",
        invoice=invoice.number,
        amount=str(amount),
    )
    return checkout


def _record(checkout_id: str, clinic: Clinic, session: Any) -> Payment | None:
    """Record a paid Checkout Session's payment, once (in the caller's transaction)."""
    if hasattr(session, "to_dict"):
        session = session.to_dict()
    checkout = (
        OnlineCheckout.objects.select_for_update(of=("self",))
        .select_related("invoice__clinic", "invoice__patient", "created_by")
        .filter(provider_id=checkout_id, clinic=clinic)
        .first()
    )
    if checkout is None:
        log.warning("a paid checkout %s is not this clinic's", checkout_id)
        return None
    if checkout.payment_id is not None:
        return checkout.payment
    if session.get("payment_status") != "paid":
        return None
    paid = from_minor(int(session["amount_total"]), checkout.currency)
    intent = session.get("payment_intent")
    reference = intent if isinstance(intent, str) else (intent or {}).get("id", checkout_id)
    payment = actions.record_payment(
        checkout.invoice,
        paid,
        Payment.Method.ONLINE_CARD,
        user=checkout.created_by,
        reference=reference,
        via="provider",
        online=True,
    )
    OnlineCheckout.objects.filter(pk=checkout.pk).update(
        status=OnlineCheckout.Status.PAID, payment=payment
    )
    return payment


def handle_webhook(clinic: Clinic, payload: bytes, signature: str) -> str:
    """Verify and apply one webhook from Stripe. Returns what happened, in a word."""
    policy = policy_for(clinic)
    if not policy.online:
        raise WebhookRefused("this clinic takes no card payments online")
    try:
        event = stripe.Webhook.construct_event(payload, signature, policy.stripe_webhook_secret)
    except (ValueError, stripe.SignatureVerificationError) as exc:
        raise WebhookRefused(str(exc)) from exc
    try:
        with transaction.atomic():
            ProviderEvent.objects.create(
                clinic=clinic, event_id=event.id, type=event.type, received_at=timezone.now()
            )
            session = event.data.object
            if event.type in (
                "checkout.session.completed",
                "checkout.session.async_payment_succeeded",
            ):
                payment = _record(session["id"], clinic, session)
                return "recorded" if payment else "ignored"
            if event.type == "checkout.session.expired":
                OnlineCheckout.objects.filter(
                    provider_id=session["id"], clinic=clinic, status=OnlineCheckout.Status.OPEN
                ).update(status=OnlineCheckout.Status.EXPIRED)
                return "expired"
            return "ignored"
    except IntegrityError:
        # The event's id is already kept, or its payment already recorded: a replay.
        return "replayed"


def confirm(checkout: OnlineCheckout) -> Payment | None:
    """Ask Stripe whether the patient has paid, and record it if so (once)."""
    if checkout.payment_id is not None:
        return checkout.payment
    try:
        session = _client(checkout.clinic).v1.checkout.sessions.retrieve(checkout.provider_id)
    except (stripe.StripeError, ValidationError) as exc:
        log.warning("checkout %s could not be confirmed: %s", checkout.provider_id, exc)
        return None
    try:
        with transaction.atomic():
            return _record(checkout.provider_id, checkout.clinic, session)
    except IntegrityError:
        return Payment.objects.filter(checkout__pk=checkout.pk).first()


def refund_at_provider(payment: Payment, amount: Decimal) -> str:
    """Refund `amount` of an online card payment at Stripe; its refund's id."""
    try:
        refund = _client(payment.clinic).v1.refunds.create(
            params={
                "payment_intent": payment.reference,
                "amount": minor_units(amount, payment.currency),
            }
        )
    except stripe.StripeError as exc:
        log.warning("refund of payment %s refused: %s", payment.pk, exc)
        refused = f"the card provider refused: {_provider_error(exc)}"
        raise ValidationError({"amount": refused}) from exc
    return refund.id
