"""The clinic's money: its price list, invoices and credit notes (numbered per clinic with no
gaps, never changed once issued), payments and refunds, and the ledger every balance is summed
from (billing/actions.py writes them all)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from mesoclinic.accounts.models import Clinic


class WrittenOnce(models.Model):
    """A row that is written once and never changed: saving it again raises `never_changed`,
    which says what to do instead. (A queryset's update() is the deliberate way around it, used
    for a quote's acceptance alone.)"""

    never_changed = "This record is never changed."

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise ValidationError(self.never_changed)
        super().save(*args, **kwargs)


def _amount(*validators: Any, **kwargs: Any) -> models.DecimalField[Any, Any]:
    """An amount of money: three decimal places hold every currency's minor unit."""
    return models.DecimalField(
        max_digits=14, decimal_places=3, validators=list(validators), **kwargs
    )


class PriceItem(models.Model):
    """One line of the clinic's price list, in the clinic's currency, before tax."""

    class Kind(models.TextChoices):
        CONSULTATION = "consultation", "Consultation"
        ALLERGY_TEST = "allergy_test", "Allergy test"
        SESSION = "session", "Session"
        REVIEW = "review", "Review"
        MAINTENANCE = "maintenance", "Maintenance session"
        PRODUCT = "product", "Product"
        FEE = "fee", "Fee"

    clinic = models.ForeignKey(Clinic, models.CASCADE, related_name="prices")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    name = models.CharField(max_length=200)
    amount = _amount(MinValueValidator(Decimal("0")))
    tax_rate = models.DecimalField(
        "tax rate (%)",
        max_digits=6,
        decimal_places=3,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))],
    )
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["kind", "name"]
        constraints = [
            models.UniqueConstraint(fields=["clinic", "name"], name="price_name_per_clinic"),
            models.CheckConstraint(condition=models.Q(amount__gte=0), name="price_not_negative"),
        ]

    def __str__(self) -> str:
        return self.name


class InvoiceCounter(models.Model):
    """The last number issued in a clinic. Its row is locked while an invoice is numbered, in
    the invoice's own transaction, so numbers have no gaps even under concurrent issue."""

    clinic = models.OneToOneField(Clinic, models.CASCADE, primary_key=True, related_name="+")
    last = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.clinic_id}: {self.last}"


