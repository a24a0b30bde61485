"""May this session go ahead? Every clinical gate in one place.

`refusals(facts)` is a pure function: it reads a snapshot of everything the gates need and
returns every reason the session may not go ahead, not just the first. The API, the admin,
the model save path and any importer gather the facts (courses.models.gather_facts) and call
it; nobody re-implements a gate.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass, field

from mesoclinic.protocols.vocab import NEVER_OVERRIDABLE, RefusalCode

Code = RefusalCode


@dataclass(frozen=True)
class LotFacts:
    lot_id: int
    label: str  # "Product name lot ABC123"
    product_id: int
    expires_on: dt.date
    recalled: bool
    recall_reason: str
    ingredients: dict[int, str]  # ingredient id -> name


@dataclass(frozen=True)
class VialFacts:
    """An opened vial an injection is drawn from (formulary.Vial). A vial opened for this
    session passes: only a vial already open can be past its time or another patient's."""

    label: str  # "Vial 2 of Product name lot ABC123"
    opened_at: dt.datetime
    beyond_use_at: dt.datetime | None  # multi-dose only
    beyond_use_days: int
    single_dose: bool
    # A single-dose vial already used for a patient other than this session's.
    other_patient: bool


@dataclass(frozen=True)
class ReadingFacts:
    read_at: dt.datetime
    result: str  # none | local | systemic


@dataclass(frozen=True)
class AllergyTestFacts:
    given_at: dt.datetime
    readings: tuple[ReadingFacts, ...]


@dataclass(frozen=True)
class ProblemFacts:
    """An active problem of the patient at the time of the session: an infection not yet
    resolved (a side effect, a serious adverse event or an infection-watch answer whose
    follow-up is open), a serious adverse event that has not ended, or an urgent side effect
    not resolved whose follow-up is open."""

    infection: bool
    description: str  # "Infection (grade 2) after session 3, since Mon 2 Nov 2026"
    # An urgent side effect (not an infection) whose follow-up is open: not a serious event.
    side_effect: bool = False


@dataclass(frozen=True)
class SessionFacts:
    performed_at: dt.datetime
    tz: zoneinfo.ZoneInfo
    # Screening: None when there is none on file.
    screening_result: str | None
    screening_hard_stops: tuple[str, ...]
    # Consent: whether any is on file, and which of this session's products the current
    # consent text does not cover (missing from every consent, or the text has changed).
    has_consent: bool
    products_without_current_consent: tuple[str, ...]
    # Allergy tests of this course, oldest first.
    allergy_tests: tuple[AllergyTestFacts, ...]
    allergy_wait_hours: int
    # The sessions already charted on this course, by time.
    other_sessions_at: tuple[dt.datetime, ...]
    min_interval_days: int
    lots: tuple[LotFacts, ...]
    patient_allergies: dict[int, str]  # ingredient id -> name
    practitioner_name: str
    licence_expires_on: dt.date | None  # the latest expiry of the practitioner's licences
    # The patient's unresolved infections and open serious adverse events at the session.
    problems: tuple[ProblemFacts, ...] = ()
    # The products planned for the course (product id -> name); None: the course plans none,
    # so no lot is refused for its product (a course planned before products were planned).
    planned_products: dict[int, str] | None = None
    # False when nobody is chosen to give the session yet (the front desk looking at the
    # chart with no visit booked): the licence gate then waits for a practitioner.
    practitioner_known: bool = True
    overridable: frozenset[str] = field(default_factory=frozenset)
    # The baseline gate (Clinic.baseline_required): session 1 needs a measurement taken at or
    # before it, so that the course's progress has a starting point.
    baseline_required: bool = False
    has_baseline: bool = True
    # The opened vials the injections are drawn from (formulary.stock.vial_facts).
    vials: tuple[VialFacts, ...] = ()


@dataclass(frozen=True)
class Refusal:
    code: str
    message: str
    overridable: bool

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message, "overridable": self.overridable}


