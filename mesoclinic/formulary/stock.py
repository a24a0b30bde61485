"""A lot's stock and its opened vials.

Stock is a ledger: every change is a StockMovement that is never edited, and a lot's unopened
vials and mL on hand are the sums of its movements. Receiving vials adds to both; opening a
vial moves one vial from unopened to open (its mL stay on hand); every injection and allergy
test draws its volume from the vial it came from; waste, adjustments and counts carry a reason.
A delivery may record what one vial cost, and the stock's value at cost follows (`value`).

The vial an injection is drawn from is chosen here, for the session gate and for charting
alike (`vial_plan`): one given by the caller, or else the oldest vial of the lot open and
within its beyond-use time when the injection is given (multi-dose), or a new vial
(single-dose, or no such vial). The
gate (courses.rules.vial_problems) then refuses a multi-dose vial past its beyond-use time and
a single-dose vial already used for another patient, on every write path, because every path
charts through courses.actions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max, Q, Sum
from django.utils import timezone

from mesoclinic.billing import money
from mesoclinic.courses import rules
from mesoclinic.formulary.models import Lot, Product, StockMovement, Vial

ZERO = Decimal("0")
CENT = Decimal("0.01")
# A lot is near its expiry date this many days before it (Today and the stock alerts' email).
NEAR_EXPIRY_DAYS = 30


def _ml(value: Decimal | None) -> Decimal:
    """A sum of mL as two decimals: SQLite sums decimals as floats."""
    return Decimal(value or 0).quantize(CENT)


@dataclass
class LotStock:
    """What is left of one lot: unopened vials, mL in them and in its open vials together,
    and the open vials with what each still holds."""

    lot: Lot
    unopened: int = 0
    ml: Decimal = ZERO
    open_vials: list[OpenVial] = field(default_factory=list)

    @property
    def low(self) -> bool:
        """At or below the product's reorder level (none set: never low)."""
        level = self.lot.product.reorder_vials
        return level > 0 and self.unopened <= level


@dataclass(frozen=True)
class OpenVial:
    vial: Vial
    left_ml: Decimal


def on_hand(lots: Iterable[Lot]) -> dict[int, LotStock]:
    """The stock of each lot, by lot id, in two queries whatever the number of lots."""
    chosen = {lot.pk: lot for lot in lots}
    stock = {pk: LotStock(lot) for pk, lot in chosen.items()}
    sums = (
        StockMovement.objects.filter(lot_id__in=chosen)
        .values("lot_id")
        .annotate(vials=Sum("vials"), ml=Sum("ml"))
    )
    for row in sums:
        stock[row["lot_id"]].unopened = row["vials"] or 0
        stock[row["lot_id"]].ml = _ml(row["ml"])
    open_vials = (
        Vial.objects.filter(lot_id__in=chosen, closed_at__isnull=True)
        .annotate(drawn=Sum("movements__ml"))
        .order_by("lot_id", "opened_at", "number")
    )
    for vial in open_vials:
        lot = chosen[vial.lot_id]
        vial.lot = lot
        left = lot.product.vial_ml + _ml(vial.drawn)
        stock[vial.lot_id].open_vials.append(OpenVial(vial, max(left, ZERO)))
    return stock


def left_in(vial: Vial) -> Decimal:
    """The mL still in an opened vial: what it held less what was drawn from it."""
    drawn = _ml(vial.movements.aggregate(ml=Sum("ml"))["ml"])
    return max(vial.lot.product.vial_ml + drawn, ZERO)


# Changes an operator makes: each in one transaction, audited by the caller.


def receive(
    lot: Lot,
    vials: int,
    *,
    user: Any,
    reason: str = "",
    at: dt.datetime | None = None,
    vial_cost: Decimal | None = None,
) -> StockMovement:
    """`vials` new vials of the lot came in, at `vial_cost` each in the clinic's currency when
    it is known."""
    if vials < 1:
        raise ValidationError({"vials": "must be at least 1."})
    if vial_cost is not None:
        check_cost(vial_cost, lot.product.clinic.currency)
    return StockMovement.objects.create(
        lot=lot,
        kind=StockMovement.Kind.RECEIVED,
        vials=vials,
        ml=vials * lot.product.vial_ml,
        vial_cost=vial_cost,
        reason=reason.strip(),
        at=at or timezone.now(),
        by=user,
    )


