"""The demo clinic's measurements (called from mesoclinic/demo.py): a baseline before each
course's session 1, and measurements at later sessions, all through do_record_measurements
so that every value passes the same checks as a real one.

The numbers are invented for the demo and claim nothing: they drift a little lower from the
baseline, with noise, so that the progress chart has something to draw.
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import Any

from mesoclinic.courses.models import Course, Session
from mesoclinic.outcomes import scales
from mesoclinic.outcomes.actions import do_record_measurements
from mesoclinic.outcomes.logic import Raw

VIA = "demo"


def _visit(course: Course, rng: random.Random, share: float) -> list[tuple[str, Raw]]:
    """One visit's readings, `share` of the way from baseline (0) to the end of a course."""
    out: list[tuple[str, Raw]] = []
    if course.indication == "cellulite":
        items = {}
        for key, _ in scales.HEXSEL_ITEMS:
            start = rng.choice((2, 2, 3))
            items[key] = max(0, round(start - share * rng.choice((1, 1, 2))))
        out.append(("hexsel.", Raw(scales.HEXSEL, items=items, area=course.areas[0])))
        out.append(
            (
                "nm.",
                Raw(scales.NURNBERGER_MULLER, items["nurnberger_muller"], area=course.areas[0]),
            )
        )
        thigh = Decimal("58.0") - Decimal(str(round(share * rng.uniform(0.5, 2.0), 1)))
        out.append(("thigh.", Raw(scales.CIRCUMFERENCE, thigh, site="thigh_left")))
    elif course.indication == "localized_fat":
        waist = Decimal("84.0") - Decimal(str(round(share * rng.uniform(1.0, 4.0), 1)))
        hip = Decimal("101.0") - Decimal(str(round(share * rng.uniform(0.5, 2.5), 1)))
        out.append(("waist.", Raw(scales.CIRCUMFERENCE, waist, site="waist")))
        out.append(("hip.", Raw(scales.CIRCUMFERENCE, hip, site="hip")))
    weight = Decimal("68.0") - Decimal(str(round(share * rng.uniform(0.0, 1.5), 1)))
    out.append(("weight.", Raw(scales.WEIGHT, weight)))
    return out


def record_baseline(course: Course, at: dt.datetime, by: Any, rng: random.Random) -> None:
    """The baseline the clinic requires before session 1 (Clinic.baseline_required)."""
    readings = _visit(course, random.Random(course.pk), 0)
    if course.indication not in ("cellulite", "localized_fat"):
        readings.append(("satisfaction.", Raw(scales.SATISFACTION, rng.randint(3, 6))))
    do_record_measurements(course, readings, taken_at=at, user=by, via=VIA)


def record_progress(course: Course, sessions: list[Session], by: Any, rng: random.Random) -> None:
    """Measurements at every fifth session, and a GAIS and satisfaction at the latest."""
    if not sessions:
        return
    planned = max(course.planned_sessions, 1)
    for session in sessions:
        if session.number % 5 and session is not sessions[-1]:
            continue
        share = min(1.0, session.number / planned)
        readings = _visit(course, random.Random(course.pk), share)
        if session is sessions[-1]:
            readings.append(("gais.", Raw(scales.GAIS, rng.choice((2, 3, 3, 4)))))
            readings.append(("satisfaction.", Raw(scales.SATISFACTION, rng.randint(5, 9))))
        do_record_measurements(
            course,
            readings,
            taken_at=session.performed_at,
            session=session,
            user=by,
            via=VIA,
        )