class Invoice(WrittenOnce):
    """An invoice or a credit note, as issued. Amounts are positive for both; a credit note
    names the invoice it corrects and lowers the patient's balance."""

    class Kind(models.TextChoices):
        INVOICE = "invoice", "Invoice"
        CREDIT_NOTE = "credit_note", "Credit note"

    clinic = models.ForeignKey(Clinic, models.PROTECT, related_name="invoices")
    patient = models.ForeignKey("patients.Patient", models.PROTECT, related_name="invoices")
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.INVOICE)
    number = models.PositiveIntegerField()
    credits = models.ForeignKey(
        "self", models.PROTECT, null=True, blank=True, related_name="credit_notes"
    )
    # What the invoice is for, when it is for a course or a visit: the revenue report groups
    # by the course's protocol and the visit's practitioner.
    course = models.ForeignKey(
        "courses.Course", models.PROTECT, null=True, blank=True, related_name="invoices"
    )
    appointment = models.ForeignKey(
        "scheduling.Appointment", models.PROTECT, null=True, blank=True, related_name="invoices"
    )
    currency = models.CharField(max_length=3)
    subtotal = _amount()
    tax = _amount()
    total = _amount()
    note = models.TextField(blank=True)
    issued_at = models.DateTimeField()
    issued_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.PROTECT, related_name="+")

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["clinic", "number"], name="invoice_number_per_clinic"),
            models.CheckConstraint(
                condition=models.Q(kind="invoice", credits__isnull=True)
                | models.Q(kind="credit_note", credits__isnull=False),
                name="credit_note_names_its_invoice",
            ),
            models.CheckConstraint(condition=models.Q(total__gt=0), name="invoice_total_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.number}"

    never_changed = "An issued invoice is never changed: issue a credit note."


class InvoiceLine(WrittenOnce):
    invoice = models.ForeignKey(Invoice, models.PROTECT, related_name="lines")
    description = models.CharField(max_length=300)
    quantity = models.PositiveIntegerField(default=1, validators=[MinValueValidator(1)])
    unit_amount = _amount()
    tax_rate = models.DecimalField(max_digits=6, decimal_places=3)
    discount = _amount(default=Decimal("0"))  # taken off quantity × unit amount, before tax
    net = _amount()
    tax = _amount()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.description

    never_changed = "An issued invoice is never changed: issue a credit note."


class Payment(WrittenOnce):
    """Money in (a payment) or out (a refund of a payment), never changed once recorded."""

    class Kind(models.TextChoices):
        PAYMENT = "payment", "Payment"
        REFUND = "refund", "Refund"

    class Method(models.TextChoices):
        CASH = "cash", "Cash"
        CARD_TERMINAL = "card_terminal", "Card, at the clinic's terminal"
        BANK_TRANSFER = "bank_transfer", "Bank transfer"
        ONLINE_CARD = "online_card", "Card, online"

    clinic = models.ForeignKey(Clinic, models.PROTECT, related_name="payments")
    patient = models.ForeignKey("patients.Patient", models.PROTECT, related_name="payments")
    invoice = models.ForeignKey(Invoice, models.PROTECT, related_name="payments")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.PAYMENT)
    method = models.CharField(max_length=20, choices=Method.choices)
    amount = _amount()
    currency = models.CharField(max_length=3)
    reference = models.CharField(max_length=100, blank=True)
    refund_of = models.ForeignKey(
        "self", models.PROTECT, null=True, blank=True, related_name="refunds"
    )
    reason = models.TextField(blank=True)
    at = models.DateTimeField()
    by = models.ForeignKey(settings.AUTH_USER_MODEL, models.PROTECT, related_name="+")

    class Meta:
        ordering = ["-at", "-id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="payment_positive"),
            models.CheckConstraint(
                condition=models.Q(kind="payment", refund_of__isnull=True)
                | models.Q(kind="refund", refund_of__isnull=False),
                name="refund_names_its_payment",
            ),
            # The provider's payment is recorded once, however often its webhook arrives.
            models.UniqueConstraint(
                fields=["reference"],
                condition=models.Q(kind="payment", method="online_card"),
                name="online_payment_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.amount} {self.currency}"

    never_changed = "A recorded payment is never changed: record a refund."


class LedgerEntry(WrittenOnce):
    """One money movement on a patient's account, never edited: an invoice adds what the
    patient owes, a credit note and a payment take it away, a refund adds it back. The balance
    is the sum of the entries."""

    clinic = models.ForeignKey(Clinic, models.PROTECT, related_name="+")
    patient = models.ForeignKey("patients.Patient", models.PROTECT, related_name="ledger")
    at = models.DateTimeField()
    amount = _amount()
    currency = models.CharField(max_length=3)
    invoice = models.ForeignKey(Invoice, models.PROTECT, null=True, blank=True, related_name="+")
    payment = models.ForeignKey(Payment, models.PROTECT, null=True, blank=True, related_name="+")
    description = models.CharField(max_length=300)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["clinic", "at"]), models.Index(fields=["patient", "at"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(invoice__isnull=False, payment__isnull=True)
                | models.Q(invoice__isnull=True, payment__isnull=False),
                name="ledger_entry_has_one_source",
            ),
        ]

    def __str__(self) -> str:
        return self.description

    never_changed = "A ledger entry is never edited."


class Package(models.Model):
    """A course prepaid as a package: `sessions` sessions for `price` (tax included), sold with
    its invoice. Each session charted on the course redeems one (PackageRedemption)."""

    clinic = models.ForeignKey(Clinic, models.PROTECT, related_name="+")
    patient = models.ForeignKey("patients.Patient", models.PROTECT, related_name="packages")
    course = models.ForeignKey("courses.Course", models.PROTECT, related_name="packages")
    sessions = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    price = _amount()
    currency = models.CharField(max_length=3)
    invoice = models.OneToOneField(Invoice, models.PROTECT, related_name="package")
    sold_at = models.DateTimeField()
    sold_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.PROTECT, related_name="+")
    # Settled when its course stopped early: no session is redeemed after, and `rest_credited`
    # is what the clinic's package policy gave back (by a credit note and refunds).
    settled_at = models.DateTimeField(null=True, blank=True)
    settled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.PROTECT, null=True, blank=True, related_name="+"
    )
    rest_credited = _amount(null=True, blank=True)

    class Meta:
        ordering = ["-sold_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(sessions__gte=1), name="package_has_sessions"
            ),
            models.CheckConstraint(condition=models.Q(price__gt=0), name="package_price_positive"),
        ]

    def __str__(self) -> str:
        return f"Package of {self.sessions} sessions"