def check_cost(cost: Decimal, currency: str) -> None:
    """A vial's cost is 0 or more, and exact in the currency's minor unit (cents for USD, whole
    yen): it is never rounded on the way in."""
    if cost < 0:
        raise ValidationError({"vial_cost": "cannot be less than 0."})
    if cost != money.rounded(cost, currency):
        places = money.places(currency)
        exact = "is a whole number" if not places else f"has at most {places} decimal places"
        raise ValidationError({"vial_cost": f"a cost in {currency} {exact}."})


def record_waste(lot: Lot, ml: Decimal, reason: str, *, user: Any) -> StockMovement:
    """mL of the lot thrown away outside a vial's closing (spilled, a syringe not used)."""
    if ml <= 0:
        raise ValidationError({"ml": "must be more than 0."})
    if not reason.strip():
        raise ValidationError({"reason": "waste needs a reason."})
    return StockMovement.objects.create(
        lot=lot, kind=StockMovement.Kind.WASTE, ml=-ml, reason=reason.strip(), by=user
    )


def record_count(lot: Lot, counted: int, reason: str, *, user: Any) -> StockMovement | None:
    """A stock count of the lot's unopened vials: the difference from what the ledger says
    becomes a count movement, so the ledger then agrees with the shelf. None when it already
    did. The lot's row is locked, so two counts at once are reconciled one after the other."""
    if counted < 0:
        raise ValidationError({"counted": "cannot be less than 0."})
    if not reason.strip():
        raise ValidationError({"reason": "a count needs a note (who counted, where)."})
    with transaction.atomic():
        Lot.objects.select_for_update().filter(pk=lot.pk).first()
        expected = lot.movements.aggregate(v=Sum("vials"))["v"] or 0
        difference = counted - expected
        if not difference:
            return None
        return StockMovement.objects.create(
            lot=lot,
            kind=StockMovement.Kind.COUNT,
            vials=difference,
            ml=difference * lot.product.vial_ml,
            reason=reason.strip(),
            by=user,
        )


def open_vial(lot: Lot, *, user: Any, at: dt.datetime | None = None) -> Vial:
    """Open the next vial of the lot. The lot's row is locked while it is numbered, so two
    vials opened at once get different numbers."""
    at = at or timezone.now()
    if lot.recalled:
        raise ValidationError({"lot": f"{lot} has been recalled; no vial of it may be opened."})
    with transaction.atomic():
        Lot.objects.select_for_update().filter(pk=lot.pk).first()
        number = (lot.vials.aggregate(n=Max("number"))["n"] or 0) + 1
        product: Product = lot.product
        single = product.vial == Product.Vial.SINGLE_DOSE
        vial = Vial.objects.create(
            lot=lot,
            number=number,
            single_dose=single,
            opened_at=at,
            opened_by=user,
            beyond_use_at=None if single else at + dt.timedelta(days=product.beyond_use_days),
        )
        StockMovement.objects.create(
            lot=lot, vial=vial, kind=StockMovement.Kind.OPENED, vials=-1, at=at, by=user
        )
    return vial


def close_vial(
    vial: Vial, reason: str, *, user: Any, note: str = "", at: dt.datetime | None = None
) -> Vial:
    """Close an opened vial: used up, or thrown away with what is left in it as waste."""
    if reason not in Vial.Closed.values:
        raise ValidationError({"reason": "choose why the vial is closed."})
    if reason == Vial.Closed.OTHER and not note.strip():
        raise ValidationError({"note": "say why the vial is closed."})
    at = at or timezone.now()
    with transaction.atomic():
        locked = Vial.objects.select_for_update().get(pk=vial.pk)
        if locked.closed_at is not None:
            raise ValidationError({"vial": f"{vial.label} is already closed."})
        left = left_in(locked)
        if left > 0:
            StockMovement.objects.create(
                lot=vial.lot,
                vial=vial,
                kind=StockMovement.Kind.WASTE,
                ml=-left,
                reason=f"{Vial.Closed(reason).label}. {note.strip()}".strip(),
                at=at,
                by=user,
            )
        locked.closed_at, locked.closed_by = at, user
        locked.closed_reason, locked.closed_note = reason, note.strip()
        locked.save(update_fields=["closed_at", "closed_by", "closed_reason", "closed_note"])
    vial.closed_at, vial.closed_reason, vial.closed_note = at, reason, note.strip()
    return vial


