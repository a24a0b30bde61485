"""The rules of the infection watch and of a serious adverse event, as pure functions over plain
values: when each watch prompt falls due, whether it is still worth sending, what a patient's
answers mean, and whether a SNOMED CT concept id is well formed. Nothing here touches the
database.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass

# SPEC ("Adverse events"): non-tuberculous mycobacterial infection appears 1–12 weeks after
# treatment, with a median of about 4 weeks. A prompt at 2, 4, 8 and 12 weeks covers that window
# with one question near the median; the weeks themselves are the issue's.
WATCH_WEEKS = (2, 4, 8, 12)
# The local hour a prompt goes out. The product's choice (no source): mid-morning, when the
# clinic is open to take the call a worrying answer leads to.
SEND_AT = dt.time(10, 0)
# A prompt more than this overdue is skipped rather than sent: the next one is at most four
# weeks off, and an email about "two weeks ago" that arrives at week four confuses. The
# product's choice (no source).
STALE_AFTER = dt.timedelta(days=7)
# The worker plans prompts for sessions performed within the watch window and this margin, so a
# session charted a few days late still gets the prompts that are not yet stale.
PLAN_WINDOW = dt.timedelta(weeks=max(WATCH_WEEKS)) + STALE_AFTER
# How long a questionnaire link works after the email was sent. The product's choice (no
# source): long enough for a patient back from holiday, short enough that an answer is news.
LINK_MAX_AGE = dt.timedelta(days=30)

# A crashed worker's claim is taken over after this; attempts and backoff as for reminders.
LEASE = dt.timedelta(minutes=15)
MAX_ATTEMPTS = 6

# Why a prompt was not sent.
SKIP_NO_EMAIL = "no_email"
SKIP_TOO_LATE = "too_late"
# A reason that may stop holding: a prompt skipped for want of an email goes back to pending
# once the patient has one, if it is not stale by then.
REVIVABLE = (SKIP_NO_EMAIL,)
SKIP_WORDS = {
    SKIP_NO_EMAIL: "the patient has no email address",
    SKIP_TOO_LATE: "more than a week overdue when it could first be sent",
}


def due_at(performed_at: dt.datetime, week: int, tz: zoneinfo.ZoneInfo) -> dt.datetime:
    """SEND_AT on the clinic's calendar day `week` weeks after the session's local day.

    Counting days on the local calendar, then fixing the local hour, keeps the prompt at 10:00
    across a daylight-saving change; adding 14 × 24 h to an instant would not."""
    day = performed_at.astimezone(tz).date() + dt.timedelta(weeks=week)
    return dt.datetime.combine(day, SEND_AT, tzinfo=tz).astimezone(dt.UTC)


def skip_reason(*, email: str, due: dt.datetime, now: dt.datetime) -> str | None:
    """Why a prompt due at `due` must not go out at `now`, or None when it should. Asked at
    planning and again right before sending."""
    if now - due > STALE_AFTER:
        return SKIP_TOO_LATE
    if not email.strip():
        return SKIP_NO_EMAIL
    return None


# The questionnaire. Plain words for a patient; `warning` marks the answers the issue names as
# opening an urgent follow-up (a lump, discharge, a wound that will not heal).


@dataclass(frozen=True)
class Question:
    key: str
    text: str
    warning: bool


QUESTIONS = (
    Question("lump", "Is there a lump or a hard swelling where you were injected?", True),
    Question("discharge", "Is there any discharge or pus from an injection site?", True),
    Question("wound", "Is there a wound or sore that will not heal?", True),
    Question("redness", "Is there redness or warmth that is spreading?", False),
    Question("fever", "Have you had a fever?", False),
)
QUESTION_KEYS = tuple(q.key for q in QUESTIONS)
# Short names for a sign, for the follow-up's reason and the chart.
SIGN_WORDS = {
    "lump": "lump or hard swelling",
    "discharge": "discharge or pus",
    "wound": "a wound that will not heal",
    "redness": "spreading redness or warmth",
    "fever": "fever",
}
NOTES_MAX = 2000


def warning_signs(answers: dict[str, object]) -> list[str]:
    """The warning signs a set of answers reports, in the questionnaire's order."""
    return [q.key for q in QUESTIONS if q.warning and answers.get(q.key) is True]


def reported(answers: dict[str, object]) -> list[str]:
    """Every sign answered yes, warning or not, in the questionnaire's order."""
    return [q.key for q in QUESTIONS if answers.get(q.key) is True]


def follow_up_reason(week: int, signs: list[str]) -> str:
    words = ", ".join(SIGN_WORDS[s] for s in signs)
    return f"Infection watch, week {week}: the patient reports {words}"


# SNOMED CT concept ids. SPEC names no codes; the clinic enters the one its reporting system
# uses, and this checks only that it is a well-formed concept id (SNOMED CT Technical
# Implementation Guide, "SCTID"): 6 to 18 digits, no leading zero, a partition identifier of 00
# (short format) or 10 (long format) for a concept, and a Verhoeff check digit.

# The Verhoeff scheme: the multiplication table of the dihedral group D5, and the permutation
# applied to a digit at position k, which is the first one applied k times (so it is built, not
# typed out, and cannot hold a typo).
_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8),
    (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2),
    (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_P1 = (1, 5, 7, 6, 2, 8, 3, 0, 9, 4)


def _powers(first: tuple[int, ...], count: int) -> tuple[tuple[int, ...], ...]:
    rows = [tuple(range(10))]
    while len(rows) < count:
        rows.append(tuple(first[d] for d in rows[-1]))
    return tuple(rows)


_P = _powers(_P1, 8)
CONCEPT_PARTITIONS = ("00", "10")


def verhoeff_ok(digits: str) -> bool:
    """True when the last digit of `digits` is its Verhoeff check digit.

    1. Read the digits from the right, the check digit first, at positions 0, 1, 2, …
    2. Carry c = D[c][P[position mod 8][digit]], starting from c = 0.
    3. The number is valid when c ends at 0."""
    c = 0
    for position, char in enumerate(reversed(digits)):
        c = _D[c][_P[position % 8][int(char)]]
    return c == 0


def sctid_problem(code: str) -> str | None:
    """Why `code` is not a SNOMED CT concept id, or None when it is one."""
    if not code.isascii() or not code.isdigit():
        return "a SNOMED CT id is digits only."
    if not 6 <= len(code) <= 18:
        return "a SNOMED CT id is 6 to 18 digits long."
    if code[0] == "0":
        return "a SNOMED CT id does not start with 0."
    if code[-3:-1] not in CONCEPT_PARTITIONS:
        return (
            f"the partition identifier {code[-3:-1]} (the two digits before the last) is not a "
            "concept's: it should be 00 or 10."
        )
    if not verhoeff_ok(code):
        return "the check digit does not match: the id was probably mistyped."
    return None


# Serious adverse events.

# The kinds that open an urgent follow-up whatever their grade (the issue: "a grade ≥ 3 or an
# infection kind"). The grade from which any kind does is the protocol's `urgent_from_grade`,
# the same threshold that makes a side effect urgent.
INFECTION_KINDS = ("infection", "mycobacterial_infection")
# FHIR adverse-event-outcome codes that mean the event has ended: they need a date.
ENDED_OUTCOMES = ("resolved", "resolvedWithSequelae", "fatal")


def urgent(kind: str, grade: int, urgent_from_grade: int) -> bool:
    return kind in INFECTION_KINDS or grade >= urgent_from_grade
