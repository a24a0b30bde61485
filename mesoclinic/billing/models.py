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


def _amount(*validators: Any) -> models.DecimalField[Any, Any]:
    """An amount of money: three decimal places hold every currency's minor unit."""
    return models.DecimalField(max_digits=14, decimal_places=3, validators=list(validators))


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


class Invoice(models.Model):
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

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise ValidationError("An issued invoice is never changed: issue a credit note.")
        super().save(*args, **kwargs)


class InvoiceLine(models.Model):
    invoice = models.ForeignKey(Invoice, models.PROTECT, related_name="lines")
    description = models.CharField(max_length=300)
    quantity = models.PositiveIntegerField(default=1, validators=[MinValueValidator(1)])
    unit_amount = _amount()
    tax_rate = models.DecimalField(max_digits=6, decimal_places=3)
    net = _amount()
    tax = _amount()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.description

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise ValidationError("An issued invoice is never changed: issue a credit note.")
        super().save(*args, **kwargs)


class Payment(models.Model):
    """Money in (a payment) or out (a refund of a payment), never changed once recorded."""

    class Kind(models.TextChoices):
        PAYMENT = "payment", "Payment"
        REFUND = "refund", "Refund"

    class Method(models.TextChoices):
        CASH = "cash", "Cash"
        CARD_TERMINAL = "card_terminal", "Card, at the clinic's terminal"
        BANK_TRANSFER = "bank_transfer", "Bank transfer"

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
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.amount} {self.currency}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise ValidationError("A recorded payment is never changed: record a refund.")
        super().save(*args, **kwargs)


class LedgerEntry(models.Model):
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

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise ValidationError("A ledger entry is never edited.")
        super().save(*args, **kwargs)


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
