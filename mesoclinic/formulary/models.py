"""Ingredients with their regulatory status, products made of them, and lots of each product."""

from __future__ import annotations

import datetime as dt
import tomllib
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from mesoclinic.accounts.models import Clinic, acting
from mesoclinic.protocols.vocab import Area, Indication, IngredientClass

INGREDIENTS_FILE = Path(__file__).resolve().parent / "ingredients.toml"

# An opened multi-dose vial is used for at most 28 days unless its maker says less; a clinic
# may shorten it for a product, never lengthen it.
BEYOND_USE_DAYS = 28
# What the stock draws for one allergy-test injection when the chart does not say how much.
TEST_DOSE_ML = Decimal("0.10")
BEYOND_USE_SOURCE = (
    "USP General Chapter <797>, Pharmaceutical Compounding: Sterile Preparations: an opened "
    "or needle-punctured multi-dose vial is used for at most 28 days unless the manufacturer "
    "specifies otherwise."
)


class Ingredient(models.Model):
    """One substance. `clinic` is empty for the reference ingredients that ship with mesoclinic
    (ingredients.toml); a clinic may add its own."""

    class Status(models.TextChoices):
        # SPEC "Regulatory status of ingredients (US FDA)".
        APPROVED_THIS_USE = "approved_this_use", "FDA-approved for this use"
        APPROVED_OTHER_USE = "approved_other_use", "FDA-approved for another use (off-label here)"
        UNAPPROVED = "unapproved", "Not FDA-approved"
        HOMEOPATHIC = "homeopathic", "Homeopathic: no homeopathic product is FDA-approved"
        DEVICE = "device", "Regulated as a device"

    clinic = models.ForeignKey(
        Clinic, models.CASCADE, null=True, blank=True, related_name="ingredients"
    )
    key = models.SlugField(max_length=60)
    name = models.CharField(max_length=120)
    klass = models.CharField("class", max_length=30, choices=IngredientClass.choices)
    fda_status = models.CharField(max_length=30, choices=Status.choices)
    approved_use = models.CharField(
        max_length=300, blank=True, help_text="The use the FDA approved, where there is one."
    )
    approved_indications = models.JSONField(
        default=list, blank=True, help_text="Indications the approval covers (approved_this_use)."
    )
    approved_areas = models.JSONField(
        default=list, blank=True, help_text="Areas the approval covers (approved_this_use)."
    )
    reference = models.TextField(help_text="Where the status comes from.")

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["clinic", "key"], name="ingredient_key_per_clinic"),
            models.UniqueConstraint(
                fields=["key"], condition=models.Q(clinic=None), name="reference_ingredient_key"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def status_for(self, indication: str | None, areas: list[str]) -> str:
        """The status that applies to one use. An approval counts as "for this use" only when
        the indication and every area treated are inside what was approved; otherwise the
        use is off-label (e.g. deoxycholic acid on the thighs)."""
        if self.fda_status != self.Status.APPROVED_THIS_USE:
            return self.fda_status
        inside = (indication in self.approved_indications if indication else False) and all(
            a in self.approved_areas for a in areas
        )
        return self.Status.APPROVED_THIS_USE if inside else self.Status.APPROVED_OTHER_USE


def do_load_reference_ingredients() -> int:
    """Create or update the shipped reference ingredients from ingredients.toml."""
    data = tomllib.loads(INGREDIENTS_FILE.read_text(encoding="utf-8"))
    valid_indications = set(Indication.values)
    valid_areas = set(Area.values)
    count = 0
    for key, row in data["ingredients"].items():
        assert set(row.get("approved_indications", [])) <= valid_indications, key
        assert set(row.get("approved_areas", [])) <= valid_areas, key
        Ingredient.objects.update_or_create(
            clinic=None,
            key=key,
            defaults={
                "name": row["name"],
                "klass": IngredientClass(row["class"]),
                "fda_status": Ingredient.Status(row["fda_status"]),
                "approved_use": row.get("approved_use", ""),
                "approved_indications": row.get("approved_indications", []),
                "approved_areas": row.get("approved_areas", []),
                "reference": row["reference"],
            },
        )
        count += 1
    return count


class Product(models.Model):
    """A mixture as the clinic buys it: ingredients at concentrations, from a supplier."""

    class Vial(models.TextChoices):
        SINGLE_DOSE = "single", "Single-dose vial"
        MULTI_DOSE = "multi", "Multi-dose vial"

    clinic = models.ForeignKey(Clinic, models.CASCADE, related_name="products")
    name = models.CharField(max_length=200)
    supplier = models.CharField(max_length=200)
    vial = models.CharField(max_length=10, choices=Vial.choices)
    ingredients: models.ManyToManyField[Ingredient, ProductIngredient] = models.ManyToManyField(
        Ingredient, through="ProductIngredient"
    )
    active = models.BooleanField(default=True)
    indications = models.JSONField(
        default=list,
        blank=True,
        help_text='Indication keys the product is for, e.g. ["cellulite"]; empty: any.',
    )
    # Stock (formulary.stock): what one vial holds, how long an opened multi-dose vial may be
    # used (BEYOND_USE_SOURCE), and the unopened vials at or below which it is reordered.
    vial_ml = models.DecimalField(
        "mL in a vial",
        max_digits=7,
        decimal_places=2,
        default=Decimal("10"),
        validators=[MinValueValidator(Decimal("0.1"))],
    )
    beyond_use_days = models.PositiveSmallIntegerField(
        "days an opened vial may be used",
        default=BEYOND_USE_DAYS,
        validators=[MinValueValidator(1), MaxValueValidator(BEYOND_USE_DAYS)],
    )
    reorder_vials = models.PositiveIntegerField("reorder at (unopened vials)", default=0)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["clinic", "name"], name="product_name_per_clinic"),
        ]

    def __str__(self) -> str:
        return self.name

    def is_for(self, indication: str) -> bool:
        """Whether the formulary lists the product for `indication`. A product that names no
        indication (an adjunct such as lidocaine, or one not yet described) is for any."""
        return not self.indications or indication in self.indications

    def indication_labels(self) -> list[str]:
        return [Indication(i).label for i in self.indications if i in Indication.values]