# Which vial an injection is drawn from, for the gate and for charting.


@dataclass(frozen=True)
class Draw:
    """One lot drawn from at one moment: the vial (None: a new one will be opened)."""

    lot: Lot
    vial: Vial | None


def vial_plan(
    lots: Iterable[Lot],
    moment: dt.datetime,
    chosen: dict[int, Vial] | None = None,
    *,
    lock: bool = False,
    fresh: Iterable[int] = (),
) -> dict[int, Draw]:
    """The vial each lot is drawn from at `moment`, by lot id: the one chosen, else a new one
    for the lots in `fresh` (the caller asked to open a new vial), else for a multi-dose
    product the oldest vial of the lot open then, not closed and within its beyond-use time,
    else none (a new vial, opened for the injection). A vial past its time is never chosen for
    the caller: only a caller who names it, because it was drawn from, is refused. `lock` locks
    the vials read, for charting."""
    chosen = dict(chosen or {})
    fresh = set(fresh)
    by_lot = {lot.pk: lot for lot in lots}
    wanted = [
        pk
        for pk, lot in by_lot.items()
        if pk not in chosen and pk not in fresh and lot.product.vial == Product.Vial.MULTI_DOSE
    ]
    found: dict[int, Vial] = {}
    if wanted:
        candidates = Vial.objects.filter(
            lot_id__in=wanted,
            closed_at__isnull=True,
            opened_at__lte=moment,
            beyond_use_at__gt=moment,
        ).order_by("opened_at", "number")
        if lock:
            candidates = candidates.select_for_update()
        for vial in candidates:
            found.setdefault(vial.lot_id, vial)
    if lock and chosen:
        for vial in Vial.objects.select_for_update().filter(pk__in=[v.pk for v in chosen.values()]):
            chosen[vial.lot_id] = vial
    plan = {}
    for pk, lot in by_lot.items():
        picked = chosen.get(pk) or found.get(pk)
        if picked is not None:
            picked.lot = lot
        plan[pk] = Draw(lot, picked)
    return plan


def check_chosen(vials: dict[int, Vial], moment: dt.datetime) -> None:
    """A vial the caller names (by the lot id of its injection) must be of that lot, and open
    at `moment`."""
    for lot_id, vial in vials.items():
        if vial.lot_id != lot_id:
            raise ValidationError({"vial": f"vial {vial.pk} is not of the lot injected."})
        if vial.closed_at is not None:
            why = vial.get_closed_reason_display().lower()
            raise ValidationError({"vial": f"{vial.label} is closed ({why})."})
        if vial.opened_at > moment:
            raise ValidationError({"vial": f"{vial.label} was not yet open then."})


def vial_facts(plan: dict[int, Draw], patient_id: int) -> tuple[rules.VialFacts, ...]:
    """What the session gate needs to know of the vials in `plan` for `patient_id`."""
    vials = [d.vial for d in plan.values() if d.vial is not None]
    if not vials:
        return ()
    # A single-dose vial is tied to its first patient (Vial.patient).
    others = {v.pk for v in vials if v.single_dose and v.patient_id not in (None, patient_id)}
    return tuple(
        rules.VialFacts(
            label=v.label,
            opened_at=v.opened_at,
            beyond_use_at=v.beyond_use_at,
            beyond_use_days=v.lot.product.beyond_use_days,
            single_dose=v.single_dose,
            other_patient=v.pk in others,
        )
        for v in vials
    )


def draw(
    plan: dict[int, Draw],
    volumes: Iterable[tuple[int, Decimal]],
    *,
    patient_id: int,
    moment: dt.datetime,
    user: Any,
    session: Any = None,
    allergy_test: Any = None,
) -> dict[int, Vial]:
    """Draw each (lot id, mL) from its lot's vial in `plan`, opening the vials it lacks, and
    tie each single-dose vial to the patient. Returns the vial of each lot. The caller holds
    a transaction and locked the vials (vial_plan(lock=True))."""
    vials: dict[int, Vial] = {}
    for lot_id, d in plan.items():
        vial = d.vial or open_vial(d.lot, user=user, at=moment)
        vial.lot = d.lot
        if vial.single_dose and vial.patient_id is None:
            Vial.objects.filter(pk=vial.pk, patient__isnull=True).update(patient_id=patient_id)
            vial.patient_id = patient_id
        vials[lot_id] = vial
    kind = StockMovement.Kind.SESSION if session is not None else StockMovement.Kind.ALLERGY_TEST
    totals: dict[int, Decimal] = {}
    for lot_id, ml in volumes:
        totals[lot_id] = totals.get(lot_id, ZERO) + ml
    StockMovement.objects.bulk_create(
        StockMovement(
            lot_id=lot_id,
            vial=vials[lot_id],
            kind=kind,
            ml=-ml,
            session=session,
            allergy_test=allergy_test,
            at=moment,
            by=user,
        )
        for lot_id, ml in totals.items()
    )
    return vials


