"""The demo clinic's safety records (called from mesoclinic/demo.py): the infection-watch
prompts of its recent sessions, two answers (one reporting nothing, one a lump, which opens an
urgent follow-up), and the demo's urgent infection escalated to a serious adverse event. All
through the same actions as real ones; the words are invented for the demo and claim nothing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from mesoclinic.accounts.models import Clinic
from mesoclinic.courses.models import SideEffect
from mesoclinic.safety import actions, watch
from mesoclinic.safety.models import WatchPrompt

VIA = "demo"


def seed(clinic: Clinic, practitioner: Any, now: dt.datetime) -> None:
    watch.do_plan_watch(now)
    # The earliest due prompts that have reached their day: the worker would send them now.
    due = list(
        WatchPrompt.objects.filter(
            clinic=clinic, status=WatchPrompt.Status.PENDING, due_at__lte=now
        ).order_by("-due_at")[:2]
    )
    answers: tuple[dict[str, Any], ...] = (
        {"notes": "All fine, a small bruise has gone."},
        {"lump": True, "notes": "A hard bump where the injections were."},
    )
    for prompt, answer in zip(due, answers, strict=False):
        actions.do_answer_watch(prompt.pk, answer)
    effect = (
        SideEffect.objects.filter(session__course__clinic=clinic, kind="infection")
        .select_related("session__course__clinic")
        .first()
    )
    if effect is not None:
        actions.do_report_adverse_event(
            effect.session,
            kind="infection",
            ctcae_grade=max(effect.grade, 2),
            onset_at=effect.onset_at,
            actions_taken="Swab taken; reviewed in clinic the same day.",
            lots=actions.injected_lots(effect.session),
            side_effect=effect,
            user=practitioner,
            via=VIA,
        )
