"""The outcome scales and what a valid value of each is. Pure: no Django.

Every range here is from SPEC "Facts from outside the seeds: Outcome scales":
- Hexsel Cellulite Severity Scale (2009): five items, each 0–3; the total 0–15 is banded
  mild 1–5, moderate 6–10, severe 11–15.
- Nürnberger–Müller: 0 none; 1 visible only when pinched; 2 visible standing but not lying;
  3 visible standing and lying.
- GAIS: 1 very much improved … 5 worse.
- Circumference by tape per site, LOINC 8280-0 waist and 62409-8 hip. SPEC gives no other code,
  so the other sites carry none.
"""

from __future__ import annotations

from dataclasses import dataclass

HEXSEL = "hexsel_css"
NURNBERGER_MULLER = "nurnberger_muller"
CIRCUMFERENCE = "circumference"
WEIGHT = "weight"
GAIS = "gais"
SATISFACTION = "satisfaction"

# The Hexsel items in the order of the published scale (SPEC).
HEXSEL_ITEMS: tuple[tuple[str, str], ...] = (
    ("number", "Number of evident depressions"),
    ("depth", "Depth of depressions"),
    ("morphology", "Morphological appearance of skin surface alterations"),
    ("laxity", "Grade of laxity, flaccidity or sagging skin"),
    ("nurnberger_muller", "Classification scale by Nürnberger and Müller"),
)

NURNBERGER_MULLER_GRADES: dict[int, str] = {
    0: "None",
    1: "Visible only when pinched",
    2: "Visible standing, not lying",
    3: "Visible standing and lying",
}

GAIS_GRADES: dict[int, str] = {
    1: "Very much improved",
    2: "Much improved",
    3: "Improved",
    4: "No change",
    5: "Worse",
}

# Satisfaction is the patient's own answer on a 0–10 scale. SPEC names no instrument, so this is
# the product's choice of a plain numeric rating, not a validated scale.
SATISFACTION_MIN, SATISFACTION_MAX = 0, 10


@dataclass(frozen=True)
class Site:
    key: str
    label: str
    loinc: str = ""


# Circumference sites. LOINC codes only where SPEC gives them.
SITES: tuple[Site, ...] = (
    Site("waist", "Waist", "8280-0"),
    Site("hip", "Hip", "62409-8"),
    Site("thigh_left", "Left thigh"),
    Site("thigh_right", "Right thigh"),
    Site("arm_left", "Left upper arm"),
    Site("arm_right", "Right upper arm"),
    Site("abdomen", "Abdomen at the navel"),
)
SITE_BY_KEY = {s.key: s for s in SITES}


def hexsel_band(total: int) -> str:
    """SPEC: mild 1–5, moderate 6–10, severe 11–15. A total of 0 has no band in the scale."""
    if not 0 <= total <= 15:
        raise ValueError(f"a Hexsel total is 0–15, not {total}")
    if total == 0:
        return "none"
    if total <= 5:
        return "mild"
    if total <= 10:
        return "moderate"
    return "severe"
