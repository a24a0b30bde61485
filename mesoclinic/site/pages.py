"""What the public site says, read from the clinic's data: its protocols (every statement with
the articles it comes from, both sides where they disagree), the regulatory status of each
product from the formulary, its practitioners' licences, and the photos patients allowed
for marketing.

Nothing here is written by hand about a treatment: each statement is a protocol fact, in the
words protocols/describe.py gives it, or a formulary status."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db.models import QuerySet

from mesoclinic.accounts.models import Clinic, Membership, PractitionerLicence, User
from mesoclinic.formulary.models import Ingredient, Product
from mesoclinic.outcomes import photo_actions
from mesoclinic.outcomes.models import Photo
from mesoclinic.protocols.describe import (
    Choice,
    fact_choices,
    get,
    kind_of,
    source_words,
    words,
)
from mesoclinic.protocols.models import ClinicProtocol
from mesoclinic.protocols.vocab import SEEDS, Area, Indication, name_sources

# Said once on each protocol page, above what the articles say.
ARTICLES_HEADING = "What published clinic articles say"


@dataclass
class Option:
    """One side of a statement: its value, the articles that give it, and whether the clinic
    chose it."""

    value: str
    sources: list[str]
    articles: int
    note: str = ""
    chosen: bool = True
    # The clinic's own figure where no source gives one ("no source" in the protocol data).
    own: bool = False

    @property
    def articles_words(self) -> str:
        if self.articles == 0:
            return "no article gives a figure"
        if self.articles == 1:
            return "one article"
        return f"{self.articles} articles"


@dataclass
class Statement:
    label: str
    options: list[Option]

    @property
    def disputed(self) -> bool:
        return len(self.options) > 1

    @property
    def chosen(self) -> Option:
        return next((o for o in self.options if o.chosen), self.options[0])


@dataclass
class Part:
    title: str
    statements: list[Statement] = field(default_factory=list)


def _option(choice: Choice) -> Option:
    names = [s.text for s in choice.sources if s.kind != "none"]
    articles = sum(1 for s in choice.sources if s.kind == "seed")
    own = any(s.kind == "none" for s in choice.sources)
    return Option(choice.value, names, articles, choice.note, choice.chosen, own)


def _fact(document: dict[str, Any], path: tuple[str | int, ...], label: str) -> Statement | None:
    fact = get(document, path)
    if not isinstance(fact, dict):
        return None
    return Statement(label, [_option(c) for c in fact_choices(fact, kind_of(path))])


def _text(label: str, text: str, sources: Any) -> Statement:
    found = source_words(sources)
    articles = sum(1 for s in found if s.kind == "seed")
    names = [s.text for s in found if s.kind != "none"]
    own = any(s.kind == "none" for s in found)
    return Statement(label, [Option(name_sources(text), names, articles, own=own)])


def _chosen(fact: Any) -> dict[str, Any] | None:
    if not isinstance(fact, dict):
        return None
    if "options" in fact:
        option = fact["options"].get(fact.get("choose"))
        return option if isinstance(option, dict) else None
    return fact


def _course_cost(document: dict[str, Any]) -> list[Statement]:
    """A whole course's cost: the clinic's chosen number of sessions times its chosen price
    per session, citing the sources of both."""
    sessions, price = _chosen(document.get("sessions")), _chosen(document.get("price_per_session"))
    try:
        n, money = sessions["value"], price["value"]  # type: ignore[index]
        low, high = n["min"] * money["min"], n["max"] * money["max"]
        value = words("money", {"min": low, "max": high, "currency": money["currency"]})
        per = words("money", money)
        count = words("sessions", n)
    except (KeyError, TypeError):
        return []
    found = source_words([*sessions.get("source", []), *price.get("source", [])])  # type: ignore[union-attr]
    names = list(dict.fromkeys(s.text for s in found))
    articles = len({s.file for s in found if s.kind == "seed"})
    text = f"{value} ({count} at {per} each)"
    return [Statement("A whole course", [Option(text, names, articles)])]


def protocol_parts(document: dict[str, Any]) -> list[Part]:
    """A protocol, as a visitor reads it: what it treats, the course and when results show,
    the cost, before a session, side effects and how long each lasts, aftercare. The
    clinic's internal settings (safety gates, visit lengths, notes for the record) are not
    shown."""

    def facts(*rows: tuple[tuple[str | int, ...], str]) -> list[Statement]:
        return [s for path, label in rows if (s := _fact(document, path, label)) is not None]

    results = []
    for i, m in enumerate(document.get("milestones", [])):
        label = f"{m.get('label', 'Results')}: after"
        if s := _fact(document, ("milestones", i, "after_sessions"), label):
            results.append(s)

    before = [
        _text("Before a session", ins["text"], ins["source"])
        for ins in get(document, ("before_session", "instructions")) or []
    ]

    effects = []
    for i, effect in enumerate(document.get("side_effects", [])):
        label = str(effect.get("label", ""))
        if effect.get("expected_hours") is not None:
            s = _fact(document, ("side_effects", i, "expected_hours"), f"{label}: expected to last")
            if s is not None:
                effects.append(s)
        elif effect.get("urgent"):
            effects.append(
                _text(
                    label,
                    "Not an expected effect: call the clinic at once.",
                    effect.get("source"),
                )
            )

    aftercare = []
    for rule in document.get("aftercare", []):
        text = str(rule.get("text", ""))
        if rule.get("areas"):
            areas = ", ".join(str(dict(Area.choices).get(a, a)).lower() for a in rule["areas"])
            text += f" (after treatment of: {areas})"
        hours = rule.get("hours")
        if isinstance(hours, dict):
            options = [_option(c) for c in fact_choices(hours, "hours")]
            for o in options:
                o.value = text.replace("{until}", f"{o.value} after the session")
            aftercare.append(Statement("Aftercare", options))
        else:
            aftercare.append(_text("Aftercare", text, rule.get("source")))

    return [
        Part("What it treats", facts((("indications",), "Used for"), (("areas",), "Areas"))),
        Part(
            "The course",
            facts(
                (("sessions",), "Number of sessions"),
                (("cadence", "days"), "How often"),
            )
            + results
            + facts(
                (("durability",), "How long results last"),
                (("maintenance_months",), "Maintenance"),
            ),
        ),
        Part(
            "Cost",
            facts((("price_per_session",), "Price per session"))
            + _course_cost(document)
            + facts(
                (("comparison",), "For comparison"),
                (("insurance",), "Insurance"),
            ),
        ),
        Part("Before a session", before),
        Part(
            "Side effects",
            facts((("downtime",), "Downtime")) + effects,
        ),
        Part("Aftercare", aftercare),
    ]


def disagreements(parts: list[Part]) -> list[Statement]:
    return [s for p in parts for s in p.statements if s.disputed]


def cited_articles(document: dict[str, Any]) -> list[str]:
    """The titles of the articles a protocol's public statements cite, in order."""
    found: set[str] = set()
    for part in protocol_parts(document):
        for s in part.statements:
            for o in s.options:
                found.update(o.sources)
    from mesoclinic.protocols.vocab import SEED_LABELS

    return [SEED_LABELS[f] for f in SEEDS if SEED_LABELS[f] in found]