class PackageRedemption(models.Model):
    """One prepaid session used: a session charted on the package's course. A session redeems
    at most one package session (the unique session)."""

    package = models.ForeignKey(Package, models.PROTECT, related_name="redemptions")
    session = models.OneToOneField("courses.Session", models.PROTECT, related_name="redemption")
    at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.package} · session {self.session_id}"


class PaymentPolicy(models.Model):
    """A clinic's terms for money (Manage → Payment policy): the deposit on a quote, the fees
    for a late cancellation or a missed visit, what is given back when a prepaid course stops
    early, and the online card provider. Patients accept the wording with their quote; a fee is
    charged by the terms they accepted (PolicyAcceptance), never by today's."""

    class PackageRefund(models.TextChoices):
        PRO_RATA = "pro_rata", "The sessions not given, at the package's price per session"
        FULL_PRICE = (
            "full_price",
            ("The package price less the sessions given at the single-session price"),
        )
        NONE = "none", "Nothing: prepaid sessions are not refunded"

    clinic = models.OneToOneField(Clinic, models.CASCADE, related_name="payment_policy")
    deposit_percent = models.DecimalField(
        "deposit (% of a quote)",
        max_digits=5,
        decimal_places=2,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))],
    )
    quote_valid_days = models.PositiveSmallIntegerField(
        default=30, validators=[MinValueValidator(1), MaxValueValidator(365)]
    )
    late_cancel_hours = models.PositiveSmallIntegerField(
        default=48, validators=[MinValueValidator(1), MaxValueValidator(168)]
    )
    late_cancel_fee = _amount(MinValueValidator(Decimal("0")), default=Decimal("0"))
    no_show_fee = _amount(MinValueValidator(Decimal("0")), default=Decimal("0"))
    package_refund = models.CharField(
        max_length=12, choices=PackageRefund.choices, default=PackageRefund.PRO_RATA
    )
    insurance_notice = models.TextField(blank=True)
    extra_terms = models.TextField(blank=True)
    # Online card payment through Stripe: empty keys mean no online payment.
    stripe_secret_key = models.CharField(max_length=200, blank=True)
    stripe_webhook_secret = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Payment policy of {self.clinic}"

    @property
    def online(self) -> bool:
        return bool(self.stripe_secret_key and self.stripe_webhook_secret)


class PolicyAcceptance(WrittenOnce):
    """A patient's acceptance of the clinic's cancellation and no-show terms, with the exact
    wording, its hash and its figures as they were, and when."""

    clinic = models.ForeignKey(Clinic, models.PROTECT, related_name="+")
    patient = models.ForeignKey(
        "patients.Patient", models.PROTECT, related_name="policy_acceptances"
    )
    text = models.TextField()
    text_sha256 = models.CharField(max_length=64)
    late_cancel_hours = models.PositiveSmallIntegerField()
    late_cancel_fee = _amount()
    no_show_fee = _amount()
    currency = models.CharField(max_length=3)
    accepted_at = models.DateTimeField()

    class Meta:
        ordering = ["-accepted_at", "-id"]

    def __str__(self) -> str:
        return f"Payment terms accepted {self.accepted_at:%Y-%m-%d}"

    never_changed = "An accepted policy is never changed."


