"""Every main page on a phone (390 px) and a small laptop (1024 px): nothing is wider than the
screen, so no page scrolls sideways; the chart's header stays on screen as its sections
scroll under it. Each page is saved to docs/screenshots/<page>-<width>.png."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from mesoclinic.courses import actions
from mesoclinic.courses.models import Course, FollowUp
from mesoclinic.formulary.models import Ingredient
from mesoclinic.patients.models import Allergy, Patient
from mesoclinic.scheduling.models import Appointment
from tests.browser.conftest import _new_page, assert_accessible, login, shot
from tests.conftest import World, ago
from tests.test_web import course_with_sessions

pytestmark = pytest.mark.browser

WIDTHS = {390: 844, 1024: 768}


@pytest.fixture(params=sorted(WIDTHS), ids=lambda w: f"{w}px")
def sized_page(request: Any, chromium: Browser) -> Iterator[Page]:
    width = request.param
    yield from _new_page(
        chromium, viewport={"width": width, "height": WIDTHS[width]}, has_touch=width < 500
    )


@pytest.fixture
def busy(world: World) -> tuple[Patient, Course]:
    """A patient three sessions into a course, with an allergy, a side effect and its urgent
    follow-up, and a visit later today; another patient due, so that Today has every card."""
    world.clinic.phone = "+1 212 555 0100"
    world.clinic.save(update_fields=["phone"])
    patient = Patient.objects.create(
        clinic=world.clinic,
        first_name="Anastasia",
        last_name="Papadopoulou-Richardson",
        date_of_birth=dt.date(1988, 3, 9),
        email="anastasia.papadopoulou@example.com",
        phone="+1 212 555 0188",
    )
    Allergy.objects.create(
        patient=patient, ingredient=Ingredient.objects.get(key="lidocaine", clinic=None)
    )
    course = course_with_sessions(world, patient, 3, ago(days=22))
    session = course.sessions.order_by("-performed_at").first()
    assert session is not None
    effect = actions.do_report_side_effect(
        session,
        kind="swelling",
        description="Swelling of the left thigh, warm to the touch",
        onset_at=session.performed_at + dt.timedelta(hours=3),
        grade=2,
        user=world.practitioner,
    )
    assert effect.pk
    FollowUp.objects.create(
        clinic=world.clinic,
        session=session,
        priority="urgent",
        reason="Swelling that has not settled",
    )
    later = ago(hours=-2)
    Appointment.objects.create(
        clinic=world.clinic,
        patient=patient,
        course=course,
        kind=Appointment.Kind.SESSION,
        practitioner=world.practitioner,
        starts_at=later,
        ends_at=later + dt.timedelta(minutes=45),
    )
    other = Patient.objects.create(
        clinic=world.clinic,
        first_name="Ben",
        last_name="Okafor",
        date_of_birth=dt.date(1979, 11, 2),
        phone="+1 212 555 0177",
    )
    course_with_sessions(world, other, 1, ago(days=9))
    return patient, course


def width_of(page: Page) -> tuple[int, int]:
    return page.evaluate("() => [document.scrollingElement.scrollWidth, window.innerWidth]")


# The outermost elements that reach past the right edge, to name in a failure.
WIDE = """() => {
  const w = window.innerWidth, out = [];
  const past = (e) => e && e.getBoundingClientRect().right > w + 1;
  for (const e of document.querySelectorAll("body *")) {
    if (past(e) && !past(e.parentElement)) {
      const right = Math.round(e.getBoundingClientRect().right);
      out.push(e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + " to " + right);
    }
  }
  return out.slice(0, 10);
}"""


def check(page: Page, name: str) -> None:
    page.wait_for_load_state("load")
    scroll_width, inner = width_of(page)
    shot(page, f"{name}-{inner}")
    assert scroll_width <= inner, (
        f"{name} is {scroll_width} px wide on a {inner} px screen: {page.evaluate(WIDE)}"
    )


def test_the_main_pages_fit_the_screen(
    sized_page: Page, live_server: Any, world: World, busy: tuple[Patient, Course]
) -> None:
    patient, course = busy
    page = sized_page
    login(page, live_server, world.practitioner.username)
    session = course.sessions.order_by("-performed_at").first()
    assert session is not None
    for name, path in (
        ("chart", f"/patients/{patient.pk}/"),
        ("today", "/today/"),
        ("session", f"/sessions/{session.pk}/"),
        ("chart-session", f"/courses/{course.pk}/sessions/new/"),
        ("consent", f"/patients/{patient.pk}/courses/{course.pk}/consent/"),
        ("calendar", "/calendar/"),
        ("calendar-week", "/calendar/?view=week"),
    ):
        page.goto(live_server.url + path)
        check(page, name)


def test_the_chart_header_stays_on_screen_and_each_section_is_one_tap_away(
    page: Page, live_server: Any, world: World, busy: tuple[Patient, Course]
) -> None:
    patient, _ = busy
    login(page, live_server, world.practitioner.username)
    page.goto(f"{live_server.url}/patients/{patient.pk}/")
    head = page.locator(".chart-head")
    expect(head).to_contain_text("Lidocaine")
    expect(head).to_contain_text("Swelling that has not settled")
    assert_accessible(page, "chart-header")
    head.get_by_role("link", name="Safety").click()
    page.wait_for_url("**#safety")
    # The header is still at the top of the screen, and the section starts below it.
    box = head.bounding_box()
    assert box is not None and abs(box["y"]) < 1
    section = page.locator("#safety").bounding_box()
    assert section is not None and section["y"] >= box["height"] - 1
    shot(page, "chart-safety-section")
    page.goto(f"{live_server.url}/today/")
    assert_accessible(page, "today")
