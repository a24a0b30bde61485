"""Issue 12, booking defects: the plan PDF lists the course's booked visits, not only its
planned session windows."""

from __future__ import annotations

from mesoclinic.courses.models import Course
from mesoclinic.scheduling import planning
from mesoclinic.scheduling.actions import do_cancel
from tests.conftest import World
from tests.test_pdf import read, words
from tests.test_web import signed_in


def test_the_plan_pdf_lists_the_booked_visits(cal: World, course: Course) -> None:
    client = signed_in(cal.front_desk)
    before = words(read(client.get(f"/courses/{course.pk}/plan.pdf")))
    assert "Your booked visits" not in before

    made = planning.do_book_course(course, user=cal.front_desk, practitioner=cal.practitioner)
    do_cancel(made[-1], user=cal.front_desk, reason="The patient is away.")
    text = words(read(client.get(f"/courses/{course.pk}/plan.pdf")))

    assert "Your booked visits" in text
    tz = cal.clinic.tz
    test, first = (a.starts_at.astimezone(tz) for a in made[:2])
    assert f"Allergy test visit {test:%a} {test.day} {test:%b %Y}, {test:%H:%M}" in text
    assert f"Session 1 of 15 {first:%a} {first.day} {first:%b %Y}, {first:%H:%M}" in text
    assert "Session 14 of 15" in text
    assert "Session 15 of 15" not in text  # the cancelled visit is not listed
