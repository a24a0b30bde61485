"""The calendar in Debian's Chromium: the front desk opens the week, books the next free slot
for a patient, and moves a session after reading the preview of what shifts with it.

Each step saves a screenshot to docs/screenshots/ and runs axe on the page. The clock is
Monday 23 Nov 2026 08:00 in New York, ticking, so that the pictures show the same days each
run; the live server runs in a thread of this process and reads the same clock.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from playwright.sync_api import Page, expect

from mesoclinic.courses.actions import do_plan_course
from mesoclinic.patients.models import Patient
from mesoclinic.protocols.models import ClinicProtocol
from mesoclinic.scheduling import planning
from mesoclinic.scheduling.actions import do_book, do_cancel
from mesoclinic.scheduling.models import (
    Appointment,
    Room,
    WorkingException,
)
from tests.browser.conftest import assert_accessible, login, shot
from tests.conftest import World
from tests.scheduling_fixtures import NOW, at, set_up_calendar

pytestmark = pytest.mark.browser

MONDAY = NOW.date()
DAY = dt.timedelta(days=1)


def step(page: Page, name: str) -> None:
    shot(page, name)
    assert_accessible(page, name)


@pytest.fixture
def clock() -> Iterator[Any]:
    with time_machine.travel(NOW, tick=True) as traveller:
        yield traveller


@pytest.fixture
def clinic(world: World, clock: Any) -> World:
    """The clinic of tests.scheduling_fixtures.cal, in the live server's database: open
    08:00–20:00 Monday to Saturday, two practitioners on 09:00–13:00 and 14:00–18:00, two
    rooms."""
    world.manager.first_name, world.manager.last_name = "Jon", "Reyes"
    world.manager.save()
    return set_up_calendar(world)


def busy_week(world: World, patient: Patient) -> list[Appointment]:
    """Ana Lopez's cellulite course booked whole with Maria Silva, and a few other patients
    around it, one of them cancelled."""
    course = do_plan_course(
        patient,
        ClinicProtocol.current(world.clinic, "cellulite"),  # type: ignore[arg-type]
        indication="cellulite",
        areas=["thighs", "buttocks"],
        cadence_days=7,
        planned_sessions=15,
        user=world.manager,
    )
    made = planning.do_book_course(course, user=world.front_desk, practitioner=world.practitioner)
    others = [
        Patient.objects.create(
            clinic=world.clinic, first_name=first, last_name=last, date_of_birth=dt.date(1980, 1, n)
        )
        for n, (first, last) in enumerate(
            [("Bea", "Cruz"), ("Chloé", "Martin"), ("Dev", "Patel"), ("Emma", "Stone")], start=1
        )
    ]
    rooms = list(Room.objects.filter(clinic=world.clinic))
    visits = [
        (others[0], world.manager, at(9, 30, MONDAY), 45, "session", 0),
        (others[1], world.manager, at(11, 0, MONDAY), 20, "review", 1),
        (others[2], world.practitioner, at(14, 30, MONDAY), 40, "session", 0),
        (others[3], world.manager, at(15, 0, MONDAY + DAY), 30, "maintenance", 1),
        (others[1], world.practitioner, at(10, 0, MONDAY + 2 * DAY), 30, "test_reading", 1),
        (others[2], world.manager, at(16, 0, MONDAY + 3 * DAY), 20, "review", 0),
    ]
    for who, practitioner, start, minutes, kind, room in visits:
        do_book(
            who,
            kind=kind,
            practitioner=practitioner,
            starts_at=start,
            ends_at=start + dt.timedelta(minutes=minutes),
            room=rooms[room],
            user=world.front_desk,
        )
    gone = do_book(
        others[3],
        kind="review",
        practitioner=world.practitioner,
        starts_at=at(16, 0, MONDAY),
        ends_at=at(16, 20, MONDAY),
        user=world.front_desk,
    )
    do_cancel(gone, user=world.front_desk, reason="Called to cancel")
    return made


def test_the_front_desk_books_the_next_free_slot_and_moves_a_session(
    page: Page, live_server: Any, clinic: World, patient: Patient
) -> None:
    made = busy_week(clinic, patient)
    was = {a.pk: a.starts_at for a in made}
    login(page, live_server, clinic.front_desk.username)

    # 1. The week: a row per practitioner, a cell per day, the visits listed in each.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Calendar").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Monday 23 November 2026")
    page.get_by_role("navigation", name="Calendar views").get_by_role("link", name="Week").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Week of Mon 23 Nov")
    week = page.locator("table.cal-week")
    expect(week.get_by_role("rowheader")).to_have_text(["Jon Reyes", "Maria Silva"])
    expect(week.locator("li.appt.gone")).to_contain_text("Emma Stone")
    step(page, "calendar-week")

    # 2. A day: the time grid with a column per practitioner.
    week.get_by_role("link", name="Mon 23 Nov").click()
    expect(page.locator("table.cal-grid")).to_be_visible()
    expect(page.get_by_role("heading", name=re.compile("Cancelled and no-shows"))).to_be_visible()
    step(page, "calendar-day")

    # 3. The next free slot for Ana Lopez: a 30-minute review with Maria Silva.
    page.get_by_role("link", name="Book the next free slot").click()
    page.get_by_label("Find a patient").fill("Lopez")
    # Enter searches whether or not htmx had started on the new page when the text was typed.
    page.get_by_label("Find a patient").press("Enter")
    page.locator("#patient-results").get_by_role("link", name=re.compile("Lopez, Ana")).click()
    page.get_by_role("combobox", name=re.compile("^Visit")).select_option("review")
    page.get_by_role("combobox", name=re.compile("^Practitioner")).select_option(
        label="Maria Silva"
    )
    page.get_by_role("combobox", name=re.compile("^Length")).select_option("30")
    page.get_by_role("button", name="Find the next free slot").click()
    proposal = page.locator(".cal-proposal")
    expect(proposal).to_contain_text("with Maria Silva")
    first_offer = proposal.inner_text()
    step(page, "calendar-book")
    page.get_by_role("link", name="Next one after").click()
    expect(proposal).not_to_have_text(first_offer)
    offered = re.search(r"(\d\d:\d\d)–", proposal.inner_text())
    assert offered is not None
    page.get_by_role("button", name="Book this slot").click()
    expect(page.get_by_text(re.compile("^Booked: Review for Ana Lopez"))).to_be_visible()
    review = Appointment.objects.get(patient=patient, kind="review")
    assert f"{review.starts_at.astimezone(clinic.clinic.tz):%H:%M}" == offered.group(1)
    assert review.room is not None
    expect(page.locator(f"#appt-{review.pk}")).to_contain_text("Ana Lopez")
    step(page, "calendar-booked")

    # 4. Session 1 moves four days on; the preview lists every later session that shifts.
    first = made[1]
    local = first.starts_at.astimezone(clinic.clinic.tz)
    page.goto(
        f"{live_server.url}/calendar/?date={local.date().isoformat()}&view=day"
        f"&practitioner={clinic.practitioner.pk}"
    )
    page.locator(f"#appt-{first.pk}").get_by_role(
        "link", name=re.compile("Session 1 of 15 for Ana Lopez")
    ).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Session · Ana Lopez")
    target = local.date() + 4 * DAY
    while target.weekday() >= 5:
        target += DAY
    page.get_by_label("New date").fill(target.isoformat())
    page.get_by_label("New time").fill("10:00")
    with page.expect_response(lambda r: "/move/?" in r.url) as previewed:
        page.get_by_role("button", name="Preview the move").click()
    assert previewed.value.request.headers.get("hx-request") == "true"  # swapped in place
    changes = page.get_by_role("table", name="What changes")
    expect(changes).to_be_visible()
    expect(changes.get_by_role("row")).not_to_have_count(2)  # more than this visit moves
    expect(page.locator("#move-status")).to_contain_text("Preview ready")
    assert "/move/?" in page.url  # htmx pushed the preview's address: reloading keeps it
    step(page, "calendar-move-preview")
    shifted = changes.get_by_role("row").count() - 1
    page.get_by_role("button", name="Confirm the move").click()
    expect(page.get_by_text(re.compile("^Moved to"))).to_be_visible()
    first.refresh_from_db()
    assert first.starts_at.astimezone(clinic.clinic.tz).date() == target
    moved = [a for a in Appointment.objects.filter(course=first.course) if a.starts_at != was[a.pk]]
    assert len(moved) == shifted
    step(page, "calendar-moved")


def test_the_week_reads_on_a_tablet(
    tablet_page: Page, live_server: Any, clinic: World, patient: Patient
) -> None:
    busy_week(clinic, patient)
    login(tablet_page, live_server, clinic.front_desk.username)
    tablet_page.goto(f"{live_server.url}/calendar/?date={MONDAY.isoformat()}&view=week")
    table = tablet_page.locator("table.cal-week")
    expect(table).to_be_visible()
    # The week fits the tablet's width without scrolling sideways.
    box = table.bounding_box()
    assert box is not None and box["width"] <= 820
    step(tablet_page, "calendar-week-tablet")
    # One practitioner's week: the time grid with a column per day.
    table.get_by_role("link", name="Maria Silva").click()
    expect(tablet_page.get_by_role("heading", level=1)).to_contain_text("Maria Silva")
    expect(tablet_page.locator("table.cal-grid thead th")).to_have_count(8)
    step(tablet_page, "calendar-week-practitioner-tablet")
    tablet_page.goto(f"{live_server.url}/calendar/?date={MONDAY.isoformat()}&view=day")
    step(tablet_page, "calendar-day-tablet")


def test_a_move_that_breaks_the_cadence_is_kept_only_once_accepted(
    page: Page, live_server: Any, clinic: World, patient: Patient
) -> None:
    made = busy_week(clinic, patient)
    first, second = made[1], made[2]
    was, second_was = first.starts_at, second.starts_at
    tz = clinic.clinic.tz
    target = first.starts_at.astimezone(tz).date() + 6 * DAY
    # Maria Silva is away the two weeks after: session 2 cannot keep its window.
    for n in range(1, 15):
        WorkingException.objects.create(
            clinic=clinic.clinic, user=clinic.practitioner, date=target + n * DAY, kind="time_off"
        )
    login(page, live_server, clinic.front_desk.username)
    page.goto(f"{live_server.url}/calendar/appointments/{first.pk}/")
    page.get_by_label("New date").fill(target.isoformat())
    page.get_by_label("New time").fill("10:00")
    page.get_by_role("button", name="Preview the move").click()
    expect(page.get_by_role("heading", name="The course's cadence would break")).to_be_visible()
    expect(page.locator("#move-preview ul.reasons").first).to_contain_text("cannot keep its window")
    step(page, "calendar-move-problems")

    # Confirmed without accepting the break: refused, with the reason, and nothing moves.
    page.get_by_role("button", name="Confirm the move").click()
    expect(page.get_by_role("alert")).to_contain_text("the break was not accepted")
    expect(page.locator("#move-preview ul.reasons").last).to_contain_text(
        "has no free 40 minutes in it"
    )
    first.refresh_from_db()
    assert first.starts_at == was
    step(page, "calendar-move-refused")

    page.get_by_label("Keep the move and accept the broken cadence").check()
    page.get_by_role("button", name="Confirm the move").click()
    expect(page.get_by_text(re.compile("The broken cadence was accepted"))).to_be_visible()
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.starts_at.astimezone(tz).date() == target
    assert second.starts_at == second_was  # it could not keep its window, so it stays