def products_for(clinic_id: int, indication: str) -> list[Product]:
    """The clinic's active products for one indication: a course's products by default."""
    return [
        p
        for p in Product.objects.filter(clinic_id=clinic_id, active=True).order_by("name")
        if p.is_for(indication)
    ]


class ProductIngredient(models.Model):
    product = models.ForeignKey(Product, models.CASCADE, related_name="components")
    ingredient = models.ForeignKey(Ingredient, models.PROTECT, related_name="+")
    concentration = models.DecimalField(
        max_digits=10, decimal_places=4, validators=[MinValueValidator(0)]
    )
    unit = models.CharField(max_length=20, default="mg/mL")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["product", "ingredient"], name="ingredient_once"),
        ]

    def __str__(self) -> str:
        return f"{self.ingredient} {self.concentration:g} {self.unit}"


class AlreadyRecalled(Exception):
    """A recall of a lot that is already recalled: the first recall stands."""

    def __init__(self, lot: Lot):
        self.lot = lot
        when = lot.recalled_at.astimezone(lot.product.clinic.tz) if lot.recalled_at else None
        said = f" on {when.day} {when:%b %Y} at {when:%H:%M}" if when else ""
        super().__init__(
            f"{lot} was already recalled{said} ({lot.recall_reason}). The first recall stands."
        )


class Lot(models.Model):
    product = models.ForeignKey(Product, models.PROTECT, related_name="lots")
    lot_number = models.CharField(max_length=60)
    expires_on = models.DateField()
    received_on = models.DateField(default=dt.date.today)
    recalled = models.BooleanField(default=False)
    recall_reason = models.TextField(blank=True)
    recalled_at = models.DateTimeField(null=True, blank=True)
    recalled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["product__name", "expires_on"]
        constraints = [
            models.UniqueConstraint(
                fields=["product", "lot_number"], name="lot_number_per_product"
            ),
            models.CheckConstraint(
                condition=models.Q(recalled=False) | ~models.Q(recall_reason=""),
                name="recall_has_reason",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.product} lot {self.lot_number}"

    @property
    def clinic_id(self) -> int:
        return self.product.clinic_id

    def is_expired_on(self, day: dt.date) -> bool:
        # A lot may be used on its expiry date and not after.
        return day > self.expires_on

    def do_recall(self, reason: str, user: object) -> None:
        """Recall the lot, once. The row is locked, so of two recalls at once the second finds
        the first and is refused: the first recall's reason, who and when stand."""
        if not reason.strip():
            raise ValueError("A recall needs a reason.")
        locked = Lot.objects.select_for_update().filter(pk=self.pk).first()
        if locked is not None and locked.recalled:
            raise AlreadyRecalled(locked)
        self.recalled = True
        self.recall_reason = reason.strip()
        self.recalled_at = timezone.now()
        self.recalled_by = acting(user)
        self.save(update_fields=["recalled", "recall_reason", "recalled_at", "recalled_by"])


class Vial(models.Model):
    """One vial of a lot, from the moment it is opened. A multi-dose vial may be used until its
    beyond-use time; a single-dose vial for one patient only (`patient`, set at its first
    use). Closed when it is used up or thrown away."""

    class Closed(models.TextChoices):
        USED_UP = "used_up", "Used up"
        BEYOND_USE = "beyond_use", "Past its beyond-use date"
        CONTAMINATED = "contaminated", "Contaminated or damaged"
        OTHER = "other", "Other reason"

    lot = models.ForeignKey(Lot, models.PROTECT, related_name="vials")
    number = models.PositiveIntegerField()
    single_dose = models.BooleanField()
    opened_at = models.DateTimeField()
    opened_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.PROTECT, related_name="+")
    # Multi-dose only: opened_at plus the product's beyond_use_days, fixed when it is opened.
    beyond_use_at = models.DateTimeField(null=True, blank=True)
    patient = models.ForeignKey(
        "patients.Patient", models.PROTECT, null=True, blank=True, related_name="+"
    )
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.PROTECT, null=True, blank=True, related_name="+"
    )
    closed_reason = models.CharField(max_length=20, choices=Closed.choices, blank=True)
    closed_note = models.TextField(blank=True)

    class Meta:
        ordering = ["lot", "number"]
        constraints = [
            models.UniqueConstraint(fields=["lot", "number"], name="vial_number_per_lot"),
            models.CheckConstraint(
                condition=models.Q(single_dose=True, beyond_use_at__isnull=True)
                | models.Q(single_dose=False, beyond_use_at__isnull=False),
                name="vial_beyond_use_when_multi_dose",
            ),
            models.CheckConstraint(
                condition=models.Q(closed_at__isnull=True, closed_reason="")
                | (models.Q(closed_at__isnull=False) & ~models.Q(closed_reason="")),
                name="vial_closed_with_reason",
            ),
        ]

    def __str__(self) -> str:
        return f"vial {self.number} of {self.lot}"

    @property
    def label(self) -> str:
        return f"Vial {self.number} of {self.lot}"