@dataclass(frozen=True)
class StockAlerts:
    vials: list[Vial]  # open multi-dose vials near or past their beyond-use time
    low: list[Product]  # each with `unopened`, its usable unopened vials

    @property
    def total(self) -> int:
        return len(self.vials) + len(self.low)


def alerts(clinic_id: int, now: dt.datetime, *, within_days: int = 3) -> StockAlerts:
    """Stock that needs someone, in two queries: open multi-dose vials within `within_days`
    of their beyond-use time or past it, and active products whose unopened vials of usable
    lots (in date, not recalled) are at or below their reorder level."""
    vials = list(
        Vial.objects.filter(
            lot__product__clinic_id=clinic_id,
            closed_at__isnull=True,
            beyond_use_at__lte=now + dt.timedelta(days=within_days),
        )
        .select_related("lot__product")
        .order_by("beyond_use_at", "id")
    )
    usable = Q(lots__recalled=False, lots__expires_on__gte=now.date())
    products = (
        Product.objects.filter(clinic_id=clinic_id, active=True, reorder_vials__gt=0)
        .annotate(unopened=Sum("lots__movements__vials", filter=usable, default=0))
        .order_by("name")
    )
    return StockAlerts(vials, [p for p in products if p.unopened <= p.reorder_vials])


def expiring(
    clinic_id: int, today: dt.date, *, within_days: int = NEAR_EXPIRY_DAYS
) -> list[LotStock]:
    """Lots, not recalled, that expire within `within_days` of `today` or have expired, and
    still have stock by their ledger (unopened vials, or mL in open vials), soonest first. A lot
    with nothing left needs nobody; a recalled lot has its own notices."""
    lots = Lot.objects.filter(
        product__clinic_id=clinic_id,
        recalled=False,
        expires_on__lte=today + dt.timedelta(days=within_days),
    ).select_related("product")
    found = on_hand(lots)
    return sorted(
        (s for s in found.values() if s.unopened > 0 or s.ml > 0),
        key=lambda s: (s.lot.expires_on, s.lot.product.name, s.lot.lot_number),
    )


# The stock's value at cost: the manager's stock page and GET /stock.


@dataclass
class LotValue:
    """One usable lot's stock and its value at cost. `paid` and `bought` are what its
    deliveries with a cost paid, and for how many vials: its cost of a vial is their ratio."""

    stock: LotStock
    counted: bool  # a delivery or a count of the lot is on record
    paid: Decimal | None  # None: no delivery of the lot recorded a cost
    bought: int
    currency: str
    now: dt.datetime

    @property
    def lot(self) -> Lot:
        return self.stock.lot

    @property
    def open_ml(self) -> Decimal:
        return _ml(sum((o.left_ml for o in self.stock.open_vials), ZERO))

    @property
    def vial_cost(self) -> Decimal | None:
        """The cost of one vial, rounded to the currency's minor unit, for display."""
        if self.paid is None:
            return None
        return money.rounded(self.paid / self.bought, self.currency)

    @property
    def has_stock(self) -> bool:
        return self.stock.unopened > 0 or self.open_ml > 0

    @property
    def value(self) -> Decimal | None:
        """Unopened vials at their cost, and the mL left in each open vial at its share of a
        vial's cost (an open vial past its beyond-use time counts for nothing: it is thrown
        away), rounded once to the currency's minor unit. None when the lot has stock and no
        cost; 0 when it has no stock."""
        if not self.has_stock:
            return money.rounded(ZERO, self.currency)
        if self.paid is None:
            return None
        per_ml = self.lot.product.vial_ml
        in_time = sum(
            (
                o.left_ml
                for o in self.stock.open_vials
                if o.vial.beyond_use_at is None or o.vial.beyond_use_at > self.now
            ),
            ZERO,
        )
        # Multiplied before it is divided, so that what was bought and not used is worth
        # exactly what was paid for it.
        exact = (self.stock.unopened * per_ml + in_time) * self.paid / (self.bought * per_ml)
        return money.rounded(exact, self.currency)