def _when(moment: dt.datetime, tz: zoneinfo.ZoneInfo) -> str:
    local = moment.astimezone(tz)
    # The day without a leading zero, as people write it ("Sun 6 Dec 2026"), as the pages do.
    return f"{local:%H:%M} on {local:%a} {local.day} {local:%b %Y}"


def when_words(moment: dt.datetime, tz: zoneinfo.ZoneInfo) -> str:
    """ "14:05 on Mon 7 Dec 2026", in the clinic's time zone."""
    return _when(moment, tz)


def _hours(delta: dt.timedelta) -> str:
    # Round down, never up: a reading 23 h 59 min after the test must not be described as
    # "24 h after" in the very message that says it had to wait 24 h.
    hours, minutes = divmod(int(delta.total_seconds() // 60), 60)
    if not hours:
        return f"{minutes} min"
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def _sentence(text: str) -> str:
    """Free text as a whole sentence followed by a space, ending in exactly one full stop
    (a recall reason may already end in one, or in a bracket and one)."""
    text = text.strip()
    if not text:
        return ""
    return text + ("" if text.endswith((".", "!", "?")) else ".") + " "


def _gap(delta: dt.timedelta) -> str:
    """A gap between two sessions in words: whole days, or hours and minutes under a day
    ("Only 3 h 10 min after", never "Only 0 days after")."""
    if delta.days >= 1:
        return f"{delta.days} day{'s' if delta.days != 1 else ''}"
    return _hours(delta)


def _wall_clock(moment: dt.datetime, tz: zoneinfo.ZoneInfo) -> dt.datetime:
    return moment.astimezone(tz).replace(tzinfo=None)


def refusals(f: SessionFacts) -> list[Refusal]:
    """Every reason the session described by `f` may not go ahead, in words."""
    out: list[Refusal] = []

    def refuse(code: Code, message: str, *, never: bool = False) -> None:
        overridable = (
            not never and code.value not in NEVER_OVERRIDABLE and code.value in f.overridable
        )
        out.append(Refusal(code.value, message, overridable))

    # 1. Screening.
    if f.screening_result is None:
        refuse(Code.NO_SCREENING, "The patient has not been screened.")
    elif f.screening_hard_stops:
        refuse(
            Code.SCREENING_HARD_STOP,
            "The screening has a hard stop: " + "; ".join(f.screening_hard_stops) + ".",
        )

    # 2. Consent for the current text.
    if not f.has_consent:
        refuse(Code.NO_CONSENT, "The patient has not signed a consent.")
    elif f.products_without_current_consent:
        refuse(
            Code.CONSENT_OUTDATED,
            "The patient has not signed the current consent text for "
            + ", ".join(f.products_without_current_consent)
            + ".",
        )

    # 3. Allergy test: given, read at least `allergy_wait_hours` after, with no reaction.
    wait = dt.timedelta(hours=f.allergy_wait_hours)
    if not f.allergy_tests:
        refuse(Code.ALLERGY_TEST_MISSING, "No allergy test has been given for this course.")
    else:
        latest = f.allergy_tests[-1]
        # In UTC, so that the wait is 24 real hours even across a daylight-saving change.
        given_at = latest.given_at.astimezone(dt.UTC)
        readable_from = given_at + wait
        if not latest.readings:
            refuse(
                Code.ALLERGY_TEST_UNREAD,
                f"The allergy test given at {_when(latest.given_at, f.tz)} has not been read; "
                f"it can be read from {_when(readable_from, f.tz)}.",
            )
        elif all(r.read_at < readable_from for r in latest.readings):
            first = min(r.read_at for r in latest.readings).astimezone(dt.UTC)
            refuse(
                Code.ALLERGY_READ_TOO_EARLY,
                f"The allergy test was read {_hours(first - given_at)} after it was "
                f"given; it must be read at least {f.allergy_wait_hours} h after, from "
                f"{_when(readable_from, f.tz)}.",
            )
        readings = [r for t in f.allergy_tests for r in t.readings]
        if any(r.result == "systemic" for r in readings):
            refuse(
                Code.ALLERGY_REACTION,
                "The allergy test caused a systemic reaction. This can never be overridden.",
                never=True,
            )
        elif any(r.result == "local" for r in readings):
            refuse(Code.ALLERGY_REACTION, "The allergy test caused a local reaction.")

    # 4. Interval to the nearest charted session on either side, counted on the clinic's wall
    #    clock: a weekly session keeps its local hour across a daylight-saving change
    #    (logic.next_window), so the time it is due must never be an hour too soon.
    min_gap = dt.timedelta(days=f.min_interval_days)
    here = _wall_clock(f.performed_at, f.tz)
    for other in f.other_sessions_at:
        gap = abs(here - _wall_clock(other, f.tz))
        if gap < min_gap:
            refuse(
                Code.INTERVAL_TOO_SHORT,
                f"Only {_gap(gap)} {'after' if other <= f.performed_at else 'before'} the "
                f"session at {_when(other, f.tz)}; this protocol needs at least "
                f"{f.min_interval_days} days between sessions.",
            )
            break

    # 5. Every lot: in date, not recalled, free of the patient's allergens, of a planned product.
    day = f.performed_at.astimezone(f.tz).date()
    for code, message, never in _lot_problems(f.lots, day, f.patient_allergies, f.planned_products):
        refuse(code, message, never=never)

    # 6. The practitioner's licence on the day of the session. Judged once a practitioner is
    # booked or chosen, never against the viewer.
    if f.practitioner_known:
        unlicensed = licence_problem(f.practitioner_name, f.licence_expires_on, day)
        if unlicensed is not None:
            refuse(Code.PRACTITIONER_LICENCE_EXPIRED, unlicensed)

    # 7. A baseline before session 1: a session with no other charted before it is session 1.
    is_first = not any(other < f.performed_at for other in f.other_sessions_at)
    if f.baseline_required and is_first and not f.has_baseline:
        refuse(
            Code.NO_BASELINE,
            "Session 1 needs a baseline first: no measurement (a Hexsel score, a "
            "circumference, a weight …) was taken on this course by "
            f"{_when(f.performed_at, f.tz)}. The clinic's manager can turn this rule off.",
            never=True,
        )

    # 8. An active problem: an unresolved infection is never injected through; an open serious
    #    adverse event, or an urgent side effect still under follow-up, must be closed (or the
    #    protocol allow an override) first.
    for problem in f.problems:
        if problem.infection:
            refuse(
                Code.ACTIVE_INFECTION,
                f"{problem.description} is not resolved. No session may be given while an "
                "infection is active; this can never be overridden.",
                never=True,
            )
        elif problem.side_effect:
            refuse(
                Code.UNRESOLVED_SIDE_EFFECT,
                f"{problem.description} is not resolved and its urgent follow-up is open. "
                "Record when it resolved, or close the follow-up with its outcome, before the "
                "next session.",
            )
        else:
            refuse(
                Code.OPEN_SERIOUS_EVENT,
                f"{problem.description} is still open. Record how it ended before the next "
                "session.",
            )

    # 9. Every opened vial: a multi-dose vial within its beyond-use time, a single-dose vial
    #    for one patient only. Neither can ever be overridden.
    for code, message in vial_problems(f.vials, f.performed_at, f.tz):
        refuse(code, message, never=True)
    return out


def vial_problems(
    vials: Iterable[VialFacts], moment: dt.datetime, tz: zoneinfo.ZoneInfo
) -> list[tuple[Code, str]]:
    """(code, message) for each vial that may not be drawn from at `moment`."""
    out: list[tuple[Code, str]] = []
    for vial in vials:
        if vial.beyond_use_at is not None and moment >= vial.beyond_use_at:
            out.append(
                (
                    Code.VIAL_BEYOND_USE,
                    f"{vial.label} was opened at {_when(vial.opened_at, tz)}; an opened "
                    f"multi-dose vial of this product may be used for {vial.beyond_use_days} "
                    f"days, until {_when(vial.beyond_use_at, tz)}. Throw it away and open a "
                    "new vial. This can never be overridden.",
                )
            )
        if vial.single_dose and vial.other_patient:
            out.append(
                (
                    Code.SINGLE_DOSE_REUSED,
                    f"{vial.label} is a single-dose vial already used for another patient. "
                    "Open a new vial. This can never be overridden.",
                )
            )
    return out


def licence_problem(
    name: str, expires: dt.date | None, day: dt.date, today: dt.date | None = None
) -> str | None:
    """The one rule for who may inject on a day, for the session gate and for booking alike
    (scheduling.actions.may_give): it needs a licence whose last valid day (`expires`, None for
    no licence) is `day` or later. None when `name` may; otherwise why, in a sentence. For a
    visit still ahead, a licence that is valid `today` but ends before `day` "expires, before
    the visit"; one already ended "expired"."""
    if expires is not None and day <= expires:
        return None
    if expires is None:
        return f"{name} has no licence on file in this clinic."
    if today is not None and expires >= today:
        return f"{name}'s licence expires on {expires.day} {expires:%b %Y}, before the visit."
    return f"{name}'s licence expired on {expires.day} {expires:%b %Y}."


def _lot_problems(
    lots: Iterable[LotFacts],
    day: dt.date,
    patient_allergies: dict[int, str],
    planned_products: dict[int, str] | None = None,
) -> list[tuple[Code, str, bool]]:
    """(code, message, never overridable) for each lot that may not be injected on `day`.
    A lot may be used on its expiry date, in the clinic's local date, and not after."""
    out: list[tuple[Code, str, bool]] = []
    for lot in lots:
        if planned_products is not None and lot.product_id not in planned_products:
            planned = ", ".join(sorted(planned_products.values())) or "no product"
            out.append(
                (
                    Code.PRODUCT_NOT_PLANNED,
                    f"{lot.label} is not a product planned for this course (it plans "
                    f"{planned}). Plan the product for the course first.",
                    True,
                )
            )
        if day > lot.expires_on:
            out.append(
                (Code.LOT_EXPIRED, f"{lot.label} expired on {lot.expires_on:%d %b %Y}.", False)
            )
        if lot.recalled:
            out.append(
                (
                    Code.LOT_RECALLED,
                    f"{lot.label} has been recalled. {_sentence(lot.recall_reason)}"
                    "This can never be overridden.",
                    True,
                )
            )
        allergens = sorted(n for i, n in lot.ingredients.items() if i in patient_allergies)
        if allergens:
            out.append(
                (
                    Code.INGREDIENT_ALLERGY,
                    f"{lot.label} contains {', '.join(allergens)}, "
                    "which the patient is allergic to.",
                    False,
                )
            )
    return out


def allergy_test_refusals(
    lots: Iterable[LotFacts],
    given_at: dt.datetime,
    tz: zoneinfo.ZoneInfo,
    patient_allergies: dict[int, str],
    planned_products: dict[int, str] | None = None,
    vials: Iterable[VialFacts] = (),
) -> list[Refusal]:
    """The test injections are injections too: the same lot and vial gates apply, with no
    override."""
    day = given_at.astimezone(tz).date()
    found = [
        (code, message)
        for code, message, _ in _lot_problems(lots, day, patient_allergies, planned_products)
    ]
    found += vial_problems(vials, given_at, tz)
    return [Refusal(code.value, message, overridable=False) for code, message in found]


def blocking(found: Iterable[Refusal], override_codes: Iterable[str]) -> list[Refusal]:
    """The refusals an override does not lift: those not overridden and those that cannot be."""
    chosen = set(override_codes)
    return [r for r in found if not (r.overridable and r.code in chosen)]


def invalid_overrides(found: Iterable[Refusal], override_codes: Iterable[str]) -> list[str]:
    """Override codes that name a refusal that is absent or that may not be overridden."""
    allowed = {r.code for r in found if r.overridable}
    return sorted(set(override_codes) - allowed)