class StockMovement(models.Model):
    """One change to a lot's stock, never edited: a lot's unopened vials and its mL on hand
    are the sums of its movements (formulary.stock)."""

    class Kind(models.TextChoices):
        RECEIVED = "received", "Received"
        OPENED = "opened", "Vial opened"
        SESSION = "session", "Session"
        ALLERGY_TEST = "allergy_test", "Allergy test"
        WASTE = "waste", "Waste"
        ADJUSTMENT = "adjustment", "Adjustment"
        COUNT = "count", "Stock count"

    lot = models.ForeignKey(Lot, models.PROTECT, related_name="movements")
    vial = models.ForeignKey(Vial, models.PROTECT, null=True, blank=True, related_name="movements")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    # Signed changes: unopened vials, and mL in the lot's unopened and open vials together.
    vials = models.IntegerField(default=0)
    ml = models.DecimalField(max_digits=9, decimal_places=2, default=Decimal("0"))
    # A delivery's cost of one vial, in the clinic's currency (Clinic.currency), when it was
    # given: the stock's value at cost (formulary.stock.value). Three decimal places hold every
    # currency's minor unit, as billing's amounts do.
    vial_cost = models.DecimalField(
        "cost of a vial", max_digits=14, decimal_places=3, null=True, blank=True
    )
    reason = models.TextField(blank=True)
    session = models.ForeignKey(
        "courses.Session", models.PROTECT, null=True, blank=True, related_name="+"
    )
    allergy_test = models.ForeignKey(
        "courses.AllergyTest", models.PROTECT, null=True, blank=True, related_name="+"
    )
    at = models.DateTimeField(default=timezone.now)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, models.PROTECT, related_name="+")

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["lot", "at"])]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(kind__in=["waste", "adjustment", "count"])
                | ~models.Q(reason=""),
                name="stock_change_has_reason",
            ),
            models.CheckConstraint(
                condition=models.Q(vial_cost__isnull=True)
                | models.Q(kind="received", vial_cost__gte=0),
                name="stock_cost_only_on_delivery",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.vials} vials, {self.ml} mL of {self.lot}"


class StockAlertEmail(models.Model):
    """The day's stock alerts (formulary.stock.alerts and the lots near expiry), emailed once to
    the clinic's managers (formulary/alerts.py). Sent through the same kind of outbox as
    reminders (lib/outbox.py). The unique constraint on (clinic, day) makes it go once a day
    however many workers plan it; a day with nothing to alert is skipped, and sends nothing."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"

    clinic = models.ForeignKey(Clinic, models.CASCADE, related_name="stock_alert_emails")
    day = models.DateField(help_text="The clinic's own date the alerts are for.")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    skip_reason = models.CharField(max_length=100, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claim_token = models.CharField(max_length=32, blank=True)
    claimed_by = models.CharField(max_length=100, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    sent_to = models.CharField(max_length=1000, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="stock_alert_status_next")
        ]
        constraints = [
            models.UniqueConstraint(fields=["clinic", "day"], name="one_stock_alert_email_a_day"),
        ]

    def __str__(self) -> str:
        return f"stock alerts of clinic {self.clinic_id} for {self.day} ({self.status})"
