"""Scores a screening questionnaire: pure functions over the form and the answers."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

HARD_STOP = "hard_stop"
# The question whose "yes" asks what the patient is allergic to (web/patient_forms.py).
ALLERGY_QUESTION = "ingredient_allergy"
CAUTION = "caution"


class AnswerError(ValueError):
    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{k}: {m}" for k, m in problems))


@dataclass(frozen=True)
class ScreeningOutcome:
    result: str  # eligible | caution | ineligible
    reasons: list[dict[str, str]]


def score(
    form: dict[str, Any], answers: dict[str, Any], date_of_birth: dt.date, on: dt.date
) -> ScreeningOutcome:
    """1. Refuse unknown keys, missing answers and answers that are not yes/no.
    2. Each "yes" adds the question's outcome (hard stop or caution) as a reason.
    3. The age rule adds its outcome when the patient is below the minimum age.
    4. Any hard stop makes the result ineligible; else any caution makes it caution."""
    questions = {q["key"]: q for q in form["questions"]}
    problems = [(k, "is not a question on this form") for k in answers if k not in questions]
    for key in questions:
        if key not in answers:
            problems.append((key, "needs an answer (true or false)"))
        elif not isinstance(answers[key], bool):
            problems.append((key, "must be true or false"))
    if problems:
        raise AnswerError(problems)

    reasons = []
    for key, question in questions.items():
        outcome = question.get("when_yes", "")
        if answers[key] and outcome in (HARD_STOP, CAUTION):
            reasons.append({"question": key, "outcome": outcome, "text": question["text"]})
    age_rule = form.get("age")
    if age_rule:
        age = (
            on.year
            - date_of_birth.year
            - ((on.month, on.day) < (date_of_birth.month, date_of_birth.day))
        )
        if age < age_rule["minimum_years"]:
            reasons.append(
                {
                    "question": "age",
                    "outcome": age_rule["when_below"],
                    "text": f"Aged {age}: under {age_rule['minimum_years']}.",
                }
            )
    outcomes = {r["outcome"] for r in reasons}
    if HARD_STOP in outcomes:
        result = "ineligible"
    elif CAUTION in outcomes:
        result = "caution"
    else:
        result = "eligible"
    return ScreeningOutcome(result=result, reasons=reasons)
