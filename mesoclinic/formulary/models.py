"""Ingredients with their regulatory status, products made of them, and lots of each product."""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone

from mesoclinic.accounts.models import Clinic, acting
from mesoclinic.protocols.vocab import Area, Indication, IngredientClass

INGREDIENTS_FILE = Path(__file__).resolve().parent / "ingredients.toml"


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
