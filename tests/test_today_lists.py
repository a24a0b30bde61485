"""Today's work lists stay short as the clinic grows: each shows its most pressing rows, counts
the rest, and links to its own page with every row. Today's cost is then the same for a clinic
of ten patients or of ten thousand."""

from __future__ import annotations

import datetime as dt

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from mesoclinic.accounts.models import AuditEvent
from mesoclinic.courses.models import Course, FollowUp, Session
from mesoclinic.patients.models import Patient
from mesoclinic.web import today
from tests.conftest import World, ago
from tests.test_web import course_with_sessions, signed_in


def open_follow_ups(world: World, session: Session, n: int) -> list[FollowUp]:
    """`n` open follow-ups, the first urgent, each opened an hour after the one before."""
    return [
        FollowUp.objects.create(
            clinic=world.clinic,
            session=session,
            priority=FollowUp.Priority.URGENT if i == 0 else FollowUp.Priority.ROUTINE,
            reason=f"Call back about the bruise number {i}",
            opened_at=ago(days=2) + dt.timedelta(hours=i),
        )
        for i in range(n)
    ]


def another_patient(world: World, n: int) -> Patient:
    return Patient.objects.create(
        clinic=world.clinic,
        first_name=f"Patient{n}",
        last_name="Due",
        date_of_birth=dt.date(1985, 1, n),
        phone=f"+1 212 555 01{n:02d}",
    )


def today_queries(client: Client) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get("/today/").status_code == 200
    return len(captured)


class TodayListTests:
    def test_today_shows_the_first_rows_counts_the_rest_and_links_to_them_all(
        self, world: World, patient: Patient
    ) -> None:
        course = course_with_sessions(world, patient, 1, ago(days=3))
        made = open_follow_ups(world, course.sessions.get(), today.ROWS + 3)
        client = signed_in(world.practitioner)
        page = client.get("/today/").content.decode()
        section = page.split('id="h-followups"')[1].split("</section>")[0]
        assert f'<span class="count">{today.ROWS + 3}</span>' in section
        # The urgent one first, then the longest open; the last three are on the list's page.
        assert section.count('id="follow-up-') == today.ROWS
        assert section.index(f'id="follow-up-{made[0].pk}"') < section.index(
            f'id="follow-up-{made[1].pk}"'
        )
        assert f'id="follow-up-{made[-1].pk}"' not in section
        assert f"Showing the first {today.ROWS} of {today.ROWS + 3}." in section
        assert 'href="/today/follow-ups/"' in section

        whole = client.get("/today/follow-ups/").content.decode()
        assert whole.count('id="follow-up-') == today.ROWS + 3
        assert "Showing the first" not in whole

    def test_a_follow_up_closed_from_its_list_returns_to_the_list(
        self, world: World, patient: Patient
    ) -> None:
        course = course_with_sessions(world, patient, 1, ago(days=3))
        (follow_up,) = open_follow_ups(world, course.sessions.get(), 1)
        client = signed_in(world.practitioner)
        page = client.get("/today/follow-ups/").content.decode()
        assert 'name="next" value="follow-ups"' in page
        response = client.post(
            f"/follow-ups/{follow_up.pk}/close/",
            {"outcome": "Called; healing.", "resolution": "resolved", "next": "follow-ups"},
        )
        assert response.status_code == 302 and response["Location"] == "/today/follow-ups/"
        follow_up.refresh_from_db()
        assert follow_up.status == FollowUp.Status.DONE

    def test_each_list_has_its_page_and_an_unknown_one_is_not_found(
        self, world: World, patient: Patient
    ) -> None:
        client = signed_in(world.front_desk)
        for name, title in today.WORK_LISTS.items():
            response = client.get(f"/today/{name}/")
            assert response.status_code == 200, name
            assert f"<h1>{title}" in response.content.decode()
        assert client.get("/today/everything/").status_code == 404

    def test_a_list_shows_only_the_clinics_own_rows(
        self, world: World, other: World, patient: Patient
    ) -> None:
        course = course_with_sessions(world, patient, 1, ago(days=3))
        open_follow_ups(world, course.sessions.get(), 2)
        page = signed_in(other.practitioner).get("/today/follow-ups/").content.decode()
        assert "Call back about the bruise" not in page and "Ana Lopez" not in page

    def test_today_audits_the_patients_it_shows_and_the_list_those_it_lists(
        self, world: World, patient: Patient
    ) -> None:
        courses = [course_with_sessions(world, patient, 1, ago(days=3))]
        for n in range(1, today.ROWS + 2):
            extra = another_patient(world, n)
            courses.append(course_with_sessions(world, extra, 1, ago(days=3)))
        for course in courses:
            open_follow_ups(world, course.sessions.get(), 1)
        client = signed_in(world.practitioner)
        AuditEvent.objects.all().delete()
        client.get("/today/")
        shown = set(
            AuditEvent.objects.filter(detail__page="today").values_list("patient_id", flat=True)
        )
        # Each shown follow-up names its patient; the ones only counted are not read.
        assert len(shown) == today.ROWS
        client.get("/today/follow-ups/")
        listed = set(
            AuditEvent.objects.filter(detail__page="today: follow-ups").values_list(
                "patient_id", flat=True
            )
        )
        assert listed == {c.patient_id for c in courses}

    def test_todays_queries_do_not_grow_with_the_clinic(
        self, world: World, patient: Patient
    ) -> None:
        # Due courses, broken cadences, follow-ups and allergy tests waiting: Today reads each
        # list in a fixed number of queries, however many rows the clinic has.
        client = signed_in(world.practitioner)
        first = course_with_sessions(world, patient, 1, ago(days=20))
        open_follow_ups(world, first.sessions.get(), 1)
        small = today_queries(client)
        for n in range(1, today.ROWS + 4):
            course = course_with_sessions(world, another_patient(world, n), 2, ago(days=30))
            open_follow_ups(world, course.sessions.order_by("number").last(), 2)
        assert Course.objects.filter(clinic=world.clinic).count() == today.ROWS + 4
        page = client.get("/today/").content.decode()
        due = page.split('id="h-due"')[1].split("</section>")[0]
        assert f'<span class="count">{today.ROWS + 4}</span>' in due
        assert today_queries(client) == small
