"""The words protocols, courses and the formulary share: areas, indications, classes, sources."""

from __future__ import annotations

import re

from django.db import models


class Area(models.TextChoices):
    # SPEC "treatment areas" (000, 001, 002, 003).
    FACE = "face", "Face"
    CHIN = "chin", "Chin (submental)"
    ARMS = "arms", "Arms"
    ABDOMEN = "abdomen", "Abdomen"
    HIPS = "hips", "Hips"
    BUTTOCKS = "buttocks", "Buttocks"
    THIGHS = "thighs", "Thighs"
    SCALP = "scalp", "Scalp"
    OTHER = "other", "Other"


class Indication(models.TextChoices):
    # SPEC "indications" (000–004).
    CELLULITE = "cellulite", "Cellulite"
    LOCALIZED_FAT = "localized_fat", "Localized fat / spot reduction"
    WEIGHT_LOSS = "weight_loss", "Weight loss"
    WRINKLES = "wrinkles", "Wrinkles"
    SAGGING_SKIN = "sagging_skin", "Sagging skin"
    HAIR_LOSS = "hair_loss", "Hair loss"
    SCAR_REVISION = "scar_revision", "Scar revision"
    ACNE = "acne", "Acne"
    STRETCH_MARKS = "stretch_marks", "Stretch marks"
    HEADACHE = "headache", "Headaches"
    BACKACHE = "backache", "Backaches"


class IngredientClass(models.TextChoices):
    # SPEC "injected classes" (000–004).
    TRADITIONAL = "traditional_medication", "Traditional medication"
    VITAMIN = "vitamin", "Vitamin"
    PLANT_EXTRACT = "plant_extract", "Plant extract"
    HOMEOPATHIC = "homeopathic_preparation", "Homeopathic preparation"


class RefusalCode(models.TextChoices):
    """Every reason a session may be refused (SPEC "What is unsafe and must be refused")."""

    NO_SCREENING = "no_screening", "No screening on file"
    SCREENING_HARD_STOP = "screening_hard_stop", "Screening has a hard stop"
    NO_CONSENT = "no_consent", "No signed consent"
    CONSENT_OUTDATED = "consent_outdated", "Consent does not match the current text"
    ALLERGY_TEST_MISSING = "allergy_test_missing", "No allergy test"
    ALLERGY_TEST_UNREAD = "allergy_test_unread", "Allergy test not read"
    ALLERGY_READ_TOO_EARLY = "allergy_read_too_early", "Allergy test read too early"
    ALLERGY_REACTION = "allergy_reaction", "Allergy test showed a reaction"
    INTERVAL_TOO_SHORT = "interval_too_short", "Too soon after the last session"
    LOT_EXPIRED = "lot_expired", "Lot expired"
    LOT_RECALLED = "lot_recalled", "Lot recalled"
    INGREDIENT_ALLERGY = "ingredient_allergy", "Patient is allergic to an ingredient"
    PRACTITIONER_LICENCE_EXPIRED = "practitioner_licence_expired", "Practitioner licence expired"
    NO_BASELINE = "no_baseline", "No baseline measurement before session 1"
    ACTIVE_INFECTION = "active_infection", "An infection is not resolved"
    OPEN_SERIOUS_EVENT = "open_serious_event", "A serious adverse event is still open"
    UNRESOLVED_SIDE_EFFECT = (
        "unresolved_side_effect",
        "An urgent side effect is not resolved",
    )
    PRODUCT_NOT_PLANNED = "product_not_planned", "Product not planned for this course"
    VIAL_BEYOND_USE = "vial_beyond_use", "Opened vial past its beyond-use date"
    SINGLE_DOSE_REUSED = "single_dose_reused", "Single-dose vial already used for another patient"


# Gates that no protocol may make overridable. A systemic allergy reaction is handled in
# rules.py, because a local reaction under the same code may be overridable. A missing baseline
# is the clinic's own rule (Clinic.baseline_required), which the manager turns off, not a
# protocol. An unresolved infection is never injected through (issue 12, clinical defect 1), and
# a product the course did not plan is planned first, not overridden. An opened vial past its
# beyond-use date, or a single-dose vial used for a second patient, is how mycobacterial
# outbreaks after mesotherapy began (SPEC, adverse events): a new vial is opened instead.
NEVER_OVERRIDABLE = frozenset(
    {
        RefusalCode.LOT_RECALLED.value,
        RefusalCode.NO_BASELINE.value,
        RefusalCode.ACTIVE_INFECTION.value,
        RefusalCode.PRODUCT_NOT_PLANNED.value,
        RefusalCode.VIAL_BEYOND_USE.value,
        RefusalCode.SINGLE_DOSE_REUSED.value,
    }
)

NO_SOURCE = "no source"

# The five source articles, by file name, as protocol data cites them.
SEEDS: dict[str, str] = {
    "000_921d467bf3295337.txt": "How Mesotherapy Improves Cellulite",
    "001_d38809c806382382.txt": "Treat Cellulite with Mesotherapy",
    "002_fa4d881737f3a5fe.txt": "Reducing Cellulite with Mesotherapy",
    "003_60688675efef3c1d.txt": "Mesotherapy",
    "004_775ed0aecb2fac00.txt": "Treat Cellulite With Mesotherapy",
}


# How people see each article named: its title, with the site or what it covers when two
# titles are alike (SEEDS.md in the project's notes). Never a file name or a number alone.
SEED_LABELS: dict[str, str] = {
    "000_921d467bf3295337.txt": "How Mesotherapy Improves Cellulite",
    "001_d38809c806382382.txt": "Treat Cellulite with Mesotherapy (Pasadena)",
    "002_fa4d881737f3a5fe.txt": "Reducing Cellulite with Mesotherapy",
    "003_60688675efef3c1d.txt": "Mesotherapy: questions and answers",
    "004_775ed0aecb2fac00.txt": "Treat Cellulite With Mesotherapy (process and aftercare)",
}
_BY_NUMBER = {file[:3]: label for file, label in SEED_LABELS.items()}
_NUMBER = re.compile(r"(?<![\d.,])\b(00[0-4])\b(?!\s*(?:%|mL|ml|days|minutes|hours))")


def describe_source(source: str) -> str:
    """A human label for a source: the article's title, or the reference in words."""
    return SEED_LABELS.get(source, reference_words(source))


def reference_words(reference: str) -> str:
    """A reference as people read it. Protocol data cites the product's own safety rules as
    "SPEC: <topic>"; people see them named as what they are."""
    if reference.startswith("SPEC:"):
        return "mesoclinic's safety rules: " + reference.removeprefix("SPEC:").strip()
    return name_sources(reference)


def name_sources(text: str) -> str:
    """A protocol note with each article it cites by number ("002: most people need...")
    named by its title instead, for people to read."""
    return _NUMBER.sub(lambda m: f"“{_BY_NUMBER[m.group(1)]}”", text)
