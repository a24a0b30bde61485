"""The staff calendar: the day and the week with a column per practitioner, an appointment's
page (move with a preview, cancel, no-show), and booking the next free slot. "Now" is Monday
23 Nov 2026 08:00 in New York (tests.test_scheduling); the clinic opens 08:00–20:00 Monday to
Saturday, and Maria Silva and the manager work 09:00–13:00 and 14:00–18:00 on weekdays."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from mesoclinic.accounts.models import AuditEvent, User
from mesoclinic.courses.models import Course
from mesoclinic.patients.models import Patient
from mesoclinic.scheduling import planning
from mesoclinic.scheduling.actions import do_book, do_cancel
from mesoclinic.scheduling.models import Appointment, Holiday, Room, WorkingException
from tests.conftest import World
from tests.scheduling_fixtures import NEW_YORK, NOW, TUESDAY, at
from tests.test_scheduling import second_patient
from tests.test_web import signed_in

DAY = dt.timedelta(days=1)
MONDAY = NOW.date()


def book(
    world: World,
    patient: Patient,
    start: dt.datetime,
    minutes: int = 30,
    **kw: Any,
) -> Appointment:
    kw.setdefault("practitioner", world.practitioner)
    kw.setdefault("kind", Appointment.Kind.SESSION)
    return do_book(
        patient,
        starts_at=start,
        ends_at=start + dt.timedelta(minutes=minutes),
        user=world.front_desk,
        **kw,
    )


def page(client: Client, url: str, status: int = 200) -> str:
    response = client.get(url)
    assert response.status_code == status, (response.status_code, response.content[:300])
    return response.content.decode()


def cell_of(html: str, appointment: Appointment) -> str:
    """The grid cell (<td ...>...</td>) that holds the appointment's block."""
    inside = r"(?:(?!</td>).)*"
    cell = r'<td rowspan="\d+" class="cal-appts[^"]*">'
    found = re.search(
        rf'{cell}{inside}id="appt-{appointment.pk}"{inside}</td>',
        html,
        re.S,
    )
    assert found is not None, f"no grid cell holds appointment {appointment.pk}"
    return found.group(0)


def rowspan(cell: str) -> int:
    found = re.match(r'<td rowspan="(\d+)"', cell)
    assert found is not None
    return int(found.group(1))