def protocols_of(clinic: Clinic) -> list[ClinicProtocol]:
    """The latest version of each protocol the clinic offers, by name."""
    return sorted(ClinicProtocol.current_for_clinic(clinic), key=lambda p: p.name)


# Regulatory status, from the formulary.

# The public wording of each status. Only "approved for this use" says the product is
# approved, and only when the formulary holds that approval for the clinic's use.
STATUS_WORDS = {
    Ingredient.Status.APPROVED_THIS_USE: "FDA-approved for this use: {use}.",
    Ingredient.Status.APPROVED_OTHER_USE: "Off-label here: not FDA-approved for this use. "
    "Its approval is for another use ({use}).",
    Ingredient.Status.UNAPPROVED: "Not FDA-approved.",
    Ingredient.Status.HOMEOPATHIC: "A homeopathic preparation: not FDA-approved, as no "
    "homeopathic product is.",
    Ingredient.Status.DEVICE: "Regulated as a device: not FDA-approved as a medicine.",
}


@dataclass
class IngredientStatus:
    name: str
    status: str
    words: str


@dataclass
class ProductStatus:
    name: str
    uses: str
    ingredients: list[IngredientStatus]


def _areas_by_indication(clinic: Clinic) -> dict[str, set[str]]:
    areas: dict[str, set[str]] = {}
    for p in protocols_of(clinic):
        for indication in p.spec.indications.v:
            areas.setdefault(str(indication), set()).update(str(a) for a in p.spec.areas.v)
    return areas