@dataclass
class ProductValue:
    product: Product
    lots: list[LotValue]

    @property
    def unopened(self) -> int:
        return sum(v.stock.unopened for v in self.lots)

    @property
    def open_ml(self) -> Decimal:
        return _ml(sum((v.open_ml for v in self.lots), ZERO))

    @property
    def value(self) -> Decimal:
        """The sum of its lots' values that are known (each already rounded), so that the
        page's and the CSV's rows add up to their total."""
        return sum((v.value for v in self.lots if v.value is not None), ZERO)

    @property
    def uncosted(self) -> list[LotValue]:
        """Its lots with stock whose cost is not known: left out of the value."""
        return [v for v in self.lots if v.value is None]

    @property
    def low(self) -> bool:
        """At or below its reorder level, as Today says (no level set: never low)."""
        level = self.product.reorder_vials
        return level > 0 and self.unopened <= level


@dataclass
class StockValue:
    currency: str
    products: list[ProductValue]

    @property
    def total(self) -> Decimal:
        return sum((p.value for p in self.products), ZERO)

    @property
    def uncosted(self) -> int:
        return sum(len(p.uncosted) for p in self.products)

    @property
    def lots(self) -> list[LotValue]:
        return [v for p in self.products for v in p.lots]


def value(clinic: Any, products: Iterable[Product], now: dt.datetime) -> StockValue:
    """Each product's usable stock (lots in date on the clinic's today and not recalled: what
    Today's reorder warning counts too) and its value at cost, in five queries whatever the
    number of lots. Active products are all listed; an inactive one only while it has stock."""
    today = now.astimezone(clinic.tz).date()
    chosen = {p.pk: p for p in products}
    lots = list(
        Lot.objects.filter(product_id__in=chosen, recalled=False, expires_on__gte=today).order_by(
            "expires_on", "lot_number"
        )
    )
    for lot in lots:
        lot.product = chosen[lot.product_id]
    by_product: dict[int, list[LotValue]] = {pk: [] for pk in chosen}
    for found in lot_values(lots, clinic.currency, now).values():
        by_product[found.lot.product_id].append(found)
    rows = [ProductValue(p, by_product[p.pk]) for p in sorted(chosen.values(), key=_by_name)]
    return StockValue(
        clinic.currency,
        [r for r in rows if r.product.active or any(v.has_stock for v in r.lots)],
    )


def lot_values(lots: list[Lot], currency: str, now: dt.datetime) -> dict[int, LotValue]:
    """Each lot's stock and value at cost, by lot id, in the order given, in four queries.

    A lot's cost of a vial is what its deliveries with a cost paid, divided by their vials:
    most lots come in one delivery at one price, and otherwise it is their average weighted
    by the vials of each. Summed here in Decimal, since SQLite sums decimals as floats."""
    stock = on_hand(lots)
    counted = set(
        StockMovement.objects.filter(
            lot__in=lots, kind__in=[StockMovement.Kind.RECEIVED, StockMovement.Kind.COUNT]
        ).values_list("lot_id", flat=True)
    )
    paid: dict[int, tuple[Decimal, int]] = {}
    deliveries = StockMovement.objects.filter(
        lot__in=lots, kind=StockMovement.Kind.RECEIVED, vial_cost__isnull=False
    ).values_list("lot_id", "vials", "vial_cost")
    for lot_id, vials, cost in deliveries:
        assert cost is not None  # filtered above
        total, bought = paid.get(lot_id, (ZERO, 0))
        paid[lot_id] = (total + vials * cost, bought + vials)
    out = {}
    for lot in lots:
        spent, bought = paid.get(lot.pk, (ZERO, 0))
        out[lot.pk] = LotValue(
            stock[lot.pk], lot.pk in counted, spent if bought else None, bought, currency, now
        )
    return out


def _by_name(product: Product) -> tuple[str, int]:
    return (product.name.casefold(), product.pk)