class Quote(WrittenOnce):
    """A quote for a course: its lines (the planned sessions, or a package), a discount, tax,
    total and deposit, valid until a date, with the insurance notice and the payment terms.
    Its document text and hash are fixed when it is issued; the patient accepts that exact text
    by signature, in the clinic or in the portal, and the course is then sold as a package."""

    class Kind(models.TextChoices):
        PACKAGE = "package", "A package"
        SESSIONS = "sessions", "The planned sessions"

    class Status(models.TextChoices):
        ISSUED = "issued", "Waiting for the patient"
        ACCEPTED = "accepted", "Accepted"
        WITHDRAWN = "withdrawn", "Withdrawn"

    class Method(models.TextChoices):
        TYPED = "typed", "Typed name on screen"
        DRAWN = "drawn", "Typed name and drawn signature on screen"

    clinic = models.ForeignKey(Clinic, models.PROTECT, related_name="quotes")
    patient = models.ForeignKey("patients.Patient", models.PROTECT, related_name="quotes")
    course = models.ForeignKey("courses.Course", models.PROTECT, related_name="quotes")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    sessions = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    currency = models.CharField(max_length=3)
    discount_percent = models.DecimalField(max_digits=5, decimal_places=2, default=Decimal("0"))
    subtotal = _amount()  # before the discount and tax
    discount = _amount()
    tax = _amount()
    total = _amount()
    deposit = _amount()
    valid_until = models.DateField()
    text = models.TextField(help_text="The quote as the patient reads and signs it.")
    text_sha256 = models.CharField(max_length=64)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ISSUED)
    issued_at = models.DateTimeField()
    issued_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.PROTECT, related_name="+")
    signed_name = models.CharField(max_length=200, blank=True)
    signature = models.TextField(blank=True)
    method = models.CharField(max_length=10, choices=Method.choices, blank=True)
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_in = models.CharField(max_length=10, blank=True)  # "clinic" or "portal"
    witnessed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.PROTECT, null=True, blank=True, related_name="+"
    )
    acceptance = models.OneToOneField(
        PolicyAcceptance, models.PROTECT, null=True, blank=True, related_name="quote"
    )
    package = models.OneToOneField(
        Package, models.PROTECT, null=True, blank=True, related_name="quote"
    )

    class Meta:
        ordering = ["-issued_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(total__gt=0), name="quote_total_positive"),
            models.CheckConstraint(
                condition=models.Q(status="accepted", accepted_at__isnull=False)
                | ~models.Q(status="accepted"),
                name="accepted_quote_has_its_time",
            ),
        ]

    def __str__(self) -> str:
        return f"Quote {self.pk}"

    never_changed = "An issued quote is never changed: issue a new one."


class QuoteLine(models.Model):
    quote = models.ForeignKey(Quote, models.CASCADE, related_name="lines")
    description = models.CharField(max_length=300)
    quantity = models.PositiveIntegerField(default=1)
    unit_amount = _amount()
    tax_rate = models.DecimalField(max_digits=6, decimal_places=3)
    discount = _amount()
    net = _amount()
    tax = _amount()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.description


class FeeCharge(models.Model):
    """A late-cancellation or no-show fee invoiced for one visit, by the terms the patient
    accepted. One visit is charged at most once (the unique appointment)."""

    class Kind(models.TextChoices):
        LATE_CANCELLATION = "late_cancellation", "Late-cancellation fee"
        NO_SHOW = "no_show", "No-show fee"

    appointment = models.OneToOneField("scheduling.Appointment", models.PROTECT, related_name="fee")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    acceptance = models.ForeignKey(PolicyAcceptance, models.PROTECT, related_name="+")
    invoice = models.OneToOneField(Invoice, models.PROTECT, related_name="fee")

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for visit {self.appointment_id}"


class OnlineCheckout(models.Model):
    """An online card payment started with the provider (a Stripe Checkout Session), for an
    amount due on an invoice. The provider's signed webhook records the payment."""

    class Status(models.TextChoices):
        OPEN = "open", "Waiting for the card"
        PAID = "paid", "Paid"
        EXPIRED = "expired", "Expired"

    clinic = models.ForeignKey(Clinic, models.PROTECT, related_name="+")
    patient = models.ForeignKey("patients.Patient", models.PROTECT, related_name="+")
    invoice = models.ForeignKey(Invoice, models.PROTECT, related_name="checkouts")
    amount = _amount()
    currency = models.CharField(max_length=3)
    provider_id = models.CharField(max_length=255, unique=True)
    url = models.URLField(max_length=2000)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    payment = models.OneToOneField(
        Payment, models.PROTECT, null=True, blank=True, related_name="checkout"
    )
    created_at = models.DateTimeField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.PROTECT, related_name="+")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Online payment {self.provider_id}"


class ProviderEvent(models.Model):
    """A webhook event from the payment provider, kept once by its id: a replay is seen and
    changes nothing."""

    clinic = models.ForeignKey(Clinic, models.PROTECT, related_name="+")
    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100)
    received_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.event_id