def product_statuses(clinic: Clinic) -> list[ProductStatus]:
    """Each active product with each ingredient's status for the use the clinic makes of it:
    an approval counts only when every indication the product is used for, on every area the
    clinic's protocols treat for it, is inside what was approved (Ingredient.status_for)."""
    areas = _areas_by_indication(clinic)
    out = []
    products = Product.objects.filter(clinic=clinic, active=True).prefetch_related(
        "components__ingredient"
    )
    for product in products.order_by("name"):
        uses = list(product.indications) or sorted(areas)
        rows = []
        for component in product.components.all():
            ingredient = component.ingredient
            statuses = {ingredient.status_for(u, sorted(areas.get(u, set()))) for u in uses} or {
                ingredient.status_for(None, [])
            }
            # The least approved status of all the uses is the one that holds for each.
            order = list(Ingredient.Status.values)
            status = max(statuses, key=order.index)
            if status == Ingredient.Status.APPROVED_THIS_USE and len(statuses) > 1:
                status = Ingredient.Status.APPROVED_OTHER_USE
            words = STATUS_WORDS[Ingredient.Status(status)].format(
                use=ingredient.approved_use.rstrip(".") or "another use"
            )
            rows.append(IngredientStatus(ingredient.name, status, words))
        labels = [Indication(u).label for u in product.indications if u in Indication.values]
        out.append(ProductStatus(product.name, ", ".join(labels) or "any treatment", rows))
    return out


# Practitioners.


@dataclass
class Practitioner:
    name: str
    licences: list[PractitionerLicence]
    today: dt.date
    # The https address of their photo, set on their staff page, or "" for none.
    photo_url: str = ""

    def expired(self, licence: PractitionerLicence) -> bool:
        return not licence.is_valid_on(self.today)


def practitioners(clinic: Clinic, today: dt.date) -> list[Practitioner]:
    """The clinic's active clinical staff with their current licences."""
    members = (
        Membership.objects.filter(
            clinic=clinic, role__in=[Membership.Role.MANAGER, Membership.Role.PRACTITIONER]
        )
        .filter(user__is_active=True)
        .select_related("user")
    )
    photo_of = {m.user_id: m.photo_url for m in members}
    users: list[User] = sorted(
        (m.user for m in members), key=lambda u: (u.last_name, u.first_name, u.username)
    )
    licences: dict[int, list[PractitionerLicence]] = {}
    for licence in PractitionerLicence.objects.filter(
        clinic=clinic, superseded_by__isnull=True, user__in=users
    ).order_by("-expires_on"):
        licences.setdefault(licence.user_id, []).append(licence)
    # Only those who hold a licence are practitioners patients should check.
    return [
        Practitioner(u.display_name, licences[u.pk], today, photo_of.get(u.pk, ""))
        for u in users
        if u.pk in licences
    ]


# The gallery.


def gallery_photos(clinic: Clinic) -> QuerySet[Photo]:
    """The photos whose patient's latest marketing consent is granted, read at each request:
    a withdrawal is a newer consent row, so it removes the photos at once."""
    return photo_actions.marketing_photos(clinic)


@dataclass
class Pair:
    """A before and an after of one area and view of one course, with no name or date."""

    area: str
    view: str
    before: int
    after: int


def gallery_pairs(clinic: Clinic) -> list[Pair]:
    groups: dict[tuple[int, str, str], list[Photo]] = {}
    for photo in gallery_photos(clinic).order_by("course_id", "area", "view", "taken_at", "id"):
        groups.setdefault((photo.course_id, photo.area, photo.view), []).append(photo)
    pairs = []
    for (_, area, view), photos in groups.items():
        if len(photos) >= 2:
            pairs.append(
                Pair(
                    str(dict(Area.choices).get(area, area)),
                    str(dict(Photo.View.choices).get(view, view)),
                    photos[0].pk,
                    photos[-1].pk,
                )
            )
    return pairs
