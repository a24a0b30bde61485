"""Photos for the demo clinic: consents and a baseline and latest front and back view of the
thighs for two cellulite patients, so that the comparison page has something to show.

The pictures are drawn here, not photographs: a plain background with a few marks and the
word DEMO, fewer marks in the later picture only so that the two can be told apart. They show
no body and claim nothing about what a treatment does.
"""

from __future__ import annotations

import datetime as dt
import io
import random
from typing import Any

from PIL import Image, ImageDraw

from mesoclinic.accounts.models import Clinic
from mesoclinic.courses.models import Course
from mesoclinic.outcomes import photo_actions

# Who has photos in the demo, and whether they allow marketing use.
PATIENTS = (("O'Brien", False), ("Walsh", True))
VIEWS = ("front", "back")


def placeholder(marks: int, rng: random.Random) -> bytes:
    img = Image.new("RGB", (720, 960), (226, 199, 182))
    draw = ImageDraw.Draw(img)
    for _ in range(marks):
        x, y = rng.randrange(60, 620), rng.randrange(80, 860)
        draw.ellipse((x, y, x + 48, y + 32), fill=(181, 150, 138))
    draw.text((24, 20), "DEMO", fill=(90, 70, 60))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue()


def seed(
    clinic: Clinic,
    user: Any,
    rng: random.Random,
    patients: tuple[tuple[str, bool], ...] = PATIENTS,
) -> int:
    """Record the consents and photos; answer how many photos were stored."""
    stored = 0
    for last_name, marketing in patients:
        course = (
            Course.objects.filter(
                clinic=clinic, patient__last_name=last_name, protocol__key="cellulite"
            )
            .select_related("patient", "clinic")
            .order_by("created_at")
            .first()
        )
        sessions = list(course.sessions.order_by("number")) if course else []
        if course is None or len(sessions) < 2 or "thighs" not in course.areas:
            continue
        baseline_at = sessions[0].performed_at - dt.timedelta(minutes=20)
        patient = course.patient
        photo_actions.do_record_photo_consent(
            patient,
            purpose="clinical",
            granted=True,
            decided_at=baseline_at - dt.timedelta(minutes=10),
            user=user,
            via="command",
        )
        photo_actions.do_record_photo_consent(
            patient,
            purpose="marketing",
            granted=marketing,
            decided_at=baseline_at - dt.timedelta(minutes=10),
            user=user,
            via="command",
        )
        for at, session, marks in (
            (baseline_at, None, 14),
            (sessions[-1].performed_at, sessions[-1], 8),
        ):
            made = photo_actions.do_upload_photos(
                course,
                area="thighs",
                images={view: placeholder(marks, rng) for view in VIEWS},
                taken_at=at,
                session=session,
                user=user,
                via="command",
            )
            stored += len(made)
    return stored
