"""Quotes accepted by signature, the payment policy, deposits, late-cancellation and no-show
fees, settling a stopped course's package, and card payments online through Stripe Checkout
(against a server on loopback that answers as Stripe's API does)."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent
from mesoclinic.billing import actions, fees, online, packages, quotes
from mesoclinic.billing.models import (
    FeeCharge,
    Invoice,
    OnlineCheckout,
    Package,
    Payment,
    PaymentPolicy,
    PolicyAcceptance,
    PriceItem,
    ProviderEvent,
    Quote,
)
from mesoclinic.billing.money import percent as money_percent
from mesoclinic.billing.policy import policy_for
from mesoclinic.courses.models import Course
from mesoclinic.patients.models import Patient, sha256
from mesoclinic.scheduling.models import Appointment
from tests.conftest import World, ago, api_for, error_fields, problem_of
from tests.fake_stripe import FakeStripe, sign
from tests.scheduling_fixtures import race_processes, run_script
from tests.test_courses import chart, plan, ready_course
from tests.test_web import signed_in

CHILD = [sys.executable, "-m", "tests.booking_race_child"]


def terms(world: World, **changes: Any) -> PaymentPolicy:
    policy = policy_for(world.clinic)
    values: dict[str, Any] = dict(
        deposit_percent=Decimal("20"),
        late_cancel_hours=48,
        late_cancel_fee=Decimal("50"),
        no_show_fee=Decimal("100"),
    )
    values.update(changes)
    for name, value in values.items():
        setattr(policy, name, value)
    policy.save()
    return policy


def session_price(world: World, amount: str = "500", tax: str = "0") -> PriceItem:
    return PriceItem.objects.create(
        clinic=world.clinic,
        kind="session",
        name="Session, one area",
        amount=Decimal(amount),
        tax_rate=Decimal(tax),
    )


def package_quote(world: World, course: Course, price: str = "4500", **kw: Any) -> Quote:
    return quotes.issue(
        course,
        kind="package",
        user=world.front_desk,
        sessions=kw.pop("sessions", 10),
        package_price=Decimal(price),
        **kw,
    )


def accept(world: World, quote: Quote, **kw: Any) -> Quote:
    return quotes.accept(
        quote,
        signed_name=kw.pop("signed_name", "Ana Lopez"),
        signature=kw.pop("signature", "M10 10 L50 40"),
        text_sha256=kw.pop("text_sha256", quote.text_sha256),
        user=kw.pop("user", world.front_desk),
        accepted_in=kw.pop("accepted_in", "clinic"),
    )


@pytest.fixture
def course(world: World, patient: Patient) -> Course:
    return plan(world, patient)


class QuoteTests:
    def test_a_quote_of_the_planned_sessions_has_its_discount_tax_deposit_and_terms(
        self, world: World, course: Course
    ) -> None:
        terms(world)
        item = session_price(world, "500", "8.875")
        quote = quotes.issue(
            course,
            kind="sessions",
            user=world.front_desk,
            sessions=10,
            item=item,
            discount_percent=Decimal("10"),
        )
        # 10 × $500 = $5,000, less 10 % = $4,500, tax 8.875 % = $399.38, total $4,899.38.
        assert (quote.subtotal, quote.discount, quote.tax, quote.total) == (
            Decimal("5000.00"),
            Decimal("500.00"),
            Decimal("399.38"),
            Decimal("4899.38"),
        )
        assert quote.deposit == Decimal("979.88")  # 20 % of the total
        assert quote.valid_until == timezone.localdate(timezone.now(), world.clinic.tz) + (
            dt.timedelta(days=30)
        )
        text = quote.text
        for words in (
            "- 10 × Session, one area at $500.00, less 10 % ($500.00): $4,500.00, tax 8.875 %.",
            "Total: $4,899.38",
            "Deposit due when you accept: $979.88.",
            "health insurance generally does not cover it",
            "late-cancellation fee of $50.00",
            "no-show fee of $100.00",
            "refunded at the package's price per session",
        ):
            assert words in text, words
        assert quote.text_sha256 == sha256(text)
        # Issued once, never changed.
        with pytest.raises(ValidationError):
            quote.save()

    def test_accepting_in_the_clinic_records_the_signature_terms_and_sells_the_package(
        self, world: World, course: Course
    ) -> None:
        terms(world)
        quote = package_quote(world, course, discount_percent=Decimal("10"))
        assert quote.total == Decimal("4050.00") and quote.deposit == Decimal("810.00")
        accepted = accept(world, quote)
        assert accepted.status == "accepted" and accepted.accepted_in == "clinic"
        assert accepted.witnessed_by == world.front_desk
        assert accepted.method == "drawn" and accepted.signed_name == "Ana Lopez"
        # The terms as they were, with the time of acceptance.
        acceptance = PolicyAcceptance.objects.get()
        assert acceptance.accepted_at == accepted.accepted_at
        assert (acceptance.no_show_fee, acceptance.late_cancel_fee) == (Decimal("100"), 50)
        assert acceptance.text_sha256 == quote.text_sha256
        # The course is sold as a package whose invoice has the quote's own lines and total.
        package = Package.objects.get(course=course)
        assert accepted.package == package and package.sessions == 10
        assert package.invoice.total == quote.total == Decimal("4050.00")
        assert package.invoice.course == course
        assert package.invoice.lines.get().discount == Decimal("450.00")
        assert quotes.deposit_due(accepted) == Decimal("810.00")
        actions.record_payment(package.invoice, Decimal("810"), "cash", user=world.front_desk)
        assert quotes.deposit_due(accepted) == 0
        assert AuditEvent.objects.filter(object_type="billing.Quote", action="update").exists()

    def test_booking_the_course_asks_for_the_deposit_until_it_is_paid(
        self, world: World, course: Course
    ) -> None:
        terms(world)
        quote = accept(world, package_quote(world, course))
        desk = signed_in(world.front_desk)
        page = desk.get(f"/courses/{course.pk}/booking/").content.decode()
        assert "asks a deposit of $900.00, not yet paid" in page
        assert quote.package is not None
        actions.record_payment(quote.package.invoice, Decimal("900"), "cash", user=world.front_desk)
        page = desk.get(f"/courses/{course.pk}/booking/").content.decode()
        assert "asks a deposit" not in page

    def test_a_quote_is_accepted_once_as_read_while_valid(
        self, world: World, course: Course
    ) -> None:
        quote = package_quote(world, course)
        with pytest.raises(ValidationError, match="changed while it was open"):
            accept(world, quote, text_sha256="0" * 64)
        with pytest.raises(ValidationError, match="full name"):
            accept(world, quote, signed_name="  ")
        later = package_quote(world, course, price="4000")
        accept(world, quote)
        with pytest.raises(ValidationError, match="already accepted"):
            accept(world, quote)
        # The course's other quote is withdrawn by the acceptance.
        later.refresh_from_db()
        assert later.status == "withdrawn"
        with pytest.raises(ValidationError, match="withdrawn"):
            accept(world, later)
        assert Package.objects.count() == 1 and Invoice.objects.count() == 1

    def test_a_quote_past_its_date_is_refused(self, world: World, patient: Patient) -> None:
        course = plan(world, patient)
        quote = package_quote(world, course)
        later = timezone.now() + dt.timedelta(days=32)
        with time_machine.travel(later), pytest.raises(ValidationError, match="valid until"):
            accept(world, quote)
        assert not Package.objects.exists()

    def test_the_clinic_signs_on_the_quote_page_and_prints_it(
        self, world: World, course: Course
    ) -> None:
        terms(world)
        desk = signed_in(world.front_desk)
        r = desk.post(
            f"/patients/{course.patient_id}/quotes/",
            {
                "quote-course": course.pk,
                "quote-kind": "package",
                "quote-sessions": 10,
                "quote-package_price": "",
                "quote-discount_percent": "0",
            },
        )
        assert r.status_code == 400 and "package_price" in r.context["quote_form"].errors
        r = desk.post(
            f"/patients/{course.patient_id}/quotes/",
            {
                "quote-course": course.pk,
                "quote-kind": "package",
                "quote-sessions": 10,
                "quote-package_price": "4500",
                "quote-discount_percent": "0",
            },
        )
        quote = Quote.objects.get()
        assert r.status_code == 302 and r["Location"] == f"/quotes/{quote.pk}/"
        page = desk.get(f"/quotes/{quote.pk}/").content.decode()
        assert "Accept and sign" in page and "Deposit due when you accept: $900.00" in page
        r = desk.post(
            f"/quotes/{quote.pk}/",
            {"signed_name": "", "signature": "", "text_sha256": quote.text_sha256},
        )
        assert r.status_code == 400
        r = desk.post(
            f"/quotes/{quote.pk}/",
            {"signed_name": "Ana Lopez", "signature": "", "text_sha256": quote.text_sha256},
        )
        assert r.status_code == 302
        quote.refresh_from_db()
        assert quote.status == "accepted" and quote.method == "typed"
        page = desk.get(f"/quotes/{quote.pk}/").content.decode()
        assert "A deposit of $900.00 is due now" in page and quote.text_sha256 in page
        pdf = desk.get(f"/quotes/{quote.pk}.pdf")
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
        # A practitioner does not handle quotes; another clinic does not see them.
        assert signed_in(world.practitioner).get(f"/quotes/{quote.pk}/").status_code == 403

    def test_another_clinic_and_another_patient_cannot_see_a_quote(
        self, world: World, other: World, course: Course
    ) -> None:
        quote = package_quote(world, course)
        assert signed_in(other.manager).get(f"/quotes/{quote.pk}/").status_code == 404
        assert api_for(other.front_desk).get(f"/quotes/{quote.pk}").status_code == 404
        stranger = Patient.objects.create(
            clinic=world.clinic, first_name="Bo", last_name="Ng", date_of_birth=dt.date(1980, 1, 1)
        )
        assert portal_of(stranger).get(f"/my/quotes/{quote.pk}/").status_code == 404

    def test_the_patient_accepts_in_the_portal(self, world: World, course: Course) -> None:
        terms(world)
        quote = package_quote(world, course)
        portal = portal_of(course.patient)
        listing = portal.get("/my/payments/").content.decode()
        assert f"Quote {quote.pk} for your" in listing
        r = portal.post(
            f"/my/quotes/{quote.pk}/",
            {"signed_name": "Ana Lopez", "text_sha256": quote.text_sha256},
        )
        assert r.status_code == 400  # not ticked as read to the end
        r = portal.post(
            f"/my/quotes/{quote.pk}/",
            {"read_to_end": "on", "signed_name": "Ana Lopez", "text_sha256": quote.text_sha256},
        )
        assert r.status_code == 302
        quote.refresh_from_db()
        assert quote.status == "accepted" and quote.accepted_in == "portal"
        assert quote.witnessed_by is None
        # The invoice is issued in the clinic's name by whoever issued the quote.
        assert quote.package is not None
        assert quote.package.invoice.issued_by == world.front_desk
        assert portal.get(f"/my/quotes/{quote.pk}.pdf").content.startswith(b"%PDF")

    def test_the_api_quotes_and_accepts(self, world: World, course: Course) -> None:
        desk = api_for(world.front_desk)
        r = desk.post(f"/courses/{course.pk}/quotes", {"kind": "package"})
        assert "package_price" in error_fields(r)
        r = desk.post(f"/courses/{course.pk}/quotes", {"kind": "sessions", "price": 99999})
        assert "price" in error_fields(r)
        r = desk.post(f"/courses/{course.pk}/quotes", {"kind": "package", "package_price": "4500"})
        assert r.status_code == 201, r.content
        body = r.json()
        assert body["total"] == "4500.00" and body["status"] == "issued"
        r = desk.post(
            f"/quotes/{body['id']}/accept",
            {"signed_name": "Ana Lopez", "text_sha256": "a" * 64},
        )
        assert "signed_name" in error_fields(r)
        r = desk.post(
            f"/quotes/{body['id']}/accept",
            {"signed_name": "Ana Lopez", "text_sha256": body["text_sha256"]},
        )
        assert r.status_code == 200 and r.json()["status"] == "accepted"
        assert r.json()["invoice"] == Invoice.objects.get().pk
        assert api_for(world.practitioner).get(f"/quotes/{body['id']}").status_code == 403


def portal_of(patient: Patient) -> Client:
    from mesoclinic.accounts.models import User

    user = User.objects.create_user(f"p{patient.pk}@example.com", password="pw")
    patient.user = user
    patient.save(update_fields=["user"])
    client = Client()
    client.force_login(user)
    return client


# Fees.


def visit(world: World, course: Course, starts: dt.datetime, **kw: Any) -> Appointment:
    return Appointment.objects.create(
        clinic=world.clinic,
        patient=course.patient,
        course=course,
        kind="session",
        practitioner=world.practitioner,
        starts_at=starts,
        ends_at=starts + dt.timedelta(minutes=45),
        **kw,
    )


class FeeTests:
    def test_a_no_show_is_charged_by_the_terms_the_patient_accepted_once(
        self, world: World, course: Course
    ) -> None:
        terms(world)
        accept(world, package_quote(world, course))
        PolicyAcceptance.objects.update(accepted_at=ago(days=10))
        # The clinic raises its fee afterwards: the patient's accepted fee still applies.
        terms(world, no_show_fee=Decimal("250"))
        missed = visit(world, course, ago(days=2), status="no_show", no_show_at=ago(days=2))
        [fee] = fees.pending(course.patient)
        assert fee.kind == "no_show" and fee.amount == Decimal("100")
        invoice = fees.charge(missed, user=world.front_desk)
        assert invoice.total == Decimal("100.00") and invoice.appointment == missed
        assert invoice.lines.get().description.startswith("No-show fee: the visit of ")
        assert "By the payment terms accepted on" in invoice.note
        with pytest.raises(ValidationError, match="already invoiced"):
            fees.charge(missed, user=world.front_desk)
        assert fees.pending(course.patient) == [] and FeeCharge.objects.count() == 1

    def test_only_a_late_cancellation_is_charged(self, world: World, course: Course) -> None:
        terms(world)
        accept(world, package_quote(world, course))
        soon = timezone.now() + dt.timedelta(days=1)
        late = visit(world, course, soon, status="cancelled", cancelled_at=timezone.now())
        early = visit(
            world,
            course,
            soon + dt.timedelta(days=5),
            status="cancelled",
            cancelled_at=timezone.now(),
        )
        assert fees.chargeable(early) is None
        fee = fees.chargeable(late)
        assert fee is not None and (fee.kind, fee.amount) == ("late_cancellation", 50)
        r = api_for(world.front_desk).post(f"/appointments/{early.pk}/fee", {})
        assert "appointment" in error_fields(r)
        r = api_for(world.front_desk).post(f"/appointments/{late.pk}/fee", {})
        assert r.status_code == 201 and r.json()["total"] == "50.00"

    def test_no_fee_without_accepted_terms(self, world: World, course: Course) -> None:
        terms(world)
        missed = visit(world, course, ago(days=1), status="no_show", no_show_at=ago(days=1))
        assert fees.chargeable(missed) is None
        # Terms accepted after the visit do not reach back to it.
        accept(world, package_quote(world, course))
        assert fees.chargeable(missed) is None
        r = signed_in(world.front_desk).post(f"/visits/{missed.pk}/fee/")
        assert r.status_code == 302 and not Invoice.objects.filter(appointment=missed).exists()

    def test_the_account_page_offers_the_fee(self, world: World, course: Course) -> None:
        terms(world)
        accept(world, package_quote(world, course))
        PolicyAcceptance.objects.update(accepted_at=ago(days=10))
        missed = visit(world, course, ago(days=1), status="no_show", no_show_at=ago(days=1))
        desk = signed_in(world.front_desk)
        page = desk.get(f"/patients/{course.patient_id}/account/").content.decode()
        assert "Fees that may be charged" in page and "Invoice the no-show fee" in page
        r = desk.post(f"/visits/{missed.pk}/fee/")
        invoice = Invoice.objects.get(appointment=missed)
        assert r["Location"] == f"/invoices/{invoice.pk}/"
        assert signed_in(world.practitioner).post(f"/visits/{missed.pk}/fee/").status_code == 403


# Settling a package when its course stops early.


def stop(course: Course) -> None:
    Course.objects.filter(pk=course.pk).update(status="stopped", stop_reason="Moved away")
    course.refresh_from_db()


class SettleTests:
    def _sold(self, world: World, patient: Patient, used: int) -> Package:
        course = ready_course(world, patient, ago(days=40))
        package = packages.sell(course, 10, Decimal("4000"), user=world.front_desk)
        for n in range(used):
            chart(world, course, ago(days=30 - 7 * n))
        return package

    def test_pro_rata_gives_back_the_sessions_not_given_and_refunds_what_was_paid(
        self, world: World, patient: Patient
    ) -> None:
        package = self._sold(world, patient, used=3)
        actions.record_payment(package.invoice, Decimal("4000"), "cash", user=world.front_desk)
        with pytest.raises(ValidationError, match="has stopped"):
            packages.settle(package, user=world.manager)
        stop(package.course)
        rest = packages.settle(package, user=world.manager)
        assert rest == Decimal("2800.00")  # 7 of 10 sessions at $400
        figures = actions.amounts(package.invoice)
        assert figures == {"paid": Decimal("1200.00"), "credited": Decimal("2800.00"), "due": 0}
        assert actions.balance(patient) == 0
        refund = Payment.objects.get(kind="refund")
        assert refund.amount == Decimal("2800.00") and refund.method == "cash"
        assert packages.liability(world.clinic) == (0, 0)
        with pytest.raises(ValidationError, match="already settled"):
            packages.settle(package, user=world.manager)

    def test_full_price_charges_the_sessions_given_at_the_single_price(
        self, world: World, patient: Patient
    ) -> None:
        session_price(world, "500")
        terms(world, package_refund="full_price")
        package = self._sold(world, patient, used=3)
        stop(package.course)
        # $4,000 less 3 × $500: $2,500, credited on the unpaid invoice; $1,500 still owed.
        assert packages.settle(package, user=world.manager) == Decimal("2500.00")
        assert actions.balance(patient) == Decimal("1500.00")

    def test_no_refund_policy_keeps_the_package(self, world: World, patient: Patient) -> None:
        terms(world, package_refund="none")
        package = self._sold(world, patient, used=1)
        stop(package.course)
        assert packages.settle(package, user=world.manager) == 0
        package.refresh_from_db()
        assert package.settled_at is not None and package.rest_credited == 0

    def test_only_a_manager_settles_and_the_account_offers_it(
        self, world: World, other: World, patient: Patient
    ) -> None:
        package = self._sold(world, patient, used=0)
        stop(package.course)
        desk = signed_in(world.front_desk)
        page = desk.get(f"/patients/{patient.pk}/account/").content.decode()
        assert "has stopped with 10 prepaid sessions not given" in page
        assert "A manager settles it" in page
        assert desk.post(f"/packages/{package.pk}/settle/").status_code == 403
        assert signed_in(other.manager).post(f"/packages/{package.pk}/settle/").status_code == 404
        r = api_for(world.manager).post(f"/packages/{package.pk}/settle", {})
        assert r.status_code == 200 and r.json()["given_back"] == "4000.00"


# Online card payment through Stripe Checkout.


@pytest.fixture
def stripe(world: World, live_server: Any, settings: Any) -> Iterator[FakeStripe]:
    fake = FakeStripe().start()
    settings.STRIPE_API_BASE = fake.url
    settings.STRIPE_CHECKOUT_ORIGIN = fake.url
    terms(
        world,
        stripe_secret_key=fake.secret_key,
        stripe_webhook_secret=fake.webhook_secret,
    )
    fake.webhook_url = f"{live_server.url}/payments/stripe/{world.clinic.pk}/webhook/"
    yield fake
    fake.stop()


@pytest.mark.django_db(transaction=True)
class OnlineTests:
    def _invoice(self, world: World, patient: Patient, amount: str = "900") -> Invoice:
        return actions.issue_invoice(
            patient,
            [actions.LineInput("Package deposit", Decimal(amount), Decimal("0"))],
            user=world.front_desk,
        )

    def test_a_paid_checkout_is_recorded_once_from_the_signed_webhook(
        self, world: World, patient: Patient, stripe: FakeStripe
    ) -> None:
        invoice = self._invoice(world, patient)
        checkout = online.start(
            invoice,
            Decimal("300"),
            user=world.front_desk,
            success_url="http://127.0.0.1/back?session={CHECKOUT_SESSION_ID}",
            cancel_url="http://127.0.0.1/cancel",
        )
        method, path, params = stripe.requests[-1]
        assert (method, path) == ("POST", "/v1/checkout/sessions")
        assert params["line_items[0][price_data][unit_amount]"] == "30000"  # cents
        assert params["line_items[0][price_data][currency]"] == "usd"
        assert params["metadata[invoice]"] == str(invoice.pk)
        assert checkout.url.startswith(stripe.url + "/pay/")
        assert stripe.pay(checkout.provider_id) == 200
        payment = Payment.objects.get()
        assert (payment.method, payment.amount) == ("online_card", Decimal("300.00"))
        assert payment.reference.startswith("pi_test_")
        assert actions.amounts(invoice)["due"] == Decimal("600.00")
        checkout.refresh_from_db()
        assert checkout.status == "paid" and checkout.payment == payment
        # The same event again, and the same payment in another event: nothing changes.
        [event_id] = list(stripe.events)
        assert stripe.deliver(event_id) == 200
        again = stripe.event("checkout.session.completed", stripe.sessions[checkout.provider_id])
        assert stripe.deliver(again) == 200
        assert Payment.objects.count() == 1 and ProviderEvent.objects.count() == 2
        assert actions.balance(patient) == Decimal("600.00")

    def test_a_notice_with_a_bad_signature_is_refused(
        self, world: World, patient: Patient, stripe: FakeStripe
    ) -> None:
        invoice = self._invoice(world, patient)
        checkout = online.start(
            invoice, Decimal("900"), user=world.front_desk, success_url="x", cancel_url="y"
        )
        session = stripe.sessions[checkout.provider_id]
        session.update(payment_status="paid", payment_intent="pi_forged")
        forged = stripe.event("checkout.session.completed", session)
        payload = stripe.events[forged]
        assert stripe.deliver(forged, signature=sign(payload, "whsec_wrong")) == 403
        old = int(timezone.now().timestamp()) - 3600
        assert stripe.deliver(forged, signature=sign(payload, stripe.webhook_secret, old)) == 403
        assert not Payment.objects.exists() and not ProviderEvent.objects.exists()
        # An answer in the problem format.
        r = Client().post(
            f"/payments/stripe/{world.clinic.pk}/webhook/",
            data=payload,
            content_type="application/json",
            headers={"Stripe-Signature": "t=1,v1=00"},
        )
        assert problem_of(r, 403)["detail"].startswith("The notice's signature")

    def test_coming_back_confirms_with_the_provider_before_the_webhook(
        self, world: World, patient: Patient, stripe: FakeStripe
    ) -> None:
        invoice = self._invoice(world, patient)
        desk = signed_in(world.front_desk)
        r = desk.post(f"/invoices/{invoice.pk}/pay-online/", {"amount": "900"})
        assert r.status_code == 302 and r["Location"].startswith(stripe.url + "/pay/")
        session_id = r["Location"].rsplit("/", 1)[1]
        # Paid, but the webhook has not arrived (the fake's address points nowhere).
        stripe.webhook_url = "http://127.0.0.1:9/"
        stripe.sessions[session_id].update(payment_status="paid", payment_intent="pi_test_back")
        r = desk.get(f"/payments/online/return/?session={session_id}")
        assert r["Location"] == f"/invoices/{invoice.pk}/"
        assert Payment.objects.get().reference == "pi_test_back"
        assert actions.amounts(invoice)["due"] == 0

    def test_an_online_payment_is_refunded_at_the_provider(
        self, world: World, patient: Patient, stripe: FakeStripe
    ) -> None:
        invoice = self._invoice(world, patient)
        checkout = online.start(
            invoice, Decimal("900"), user=world.front_desk, success_url="x", cancel_url="y"
        )
        stripe.pay(checkout.provider_id)
        payment = Payment.objects.get()
        back = actions.refund(payment, Decimal("100"), "One area not treated", user=world.manager)
        assert back.reference.startswith("re_test_")
        [refund] = stripe.refunds.values()
        assert (refund["amount"], refund["payment_intent"]) == (10000, payment.reference)
        # The provider refuses more than is left there; nothing is written here.
        stripe.refunds[refund["id"]]["amount"] = 90000
        with pytest.raises(ValidationError, match="card provider refused"):
            actions.refund(payment, Decimal("50"), "Again", user=world.manager)
        assert Payment.objects.filter(kind="refund").count() == 1

    def test_the_patient_pays_the_deposit_in_the_portal(
        self, world: World, course: Course, stripe: FakeStripe
    ) -> None:
        quote = accept(world, package_quote(world, course))
        portal = portal_of(course.patient)
        page = portal.get(f"/my/quotes/{quote.pk}/").content.decode()
        assert "Pay the deposit of $900.00 by card" in page
        assert quote.package is not None
        r = portal.post(f"/my/invoices/{quote.package.invoice_id}/pay/", {"what": "deposit"})
        session_id = r["Location"].rsplit("/", 1)[1]
        assert stripe.sessions[session_id]["amount_total"] == 90000
        stripe.pay(session_id)
        r = portal.get(f"/my/payments/return/?session={session_id}")
        assert r["Location"] == "/my/payments/"
        assert quotes.deposit_due(quote) == 0
        # Another patient's invoice is not payable from this login.
        stranger = Patient.objects.create(
            clinic=world.clinic, first_name="Bo", last_name="Ng", date_of_birth=dt.date(1980, 1, 1)
        )
        theirs = self._invoice(world, stranger)
        assert portal.post(f"/my/invoices/{theirs.pk}/pay/").status_code == 404

    def test_the_api_starts_a_checkout_for_the_clinics_own_invoices_and_roles(
        self, world: World, other: World, patient: Patient, stripe: FakeStripe
    ) -> None:
        invoice = self._invoice(world, patient)
        body = {
            "amount": "250",
            "success_url": "https://x.test/ok",
            "cancel_url": "https://x.test/",
        }
        assert (
            api_for(world.practitioner).post(f"/invoices/{invoice.pk}/checkout", body).status_code
            == 403
        )
        assert (
            api_for(other.manager).post(f"/invoices/{invoice.pk}/checkout", body).status_code == 404
        )
        r = api_for(world.front_desk).post(
            f"/invoices/{invoice.pk}/checkout", {**body, "amount": "901"}
        )
        assert "amount" in error_fields(r)
        r = api_for(world.front_desk).post(f"/invoices/{invoice.pk}/checkout", body)
        assert r.status_code == 201 and r.json()["url"].startswith(stripe.url + "/pay/")
        assert OnlineCheckout.objects.get().amount == Decimal("250.00")

    def test_a_clinic_without_keys_takes_no_card_online(
        self, world: World, patient: Patient
    ) -> None:
        invoice = self._invoice(world, patient)
        r = api_for(world.front_desk).post(
            f"/invoices/{invoice.pk}/checkout",
            {"amount": "100", "success_url": "x", "cancel_url": "y"},
        )
        assert "amount" in error_fields(r)
        assert not OnlineCheckout.objects.exists()
        r = Client().post(
            f"/payments/stripe/{world.clinic.pk}/webhook/",
            data=json.dumps({"id": "evt_1"}),
            content_type="application/json",
        )
        assert r.status_code == 403


class PercentTests:
    def test_rates_are_written_as_people_write_them(self, world: World, patient: Patient) -> None:
        assert [money_percent(Decimal(v)) for v in ("20.000", "8.875", "0", "12.50")] == [
            "20",
            "8.875",
            "0",
            "12.5",
        ]
        terms(world)
        invoice = actions.issue_invoice(
            patient,
            [actions.LineInput("Consultation", Decimal("100"), Decimal("20.000"))],
            user=world.front_desk,
        )
        page = signed_in(world.front_desk).get(f"/invoices/{invoice.pk}/").content.decode()
        assert "20 %" in page and "E+" not in page
        policy = api_for(world.front_desk).get("/payment-policy").json()
        assert policy["deposit_percent"] == "20"


class PolicyPageTests:
    def test_a_manager_sets_the_terms_and_both_keys_or_neither(self, world: World) -> None:
        manager = signed_in(world.manager)
        page = manager.get("/manage/payment-policy/").content.decode()
        assert "There is no fee for a missed visit." in page
        data = {
            "deposit_percent": "25",
            "quote_valid_days": "14",
            "late_cancel_hours": "24",
            "late_cancel_fee": "40",
            "no_show_fee": "80",
            "package_refund": "pro_rata",
            "insurance_notice": "Ask your insurer.",
            "extra_terms": "",
            "stripe_secret_key": "sk_test_1",
            "stripe_webhook_secret": "",
        }
        r = manager.post("/manage/payment-policy/", data)
        assert r.status_code == 400 and "stripe_webhook_secret" in r.context["form"].errors
        data["stripe_secret_key"] = ""
        assert manager.post("/manage/payment-policy/", data).status_code == 302
        policy = policy_for(world.clinic)
        assert (policy.deposit_percent, policy.no_show_fee) == (25, 80)
        assert (
            "less than 1 day before it starts"
            in manager.get("/manage/payment-policy/").content.decode()
        )
        assert signed_in(world.front_desk).get("/manage/payment-policy/").status_code == 403
        r = api_for(world.front_desk).put("/payment-policy", {**data, "deposit_percent": "5"})
        assert r.status_code == 403
        r = api_for(world.manager).put("/payment-policy", {**data, "deposit_percent": "150"})
        assert "deposit_percent" in error_fields(r)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="races are proved on PostgreSQL")
class MoneyRaceTests:
    def test_a_quote_a_fee_and_a_provider_notice_each_count_once_under_concurrent_requests(
        self, shared_db: str
    ) -> None:
        seeded = run_script(CHILD, shared_db, "quotes", {})
        accept = {
            "method": "POST",
            "path": f"/api/v1/quotes/{seeded['quote']}/accept",
            "token": seeded["token"],
            "body": {"signed_name": "Quote Race", "text_sha256": seeded["sha"]},
        }
        fee = {
            "method": "POST",
            "path": f"/api/v1/appointments/{seeded['visit']}/fee",
            "token": seeded["token"],
            "body": {},
        }
        notice = {
            "method": "POST",
            "path": f"/payments/stripe/{seeded['clinic']}/webhook/",
            "raw": seeded["payload"],
            "headers": {"Stripe-Signature": seeded["signature"]},
        }
        outputs = race_processes(
            CHILD, shared_db, [{"requests": [accept, fee, notice] * 2} for _ in range(2)]
        )
        results = [r for output in outputs for r in output]
        accepted = [r["status"] for r in results[0::3]]
        charged = [r["status"] for r in results[1::3]]
        noticed = [r["status"] for r in results[2::3]]
        assert sorted(accepted) == [200, 422, 422, 422], results
        assert sorted(charged) == [201, 422, 422, 422], results
        assert noticed == [200] * 4, results
        outcomes = sorted(r["json"]["outcome"] for r in results[2::3])
        assert outcomes == ["recorded", "replayed", "replayed", "replayed"], outcomes
        counts = run_script(CHILD, shared_db, "money_count", seeded)
        assert counts == {"packages": 1, "fees": 1, "payments": 1, "events": 1}