def local(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(NEW_YORK)


class CalendarDayTests:
    def test_the_day_has_a_column_per_practitioner_and_a_block_per_visit(
        self, cal: World, patient: Patient
    ) -> None:
        room = Room.objects.get(clinic=cal.clinic, name="Room 1")
        session = book(cal, patient, at(10), minutes=40, room=room)
        review = book(
            cal,
            second_patient(cal),
            at(15),
            minutes=20,
            practitioner=cal.manager,
            kind=Appointment.Kind.REVIEW,
        )

        html = page(signed_in(cal.front_desk), "/calendar/?date=2026-12-01&view=day")

        assert "Tuesday 1 December 2026" in html
        heads = re.findall(r'<span class="cal-who">([^<]+)</span>', html)
        assert heads == ["Manager", "Maria Silva"]  # practitioners_of's order: by first name
        block = cell_of(html, session)
        assert rowspan(block) == 3  # 40 minutes take three 15-minute rows
        assert f'href="/patients/{patient.pk}/">Ana Lopez</a>' in block
        assert f'href="/calendar/appointments/{session.pk}/"' in block
        assert "10:00–10:40" in block and "Session" in block and "Room 1" in block
        assert "Booked" in block
        other = cell_of(html, review)
        assert rowspan(other) == 2 and "Bea Cruz" in other and "Review" in other

    def test_the_grid_spans_opening_hours_and_shades_time_off(
        self, cal: World, patient: Patient
    ) -> None:
        html = page(signed_in(cal.front_desk), "/calendar/?date=2026-12-01")

        rows = re.findall(r'<th scope="row" class="cal-time">', html)
        assert len(rows) == 12 * 4  # 08:00 to 20:00 in quarters
        # Before 09:00, the lunch hour and after 18:00, each practitioner is not working.
        assert (
            html.count('<td rowspan="4" class="cal-off"><span class="cal-off-label">Not working')
            == 4
        )
        assert (
            html.count('<td rowspan="8" class="cal-off"><span class="cal-off-label">Not working')
            == 2
        )
        assert html.count('<td class="cal-free">') == 2 * 8 * 4
        assert (
            '<span class="nowrap">09:00–13:00</span>, <span class="nowrap">14:00–18:00</span>'
            in html
        )

    def test_a_cancelled_visit_frees_its_rows_and_is_listed_below(
        self, cal: World, patient: Patient
    ) -> None:
        gone = book(cal, patient, at(10))
        do_cancel(gone, user=cal.front_desk, reason="Unwell")
        taken = book(cal, second_patient(cal), at(10))

        html = page(signed_in(cal.front_desk), "/calendar/?date=2026-12-01")

        assert cell_of(html, taken)
        assert f'id="appt-{gone.pk}"' not in html
        below = html.split('id="h-gone"', 1)[1]
        assert f"/calendar/appointments/{gone.pk}/" in below
        assert "Cancelled" in below and "Unwell" in below

    def test_a_holiday_and_a_day_off_are_said_in_words(self, cal: World, patient: Patient) -> None:
        Holiday.objects.create(clinic=cal.clinic, date=TUESDAY, name="Founders' Day")
        WorkingException.objects.create(
            clinic=cal.clinic, user=cal.manager, date=TUESDAY + DAY, kind="time_off"
        )
        client = signed_in(cal.front_desk)

        holiday = page(client, "/calendar/?date=2026-12-01")
        assert "is a holiday (Founders&#x27; Day): the clinic is closed." in holiday
        assert 'class="cal-free"' not in holiday
        day_off = page(client, "/calendar/?date=2026-12-02")
        assert day_off.count("Not working") >= 1 and 'class="cal-free"' in day_off
        sunday = page(client, "/calendar/?date=2026-12-06")
        assert "The clinic is closed" in sunday

    def test_a_visit_outside_the_practitioners_hours_is_flagged(
        self, cal: World, patient: Patient
    ) -> None:
        visit = book(cal, patient, at(10))
        WorkingException.objects.create(
            clinic=cal.clinic,
            user=cal.practitioner,
            date=TUESDAY,
            kind="time_off",
            starts=dt.time(9),
            ends=dt.time(12),
        )

        html = page(signed_in(cal.front_desk), "/calendar/?date=2026-12-01")

        assert "Outside working hours" in cell_of(html, visit)

    def test_today_is_the_clinics_date_not_the_servers(self, cal: World) -> None:
        # 21:00 in New York is already Tuesday in UTC.
        with time_machine.travel(dt.datetime(2026, 11, 23, 21, 0, tzinfo=NEW_YORK), tick=False):
            html = page(signed_in(cal.front_desk), "/calendar/")
        assert "Monday 23 November 2026" in html

    def test_navigation_and_a_malformed_query_fall_back_to_today(self, cal: World) -> None:
        client = signed_in(cal.front_desk)

        html = page(client, "/calendar/?date=2026-12-01&view=day")
        assert 'href="/calendar/?date=2026-11-30&amp;view=day"' in html
        assert 'href="/calendar/?date=2026-12-02&amp;view=day"' in html
        assert 'href="/calendar/?date=2026-11-23&amp;view=day">Today' in html
        week = page(client, "/calendar/?date=2026-12-02&view=week")
        assert 'href="/calendar/?date=2026-11-25&amp;view=week"' in week

        for query in ("date=2026-13-45&view=month&practitioner=x", "date=&practitioner=99999"):
            assert "Monday 23 November 2026" in page(client, f"/calendar/?{query}")

    def test_the_practitioner_filter_shows_one_column(self, cal: World, patient: Patient) -> None:
        mine = book(cal, patient, at(10))
        theirs = book(cal, second_patient(cal), at(10), practitioner=cal.manager)

        html = page(
            signed_in(cal.front_desk),
            f"/calendar/?date=2026-12-01&practitioner={cal.practitioner.pk}",
        )

        assert re.findall(r'<span class="cal-who">([^<]+)</span>', html) == ["Maria Silva"]
        assert cell_of(html, mine)
        assert f'id="appt-{theirs.pk}"' not in html

    def test_the_day_and_week_take_the_same_queries_for_few_or_many_visits(
        self, cal: World, patient: Patient, django_assert_max_num_queries: Any
    ) -> None:
        client = signed_in(cal.front_desk)
        book(cal, patient, at(9))
        client.get("/calendar/?date=2026-12-01")  # the session and the user are loaded once
        with CaptureQueriesContext(connection) as few:
            page(client, "/calendar/?date=2026-12-01")
        others = [second_patient(cal) for _ in range(6)]  # a patient is in one place at once
        times = [at(9, 30) + dt.timedelta(minutes=30 * n) for n in range(6)]
        times += [at(14) + dt.timedelta(minutes=30 * n) for n in range(6)]
        for n, start in enumerate(times):
            book(cal, others[n % 3], start)
            book(cal, others[3 + n % 3], start, practitioner=cal.manager)

        with django_assert_max_num_queries(len(few)):
            html = page(client, "/calendar/?date=2026-12-01")
        assert html.count('class="appt kind-session') == 25
        with django_assert_max_num_queries(len(few)):
            week = page(client, "/calendar/?date=2026-12-01&view=week")
        assert week.count('class="appt kind-session') == 25


class CalendarWeekTests:
    def test_the_week_has_a_row_per_practitioner_and_a_cell_per_day(
        self, cal: World, patient: Patient
    ) -> None:
        tuesday = book(cal, patient, at(10))
        thursday = book(
            cal, second_patient(cal), at(11, 0, TUESDAY + 2 * DAY), practitioner=cal.manager
        )
        gone = book(cal, patient, at(15, 0, TUESDAY + DAY))
        do_cancel(gone, user=cal.front_desk)

        html = page(signed_in(cal.front_desk), "/calendar/?date=2026-12-03&view=week")

        assert "Week of Mon 30 Nov – Sun 6 Dec 2026" in html
        heads = re.findall(r'<th scope="col"[^>]*><a href="[^"]+">(\w{3} \d+ \w{3})</a>', html)
        assert heads == [
            "Mon 30 Nov",
            "Tue 1 Dec",
            "Wed 2 Dec",
            "Thu 3 Dec",
            "Fri 4 Dec",
            "Sat 5 Dec",
            "Sun 6 Dec",
        ]
        rows = re.findall(r'<tr>\s*<th scope="row"><a href="[^"]+">([^<]+)</a>', html)
        assert rows == ["Manager", "Maria Silva"]
        maria = html.split(">Maria Silva</a>", 1)[1]
        cells = maria.split("<td")[1:8]
        assert f'id="appt-{tuesday.pk}"' in cells[1]
        assert 'class="appt gone"' in cells[2] and "Cancelled" in cells[2]
        assert "The clinic is closed" in cells[6]
        assert "8 h free" in cells[0] and "7 h 30 min free" in cells[1]
        assert f'id="appt-{thursday.pk}"' in html.split(">Maria Silva</a>", 1)[0]

    def test_one_practitioners_week_is_a_time_grid_with_a_column_per_day(
        self, cal: World, patient: Patient
    ) -> None:
        visit = book(cal, patient, at(10, 0, TUESDAY + DAY), minutes=45)

        html = page(
            signed_in(cal.front_desk),
            f"/calendar/?date=2026-12-01&view=week&practitioner={cal.practitioner.pk}",
        )

        assert 'class="cal-grid"' in html
        heads = re.findall(r'<a class="cal-who" href="[^"]+">([^<]+)</a>', html)
        assert heads[:2] == ["Mon 30 Nov", "Tue 1 Dec"] and len(heads) == 7
        assert rowspan(cell_of(html, visit)) == 3


class MoveTests:
    def course_booked(self, cal: World, course: Course) -> list[Appointment]:
        return planning.do_book_course(course, user=cal.front_desk, practitioner=cal.practitioner)

    def target(self, cal: World, near: dt.datetime) -> dt.datetime:
        day = local(near).date()
        while day.weekday() >= 5:
            day += DAY
        start = at(10, 0, day)
        while Appointment.objects.filter(
            practitioner=cal.practitioner,
            starts_at__lt=start + dt.timedelta(hours=1),
            ends_at__gt=start,
            status="booked",
        ).exists():
            start += dt.timedelta(hours=1)
        return start

    def query(self, when: dt.datetime, practitioner: User, **extra: str) -> dict[str, str]:
        moment = local(when)
        return {
            "date": moment.date().isoformat(),
            "time": moment.strftime("%H:%M"),
            "practitioner": str(practitioner.pk),
            **extra,
        }

    def preview(self, client: Client, a: Appointment, data: dict[str, str]) -> tuple[str, str]:
        response = client.get(f"/calendar/appointments/{a.pk}/move/", data)
        assert response.status_code == 200, response.content[:300]
        html = response.content.decode()
        plan = re.search(r'name="plan" value="([0-9a-f]+)"', html)
        return html, plan.group(1) if plan else ""

    def test_the_page_shows_the_visit_and_its_actions(
        self, cal: World, patient: Patient, course: Course
    ) -> None:
        first = self.course_booked(cal, course)[1]

        html = page(signed_in(cal.front_desk), f"/calendar/appointments/{first.pk}/")

        assert "Session · Ana Lopez" in html and "Maria Silva" in html
        assert f'href="/patients/{patient.pk}/#course-{course.pk}"' in html
        assert "Preview the move" in html and "Cancel the appointment" in html
        assert "Mark as a no-show" not in html  # it has not begun
        assert AuditEvent.objects.filter(action="view", object_id=str(first.pk), via="web").exists()

    def test_the_preview_lists_each_later_visit_that_shifts_and_moves_nothing(
        self, cal: World, course: Course
    ) -> None:
        made = self.course_booked(cal, course)
        first = made[1]
        target = self.target(cal, first.starts_at + 4 * DAY)
        before = [a.starts_at for a in made]

        html, plan = self.preview(
            signed_in(cal.front_desk), first, self.query(target, cal.practitioner)
        )

        expected = planning.plan_move(first, target)
        shifted = [c for c in expected.changes if c.moved]
        assert len(shifted) > 1
        rows = re.findall(r"<tr(?: class=\"current-row\")?>\s*<td>Session", html)
        assert len(rows) == len(shifted)
        assert "Session (this visit)" in html
        for c in shifted[1:3]:
            old, new = local(c.appointment.starts_at), local(c.starts_at)
            assert f"{old:%a} {old.day} {old:%b} {old:%H:%M}" in html
            assert f"<strong>{new:%a} {new.day} {new:%b} {new:%H:%M}</strong>" in html
        assert plan and "Confirm the move" in html
        assert "accept the broken cadence" not in html  # no problem, no box
        assert [a.starts_at for a in Appointment.objects.filter(course=course)] == before

    def test_confirming_applies_the_previewed_move(self, cal: World, course: Course) -> None:
        made = self.course_booked(cal, course)
        first = made[1]
        was = first.starts_at
        target = self.target(cal, first.starts_at + 4 * DAY)
        client = signed_in(cal.front_desk)
        data = self.query(target, cal.practitioner)
        _, plan = self.preview(client, first, data)

        response = client.post(f"/calendar/appointments/{first.pk}/move/", {**data, "plan": plan})

        assert response.status_code == 302
        day = local(target).date().isoformat()
        assert response["Location"] == f"/calendar/?date={day}&view=day#appt-{first.pk}"
        first.refresh_from_db()
        assert first.starts_at == target
        moved = AuditEvent.objects.filter(object_id=str(first.pk), via="web", action="update")
        assert moved.get().detail["moved_from"] == was.isoformat()
        followed = client.get(response["Location"]).content.decode()
        assert "Moved to" in followed and "later visits shifted too" in followed

    def test_a_move_onto_a_holiday_is_refused_with_the_reason(
        self, cal: World, course: Course
    ) -> None:
        last = self.course_booked(cal, course)[-1]
        target = last.starts_at + DAY
        client = signed_in(cal.front_desk)
        data = self.query(target, cal.practitioner)
        _, plan = self.preview(client, last, data)  # an old tab, previewed before the holiday
        Holiday.objects.create(clinic=cal.clinic, date=local(target).date(), name="Founders' Day")

        html, _ = self.preview(client, last, data)
        assert "This move cannot be made" in html and "Founders&#x27; Day" in html
        assert "Confirm the move" not in html

        # Confirmed from the old tab: the server refuses it, naming the holiday.
        response = client.post(f"/calendar/appointments/{last.pk}/move/", {**data, "plan": plan})
        html = response.content.decode()
        assert response.status_code == 409
        assert "The move was refused" in html and "The clinic is closed on" in html
        last.refresh_from_db()
        assert last.starts_at != target

    def test_a_move_that_breaks_the_cadence_needs_the_break_accepted(
        self, cal: World, course: Course
    ) -> None:
        made = self.course_booked(cal, course)
        first, second = made[1], made[2]
        target = self.target(cal, first.starts_at + 4 * DAY)
        for n in range(1, 14):  # away the two weeks session 2 would shift into
            WorkingException.objects.create(
                clinic=cal.clinic,
                user=cal.practitioner,
                date=local(target).date() + n * DAY,
                kind="time_off",
            )
        client = signed_in(cal.front_desk)
        data = self.query(target, cal.practitioner)

        html, plan = self.preview(client, first, data)
        assert "The course's cadence would break" in html
        assert "cannot keep its window" in html
        assert "Keep the move and accept the broken cadence" in html

        refused = client.post(f"/calendar/appointments/{first.pk}/move/", {**data, "plan": plan})
        assert refused.status_code == 409
        assert "the break was not accepted" in refused.content.decode()
        assert "Maria Silva has no free 40 minutes in it" in refused.content.decode()
        first.refresh_from_db()
        assert first.starts_at == made[1].starts_at

        accepted = client.post(
            f"/calendar/appointments/{first.pk}/move/",
            {**data, "plan": plan, "accept_break": "on"},
        )
        assert accepted.status_code == 302
        first.refresh_from_db()
        second.refresh_from_db()
        assert first.starts_at == target
        assert second.starts_at == made[2].starts_at  # it could not move, so it stays
        audit = AuditEvent.objects.filter(object_id=str(first.pk), via="web", action="update")
        assert audit.get().detail["cadence_break_accepted"]

    def test_a_confirmation_of_a_stale_preview_moves_nothing(
        self, cal: World, course: Course
    ) -> None:
        first = self.course_booked(cal, course)[1]
        target = self.target(cal, first.starts_at + 4 * DAY)
        data = self.query(target, cal.practitioner, plan="0123456789abcdef0123")

        response = signed_in(cal.front_desk).post(f"/calendar/appointments/{first.pk}/move/", data)

        assert response.status_code == 409
        assert "The calendar changed since the preview" in response.content.decode()
        first.refresh_from_db()
        assert first.starts_at != target

    def test_a_visit_moves_to_another_practitioner(self, cal: World, patient: Patient) -> None:
        visit = book(cal, patient, at(10), kind=Appointment.Kind.REVIEW)
        client = signed_in(cal.front_desk)
        data = self.query(at(11), cal.manager)

        html, plan = self.preview(client, visit, data)
        assert "Maria Silva → <strong>Manager</strong>" in html
        response = client.post(f"/calendar/appointments/{visit.pk}/move/", {**data, "plan": plan})

        assert response.status_code == 302
        visit.refresh_from_db()
        assert (visit.practitioner, visit.starts_at) == (cal.manager, at(11))

    def test_a_bad_date_is_a_form_error(self, cal: World, patient: Patient) -> None:
        visit = book(cal, patient, at(10))
        client = signed_in(cal.front_desk)

        html = page(
            client,
            f"/calendar/appointments/{visit.pk}/move/?date=2026-02-31&time=10:00"
            f"&practitioner={cal.practitioner.pk}",
        )
        assert "Enter a valid date." in html
        foreign = page(
            client,
            f"/calendar/appointments/{visit.pk}/move/?date=2026-12-02&time=10:00&practitioner=999",
        )
        assert "Select a valid choice." in foreign


class CancelAndNoShowTests:
    def test_the_front_desk_cancels_with_a_reason(self, cal: World, patient: Patient) -> None:
        visit = book(cal, patient, at(10))
        client = signed_in(cal.front_desk)

        empty = client.post(f"/calendar/appointments/{visit.pk}/cancel/", {"reason": " "})
        assert empty.status_code == 400 and "This field is required." in empty.content.decode()
        response = client.post(
            f"/calendar/appointments/{visit.pk}/cancel/", {"reason": "Called, unwell"}
        )

        assert response.status_code == 302
        visit.refresh_from_db()
        assert (visit.status, visit.cancel_reason) == ("cancelled", "Called, unwell")
        assert visit.cancelled_by == cal.front_desk
        html = client.get(response["Location"]).content.decode()
        assert "Cancelled: Session for Ana Lopez" in html
        assert "Preview the move" not in html and "Called, unwell" in html
        audit = AuditEvent.objects.filter(object_id=str(visit.pk), action="update").get()
        assert audit.via == "web" and audit.detail["reason"] == "Called, unwell"

        # A second tab still showing the form: the refusal is said, nothing changes.
        again = client.post(
            f"/calendar/appointments/{visit.pk}/cancel/", {"reason": "Twice"}, follow=True
        )
        assert "A cancelled appointment cannot be cancelled." in again.content.decode()
        visit.refresh_from_db()
        assert visit.cancel_reason == "Called, unwell"

    def test_a_no_show_is_marked_only_once_the_visit_has_begun(
        self, cal: World, patient: Patient, now: Any
    ) -> None:
        visit = book(cal, patient, at(10, 0, MONDAY))
        client = signed_in(cal.front_desk)
        url = f"/calendar/appointments/{visit.pk}/"

        assert "Mark as a no-show" not in page(client, url)
        early = client.post(f"{url}no-show/", follow=True)
        assert "An appointment that has not begun cannot be a no-show." in early.content.decode()
        visit.refresh_from_db()
        assert visit.status == "booked"

        now.move_to(at(10, 20, MONDAY))
        # Hours have passed since the first look: past the session's idle timeout, so the
        # front desk signs in again.
        client = signed_in(cal.front_desk)
        assert "Mark as a no-show" in page(client, url)
        done = client.post(f"{url}no-show/", follow=True)

        assert "Marked as a no-show" in done.content.decode()
        visit.refresh_from_db()
        assert (visit.status, visit.no_show_by) == ("no_show", cal.front_desk)


class BookNextFreeSlotTests:
    def slot_query(self, cal: World, patient: Patient, **changes: Any) -> dict[str, Any]:
        query = {
            "patient": patient.pk,
            "kind": "review",
            "practitioner": cal.practitioner.pk,
            "course": "",
            "minutes": 30,
        }
        query.update(changes)
        return query

    def test_the_patient_is_found_by_search_or_comes_from_a_chart_link(
        self, cal: World, patient: Patient
    ) -> None:
        client = signed_in(cal.front_desk)

        html = page(client, f"/calendar/book/?q=lopez&practitioner={cal.practitioner.pk}")
        assert (
            f'href="/calendar/book/?practitioner={cal.practitioner.pk}&amp;patient={patient.pk}"'
            in html
        )
        assert "Lopez, Ana" in html
        chosen = page(client, f"/calendar/book/?patient={patient.pk}")
        assert 'Book the next free slot <span class="count">for Ana Lopez</span>' in chosen
        assert "Find the next free slot" in chosen

    def test_booking_from_a_later_day_looks_from_that_day(
        self, cal: World, patient: Patient
    ) -> None:
        client = signed_in(cal.front_desk)
        calendar = page(client, f"/calendar/?date=2026-12-01&practitioner={cal.practitioner.pk}")
        link = re.search(r'href="(/calendar/book/[^"]*)">Book the next free slot', calendar)
        assert link is not None
        url = link.group(1).replace("&amp;", "&")
        assert "after=2026-12-01T00%3A00" in url

        search = page(client, f"{url}&q=Ana")
        chosen = re.search(r'href="(/calendar/book/\?[^"]*patient=\d+)"', search)
        assert chosen is not None
        form = page(client, chosen.group(1).replace("&amp;", "&"))
        assert 'value="2026-12-01T00:00"' in form
        assert f'<option value="{cal.practitioner.pk}" selected>' in form
        query = self.slot_query(cal, patient, after="2026-12-01T00:00")
        assert "Tuesday 1 December 2026, 09:00–09:30" in page(
            client, "/calendar/book/?" + _encode(query)
        )

    def test_it_proposes_the_next_free_slot_and_the_one_after(
        self, cal: World, patient: Patient
    ) -> None:
        book(cal, second_patient(cal), at(9, 0, MONDAY), minutes=60)
        client = signed_in(cal.front_desk)

        html = page(client, "/calendar/book/?" + _encode(self.slot_query(cal, patient)))

        assert "Monday 23 November 2026, 10:00–10:30" in html
        assert "with Maria Silva, Room 1" in html
        assert "Book this slot" in html
        after = re.search(r'href="([^"]+)">Next one after', html)
        assert after is not None
        assert "after=2026-11-23T10%3A15" in after.group(1)
        following = page(client, after.group(1).replace("&amp;", "&"))
        assert "Monday 23 November 2026, 10:15–10:45" in following

    def test_a_course_visit_takes_its_protocols_length(
        self, cal: World, patient: Patient, course: Course
    ) -> None:
        query = self.slot_query(cal, patient, kind="session", course=course.pk)

        html = page(signed_in(cal.front_desk), "/calendar/book/?" + _encode(query))

        # Two areas: 30 minutes and 10 for the second (the protocol's visit lengths).
        assert "Monday 23 November 2026, 09:00–09:40" in html

    def test_booking_the_proposal_books_it_through_the_booking_checks(
        self, cal: World, patient: Patient
    ) -> None:
        client = signed_in(cal.front_desk)
        html = page(client, "/calendar/book/?" + _encode(self.slot_query(cal, patient)))
        fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', html))
        assert fields["starts_at"] == at(9, 0, MONDAY).isoformat()

        response = client.post("/calendar/book/", fields)

        assert response.status_code == 302
        made = Appointment.objects.get(patient=patient)
        assert (made.kind, made.practitioner, made.starts_at) == (
            "review",
            cal.practitioner,
            at(9, 0, MONDAY),
        )
        assert made.duration == dt.timedelta(minutes=30) and made.room is not None
        assert response["Location"] == f"/calendar/?date=2026-11-23&view=day#appt-{made.pk}"
        audit = AuditEvent.objects.get(object_id=str(made.pk), action="create")
        assert audit.via == "web" and audit.user == cal.front_desk

    def test_a_refused_booking_names_the_reason_and_proposes_again(
        self, cal: World, patient: Patient
    ) -> None:
        client = signed_in(cal.front_desk)
        html = page(client, "/calendar/book/?" + _encode(self.slot_query(cal, patient)))
        fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', html))
        # Someone takes the proposed time first.
        book(cal, second_patient(cal), at(9, 0, MONDAY), minutes=30)

        response = client.post("/calendar/book/", fields)

        html = response.content.decode()
        assert response.status_code == 409
        assert "The booking was refused" in html
        assert "Maria Silva already has a session 09:00–09:30 on Mon 23 Nov." in html
        assert "Monday 23 November 2026, 09:30–10:00" in html
        assert not Appointment.objects.filter(patient=patient).exists()

    def test_a_time_outside_the_hours_is_refused_in_words(
        self, cal: World, patient: Patient
    ) -> None:
        fields = {**self.slot_query(cal, patient), "starts_at": at(13, 0).isoformat()}

        response = signed_in(cal.front_desk).post("/calendar/book/", fields)

        assert response.status_code == 409
        assert "Maria Silva works 09:00–13:00, 14:00–18:00 on Tue 1 Dec" in (
            response.content.decode()
        )


class CalendarAccessTests:
    URLS = (
        "/calendar/",
        "/calendar/book/",
        "/calendar/appointments/{pk}/",
        "/calendar/appointments/{pk}/move/?date=2026-12-02&time=10:00&practitioner=1",
    )

    def test_a_visitor_is_sent_to_sign_in(self, cal: World, patient: Patient) -> None:
        visit = book(cal, patient, at(10))
        for url in self.URLS:
            response = Client().get(url.format(pk=visit.pk))
            assert response.status_code == 302, url
            assert response["Location"].startswith("/accounts/login/"), url
        response = Client().post(f"/calendar/appointments/{visit.pk}/cancel/", {"reason": "x"})
        assert response.status_code == 302
        visit.refresh_from_db()
        assert visit.status == "booked"

    def test_a_patient_account_sees_nothing(self, cal: World, patient: Patient) -> None:
        visit = book(cal, patient, at(10))
        person = User.objects.create_user("ana", password="pw")
        patient.user = person
        patient.save()
        client = signed_in(person)

        for url in self.URLS:
            assert client.get(url.format(pk=visit.pk)).status_code == 403, url
        for action in ("cancel", "no-show", "move"):
            response = client.post(f"/calendar/appointments/{visit.pk}/{action}/", {"reason": "x"})
            assert response.status_code == 403, action
        assert client.post("/calendar/book/", {"patient": patient.pk}).status_code == 403
        visit.refresh_from_db()
        assert visit.status == "booked"

    def test_another_clinics_appointment_and_patient_are_not_found(
        self, cal: World, patient: Patient, other: World
    ) -> None:
        visit = book(cal, patient, at(10))
        client = signed_in(other.front_desk)

        for url in self.URLS[2:]:
            assert client.get(url.format(pk=visit.pk)).status_code == 404, url
        for action in ("cancel", "no-show", "move"):
            response = client.post(f"/calendar/appointments/{visit.pk}/{action}/", {"reason": "x"})
            assert response.status_code == 404, action
        assert client.get(f"/calendar/book/?patient={patient.pk}").status_code == 404
        response = client.post(
            "/calendar/book/",
            {"patient": patient.pk, "kind": "review", "starts_at": at(10).isoformat()},
        )
        assert response.status_code == 404
        # Their calendar shows none of this clinic's visits or practitioners.
        html = page(client, f"/calendar/?date=2026-12-01&practitioner={cal.practitioner.pk}")
        assert "Ana Lopez" not in html and "Maria Silva" not in html
        visit.refresh_from_db()
        assert visit.status == "booked"
        assert not Appointment.objects.filter(clinic=other.clinic).exists()

    def test_malformed_or_far_off_input_is_never_a_server_error(
        self, cal: World, patient: Patient
    ) -> None:
        visit = book(cal, patient, at(10))
        client = signed_in(cal.front_desk)
        move = f"/calendar/appointments/{visit.pk}/move/?practitioner={cal.practitioner.pk}"
        slot = f"/calendar/book/?patient={patient.pk}&kind=review&minutes=30"
        slot += f"&practitioner={cal.practitioner.pk}"
        for url in (
            "/calendar/?date=0001-01-01",
            "/calendar/?date=9999-12-31&view=week",
            "/calendar/book/?patient=abc&q=%00",
            f"{move}&date=9999-12-31&time=23:45",
            f"{move}&date=0001-01-01&time=00:00",
            f"{move}&date=2026-12-02&time=25:99",
            f"{slot}&after=9999-12-31T23:50",
            f"{slot}&minutes=7&kind=surgery",
        ):
            response = client.get(url)
            assert response.status_code in (200, 400), (url, response.status_code)
        past = page(client, f"{move}&date=2026-11-20&time=10:00")
        assert "An appointment cannot be moved into the past." in past
        far = client.post(
            "/calendar/book/",
            {
                "patient": patient.pk,
                "kind": "review",
                "practitioner": cal.practitioner.pk,
                "minutes": 30,
                "starts_at": "9999-12-31T23:50:00+00:00",
            },
        )
        assert far.status_code == 400
        assert "The proposed slot: Choose a date between" in far.content.decode()
        assert not Appointment.objects.exclude(pk=visit.pk).exists()

    @pytest.mark.parametrize("role", ["front_desk", "practitioner", "manager"])
    def test_every_staff_role_sees_the_calendar(self, cal: World, role: str) -> None:
        html = page(signed_in(getattr(cal, role)), "/calendar/")
        assert '<a href="/calendar/" aria-current="page">Calendar</a>' in html


def _encode(query: dict[str, Any]) -> str:
    from urllib.parse import urlencode

    return urlencode(query)
