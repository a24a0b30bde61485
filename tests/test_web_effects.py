"""Side effects in the web app: reporting one after a session, resolving it, closing its
follow-up, and each course's timeline on the chart."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from mesoclinic.accounts.models import AuditEvent
from mesoclinic.courses import actions, logic
from mesoclinic.courses.models import Course, FollowUp, Session, SideEffect
from mesoclinic.patients.models import Patient
from mesoclinic.web.timeline import course_timeline
from tests.conftest import World, ago
from tests.test_web import course_with_sessions, signed_in


def local(moment: dt.datetime, world: World) -> str:
    """A moment as the browser's datetime-local input sends it: clinic time, no zone."""
    return moment.astimezone(world.clinic.tz).strftime("%Y-%m-%dT%H:%M")


def effect_data(world: World, after: Session, **changes: Any) -> dict[str, str]:
    """The report form's fields for a swelling an hour after the session `after`."""
    data = {
        "kind": "swelling",
        "description": "",
        "onset_at": local(after.performed_at + dt.timedelta(hours=1), world),
        "grade": "1",
        "resolved_at": "",
    }
    data.update({k: str(v) for k, v in changes.items()})
    return data


def flashed(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def last_session(course: Course) -> Session:
    session = course.sessions.order_by("-number").first()
    assert session is not None
    return session


def effect_audits() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(object_type="courses.SideEffect"))


def fresh(course: Course) -> Course:
    """The course as the chart reads it: with its clinic, protocol and who planned it."""
    return Course.objects.select_related("clinic", "protocol", "created_by", "patient").get(
        pk=course.pk
    )


@pytest.fixture
def course(world: World, patient: Patient) -> Course:
    """A weekly cellulite course with two sessions, ten and three days ago."""
    return course_with_sessions(world, patient, 2, ago(days=10))


class ReportSideEffectTests:
    def test_the_status_gives_the_expected_end_on_the_clinics_clock(
        self, world: World, patient: Patient, course: Course
    ) -> None:
        from mesoclinic.lib.formats import short_when_text
        from mesoclinic.web.effects import status_words

        world.clinic.time_format = "12h"
        world.clinic.save()
        session = last_session(course)
        response = signed_in(world.practitioner).post(
            f"/sessions/{session.pk}/side-effects/new/", effect_data(world, session)
        )
        assert response.status_code == 302
        effect = SideEffect.objects.get()
        until = short_when_text(effect.expected_until, world.clinic)
        assert until.endswith((" am", " pm"))
        assert status_words(effect, world.clinic) == f"expected, until {until}."
        [message] = flashed(response)
        assert f"Status: expected, until {until}." in message

    def test_an_expected_side_effect_is_recorded_and_shown_as_expected(
        self, world: World, patient: Patient, course: Course
    ) -> None:
        session = last_session(course)
        client = signed_in(world.practitioner)
        response = client.post(
            f"/sessions/{session.pk}/side-effects/new/", effect_data(world, session)
        )
        assert response.status_code == 302
        assert response["Location"] == f"/patients/{patient.pk}/#course-{course.pk}"
        effect = SideEffect.objects.get()
        assert (effect.session, effect.kind, effect.grade) == (session, "swelling", 1)
        assert effect.status == logic.EXPECTED
        assert effect.reported_by == world.practitioner
        [message] = flashed(response)
        assert "Swelling, grade 1" in message and "Status: expected, until" in message
        assert not FollowUp.objects.exists()
        # The action audits; the view does not audit a second time.
        [row] = effect_audits()
        assert (row.action, row.via, row.user) == ("create", "web", world.practitioner)
        page = client.get(f"/patients/{patient.pk}/").content.decode()
        assert "Swelling, grade 1" in page
        assert '<span class="tag ok">Expected</span>' in page
        assert "none needed" in page

    def test_the_onset_is_read_in_the_clinics_time_zone(self, world: World, course: Course) -> None:
        session = last_session(course)
        onset = (session.performed_at + dt.timedelta(hours=2)).replace(second=0, microsecond=0)
        signed_in(world.practitioner).post(
            f"/sessions/{session.pk}/side-effects/new/",
            effect_data(world, session, onset_at=local(onset, world)),
        )
        assert SideEffect.objects.get().onset_at == onset

    def test_other_is_beyond_expected_and_its_follow_up_shows_on_the_chart_and_today(
        self, world: World, patient: Patient, course: Course
    ) -> None:
        session = last_session(course)
        client = signed_in(world.practitioner)
        response = client.post(
            f"/sessions/{session.pk}/side-effects/new/",
            effect_data(world, session, kind="other", description="Itching around the papules"),
        )
        effect = SideEffect.objects.get()
        assert effect.status == logic.BEYOND_EXPECTED
        [message] = flashed(response)
        assert "Status: beyond what is expected — a follow-up was opened." in message
        follow_up = FollowUp.objects.get(side_effect=effect, status=FollowUp.Status.OPEN)
        assert follow_up.priority == FollowUp.Priority.ROUTINE
        chart = client.get(f"/patients/{patient.pk}/").content.decode()
        assert "Other: Itching around the papules, grade 1" in chart
        assert '<span class="tag warn">Beyond expected</span>' in chart
        assert f'action="/follow-ups/{follow_up.pk}/close/"' in chart
        today = client.get("/today/").content.decode()
        assert "Other (grade 1) is beyond expected" in today

    def test_lasting_past_the_protocols_time_is_beyond_expected(
        self, world: World, course: Course
    ) -> None:
        session = course.sessions.get(number=1)
        onset = session.performed_at + dt.timedelta(hours=1)
        response = signed_in(world.practitioner).post(
            f"/sessions/{session.pk}/side-effects/new/",
            effect_data(
                world,
                session,
                onset_at=local(onset, world),
                # Swelling is expected for up to 5 days (cellulite protocol).
                resolved_at=local(onset + dt.timedelta(days=6), world),
            ),
        )
        assert SideEffect.objects.get().status == logic.BEYOND_EXPECTED
        assert "beyond what is expected — a follow-up was opened" in flashed(response)[0]
        assert FollowUp.objects.filter(status=FollowUp.Status.OPEN).count() == 1

    @pytest.mark.parametrize(
        "changes",
        [{"kind": "infection", "grade": 1}, {"kind": "swelling", "grade": 3}],
        ids=["urgent-kind", "grade-3"],
    )
    def test_an_urgent_side_effect_opens_an_urgent_follow_up_first_on_today(
        self, world: World, patient: Patient, course: Course, changes: dict[str, Any]
    ) -> None:
        session = last_session(course)
        actions.do_report_side_effect(
            session,
            kind="other",
            description="Itch",
            onset_at=ago(days=2),
            grade=1,
            user=world.practitioner,
        )
        client = signed_in(world.practitioner)
        response = client.post(
            f"/sessions/{session.pk}/side-effects/new/", effect_data(world, session, **changes)
        )
        effect = SideEffect.objects.get(kind=changes["kind"])
        assert effect.status == logic.URGENT
        [message] = flashed(response)
        assert "Status: urgent — an urgent follow-up was opened" in message
        assert effect.follow_ups.get().priority == FollowUp.Priority.URGENT
        chart = client.get(f"/patients/{patient.pk}/").content.decode()
        assert '<span class="tag bad">Urgent</span>' in chart
        assert '<span class="tag urgent">Urgent</span>' in chart
        today = client.get("/today/").content.decode()
        label = changes["kind"].capitalize()
        assert today.index(f"{label} (grade {changes['grade']}) is urgent") < today.index(
            "Other (grade 1) is beyond expected"
        )

    def test_from_the_chart_the_practitioner_chooses_the_session(
        self, world: World, patient: Patient, course: Course
    ) -> None:
        client = signed_in(world.practitioner)
        chart = client.get(f"/patients/{patient.pk}/").content.decode()
        assert f'href="/courses/{course.pk}/side-effects/new/"' in chart
        page = client.get(f"/courses/{course.pk}/side-effects/new/")
        assert page.status_code == 200
        choices = [label for _, label in page.context["form"].fields["session"].choices]
        assert [c.split(" · ")[0] for c in choices] == ["Session 2", "Session 1"]
        first = course.sessions.get(number=1)
        response = client.post(
            f"/courses/{course.pk}/side-effects/new/",
            {**effect_data(world, first, kind="bruising"), "session": str(first.pk)},
        )
        assert response.status_code == 302
        assert SideEffect.objects.get().session == first
        assert "after session 1" in flashed(response)[0]

    def test_the_kinds_are_the_protocols_with_what_it_expects_and_other(
        self, world: World, course: Course
    ) -> None:
        page = signed_in(world.manager).get(
            f"/sessions/{last_session(course).pk}/side-effects/new/"
        )
        kinds = dict(page.context["form"].fields["kind"].choices)
        assert kinds["swelling"] == "Swelling (expected up to 5 days)"
        assert kinds["discomfort"] == "Discomfort or heaviness (expected up to 15 min)"
        assert kinds["infection"] == "Infection (always urgent)"
        assert "other" in kinds
        grades = dict(page.context["form"].fields["grade"].choices)
        assert grades[3].startswith("3 · Severe")
        assert "grade 3 or above is urgent" in page.content.decode()

    def test_a_course_without_sessions_offers_no_form(self, world: World, patient: Patient) -> None:
        course = course_with_sessions(world, patient, 0, ago(days=1))
        client = signed_in(world.practitioner)
        assert f"/courses/{course.pk}/side-effects/new/" not in client.get(
            f"/patients/{patient.pk}/"
        ).content.decode("utf-8")
        page = client.get(f"/courses/{course.pk}/side-effects/new/")
        assert "No session has been charted in this course yet" in page.content.decode()
        client.post(f"/courses/{course.pk}/side-effects/new/", {"kind": "swelling"})
        assert not SideEffect.objects.exists()

    def test_the_session_page_links_to_the_form_for_clinical_roles_only(
        self, world: World, course: Course
    ) -> None:
        session = last_session(course)
        link = f'href="/sessions/{session.pk}/side-effects/new/"'
        page = signed_in(world.practitioner).get(f"/sessions/{session.pk}/").content.decode()
        assert link in page and "Report a side effect" in page
        front = signed_in(world.front_desk).get(f"/sessions/{session.pk}/").content.decode()
        assert link not in front


class ReportErrorTests:
    @pytest.mark.parametrize(
        ("field", "changes", "error"),
        [
            ("onset_at", {"onset_at": "before"}, "cannot be before the session."),
            ("onset_at", {"onset_at": "future"}, "cannot be in the future."),
            ("onset_at", {"onset_at": ""}, "This field is required."),
            ("resolved_at", {"resolved_at": "before_onset"}, "cannot be before the onset."),
            ("resolved_at", {"resolved_at": "future"}, "cannot be in the future."),
            ("description", {"kind": "other"}, "describe a side effect of kind other."),
            ("kind", {"kind": "rash"}, "Select a valid choice."),
            ("grade", {"grade": "6"}, "Select a valid choice."),
            ("session", {"session": "another_course"}, "Select a valid choice."),
        ],
        ids=lambda v: v if isinstance(v, str) and " " not in v else None,
    )
    def test_bad_input_is_named_on_its_field_and_nothing_is_written(
        self,
        world: World,
        patient: Patient,
        course: Course,
        field: str,
        changes: dict[str, str],
        error: str,
    ) -> None:
        session = last_session(course)
        onset = session.performed_at + dt.timedelta(hours=1)
        other_patient = Patient.objects.create(
            clinic=world.clinic, first_name="Bo", last_name="Lee", date_of_birth=dt.date(1980, 1, 1)
        )
        elsewhere = last_session(course_with_sessions(world, other_patient, 1, ago(days=5)))
        moments = {
            "before": local(session.performed_at - dt.timedelta(hours=1), world),
            "future": local(timezone.now() + dt.timedelta(days=1), world),
            "before_onset": local(onset - dt.timedelta(hours=1), world),
            "another_course": str(elsewhere.pk),
        }
        data = effect_data(world, session, onset_at=local(onset, world), session=session.pk)
        data.update({k: moments.get(v, v) for k, v in changes.items()})
        audits_before = AuditEvent.objects.count()
        response = signed_in(world.practitioner).post(
            f"/courses/{course.pk}/side-effects/new/", data
        )
        assert response.status_code == 200
        form = response.context["form"]
        assert set(form.errors) == {field}
        assert any(e.startswith(error) for e in form.errors[field]), form.errors
        assert 'class="field field-error"' in response.content.decode()
        assert not SideEffect.objects.exists()
        assert not FollowUp.objects.exists()
        assert AuditEvent.objects.count() == audits_before


class ResolveTests:
    def report(self, world: World, session: Session, **kw: Any) -> SideEffect:
        kw.setdefault("kind", "swelling")
        kw.setdefault("grade", 1)
        kw.setdefault("onset_at", session.performed_at + dt.timedelta(hours=1))
        return actions.do_report_side_effect(session, user=world.practitioner, **kw)

    def test_resolving_within_the_expected_time_keeps_it_expected(
        self, world: World, patient: Patient, course: Course
    ) -> None:
        effect = self.report(world, last_session(course))
        resolved = (effect.onset_at + dt.timedelta(days=1)).replace(second=0, microsecond=0)
        client = signed_in(world.practitioner)
        chart = client.get(f"/patients/{patient.pk}/").content.decode()
        assert f'action="/side-effects/{effect.pk}/resolve/"' in chart
        response = client.post(
            f"/side-effects/{effect.pk}/resolve/", {"resolved_at": local(resolved, world)}
        )
        assert response["Location"] == f"/patients/{patient.pk}/#course-{course.pk}"
        effect.refresh_from_db()
        assert effect.resolved_at == resolved and effect.status == logic.EXPECTED
        assert flashed(response) == ["Swelling marked resolved. Status: expected."]
        assert not FollowUp.objects.exists()
        [row] = AuditEvent.objects.filter(object_type="courses.SideEffect", action="update")
        assert row.via == "web"
        chart = client.get(f"/patients/{patient.pk}/").content.decode()
        assert f'action="/side-effects/{effect.pk}/resolve/"' not in chart

    def test_resolving_past_the_expected_time_opens_a_follow_up(
        self, world: World, course: Course
    ) -> None:
        # Onset 10 days ago; swelling is expected for 5 days.
        effect = self.report(world, course.sessions.get(number=1))
        response = signed_in(world.practitioner).post(
            f"/side-effects/{effect.pk}/resolve/", {"resolved_at": local(ago(hours=1), world)}
        )
        effect.refresh_from_db()
        assert effect.status == logic.BEYOND_EXPECTED
        assert "beyond what is expected" in flashed(response)[0]
        assert effect.follow_ups.get().status == FollowUp.Status.OPEN

    def test_a_resolution_before_the_onset_is_refused_on_its_field(
        self, world: World, course: Course
    ) -> None:
        effect = self.report(world, last_session(course))
        response = signed_in(world.practitioner).post(
            f"/side-effects/{effect.pk}/resolve/",
            {"resolved_at": local(effect.onset_at - dt.timedelta(hours=2), world)},
        )
        assert flashed(response) == ["Resolved at: cannot be before the onset."]
        effect.refresh_from_db()
        assert effect.resolved_at is None
        assert not AuditEvent.objects.filter(object_type="courses.SideEffect", action="update")

    def test_a_resolution_needs_a_time(self, world: World, course: Course) -> None:
        effect = self.report(world, last_session(course))
        response = signed_in(world.practitioner).post(
            f"/side-effects/{effect.pk}/resolve/", {"resolved_at": ""}
        )
        assert flashed(response) == ["Resolved at: This field is required."]
        effect.refresh_from_db()
        assert effect.resolved_at is None


class CloseFollowUpTests:
    def follow_up(self, world: World, course: Course) -> FollowUp:
        effect = actions.do_report_side_effect(
            last_session(course),
            kind="other",
            description="Itch",
            onset_at=ago(days=2),
            grade=1,
            user=world.practitioner,
        )
        return effect.follow_ups.get()

    def test_closing_records_the_outcome_and_takes_it_off_today(
        self, world: World, patient: Patient, course: Course
    ) -> None:
        follow_up = self.follow_up(world, course)
        client = signed_in(world.manager)
        response = client.post(
            f"/follow-ups/{follow_up.pk}/close/",
            {"resolution": "resolved", "outcome": "Called her; settling with cream."},
        )
        assert response["Location"] == f"/patients/{patient.pk}/#course-{course.pk}"
        assert flashed(response) == ["Follow-up closed: Other (grade 1) is beyond expected."]
        follow_up.refresh_from_db()
        assert follow_up.status == FollowUp.Status.DONE
        assert follow_up.outcome == "Called her; settling with cream."
        assert follow_up.closed_by == world.manager
        [row] = AuditEvent.objects.filter(object_type="courses.FollowUp")
        assert (row.action, row.via) == ("update", "web")
        chart = client.get(f"/patients/{patient.pk}/").content.decode()
        assert f'action="/follow-ups/{follow_up.pk}/close/"' not in chart
        assert "Called her; settling with cream." in chart  # in the timeline
        assert "Other (grade 1) is beyond expected" not in client.get("/today/").content.decode()

    def test_a_follow_up_needs_an_outcome(self, world: World, course: Course) -> None:
        follow_up = self.follow_up(world, course)
        response = signed_in(world.practitioner).post(
            f"/follow-ups/{follow_up.pk}/close/", {"resolution": "resolved", "outcome": "  "}
        )
        assert flashed(response) == ["Outcome: This field is required."]
        follow_up.refresh_from_db()
        assert follow_up.status == FollowUp.Status.OPEN

    def test_a_closed_follow_up_is_not_closed_again(self, world: World, course: Course) -> None:
        follow_up = self.follow_up(world, course)
        signed_in(world.manager).post(
            f"/follow-ups/{follow_up.pk}/close/", {"resolution": "resolved", "outcome": "Seen."}
        )
        response = signed_in(world.practitioner).post(
            f"/follow-ups/{follow_up.pk}/close/",
            {"resolution": "resolved", "outcome": "Seen again."},
        )
        assert flashed(response) == ["Follow-up: This follow-up is already closed."]
        follow_up.refresh_from_db()
        assert (follow_up.outcome, follow_up.closed_by) == ("Seen.", world.manager)


class AccessTests:
    def effect(self, world: World, course: Course) -> SideEffect:
        return actions.do_report_side_effect(
            last_session(course),
            kind="other",
            description="Itch",
            onset_at=ago(days=2),
            grade=1,
            user=world.practitioner,
        )

    def test_the_front_desk_reads_the_chart_but_sees_no_forms_and_may_not_post(
        self, world: World, patient: Patient, course: Course
    ) -> None:
        effect = self.effect(world, course)
        session = effect.session
        follow_up = effect.follow_ups.get()
        client = signed_in(world.front_desk)
        chart = client.get(f"/patients/{patient.pk}/").content.decode()
        assert "Other: Itch, grade 1" in chart and "Beyond expected" in chart
        assert "Timeline" in chart
        assert "/side-effects/new/" not in chart
        assert "/resolve/" not in chart and "/close/" not in chart
        posts = {
            f"/sessions/{session.pk}/side-effects/new/": effect_data(world, session),
            f"/courses/{course.pk}/side-effects/new/": effect_data(
                world, session, session=session.pk
            ),
            f"/side-effects/{effect.pk}/resolve/": {"resolved_at": local(ago(hours=1), world)},
            f"/follow-ups/{follow_up.pk}/close/": {"resolution": "resolved", "outcome": "Done"},
        }
        for url, data in posts.items():
            assert client.post(url, data).status_code == 403, url
        assert client.get(f"/sessions/{session.pk}/side-effects/new/").status_code == 403
        effect.refresh_from_db()
        assert effect.resolved_at is None
        assert SideEffect.objects.count() == 1
        assert FollowUp.objects.get().status == FollowUp.Status.OPEN

    def test_another_clinic_gets_404_for_every_view(
        self, world: World, other: World, course: Course
    ) -> None:
        effect = self.effect(world, course)
        session = effect.session
        follow_up = effect.follow_ups.get()
        client = signed_in(other.practitioner)
        for url in (
            f"/sessions/{session.pk}/side-effects/new/",
            f"/courses/{course.pk}/side-effects/new/",
        ):
            assert client.get(url).status_code == 404, url
            assert client.post(url, effect_data(world, session)).status_code == 404, url
        resolve = client.post(
            f"/side-effects/{effect.pk}/resolve/", {"resolved_at": local(ago(hours=1), world)}
        )
        assert resolve.status_code == 404
        close = client.post(
            f"/follow-ups/{follow_up.pk}/close/", {"resolution": "resolved", "outcome": "Done"}
        )
        assert close.status_code == 404
        effect.refresh_from_db()
        assert effect.resolved_at is None
        assert SideEffect.objects.count() == 1
        assert FollowUp.objects.get().status == FollowUp.Status.OPEN

    def test_resolving_and_closing_need_a_post(self, world: World, course: Course) -> None:
        effect = self.effect(world, course)
        client = signed_in(world.practitioner)
        assert client.get(f"/side-effects/{effect.pk}/resolve/").status_code == 405
        assert client.get(f"/follow-ups/{effect.follow_ups.get().pk}/close/").status_code == 405

    def test_a_visitor_is_sent_to_sign_in(self, world: World, course: Course) -> None:
        response = Client().get(f"/courses/{course.pk}/side-effects/new/")
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")


class TimelineTests:
    def test_it_lists_every_event_oldest_first_in_the_clinics_zone(
        self, world: World, patient: Patient, course: Course
    ) -> None:
        # Planned before the consent and the test (course_with_sessions plans it now).
        Course.objects.filter(pk=course.pk).update(created_at=ago(days=14))
        session = last_session(course)
        effect = actions.do_report_side_effect(
            session,
            kind="other",
            description="Itch",
            onset_at=session.performed_at + dt.timedelta(hours=1),
            grade=1,
            user=world.practitioner,
        )
        actions.do_resolve_side_effect(effect, ago(hours=1), world.practitioner)
        actions.do_close_follow_up(effect.follow_ups.get(), "Settled.", world.manager)

        events = course_timeline(fresh(course))

        assert [e.kind for e in events] == [
            "planned",
            "consent",
            "test_given",
            "test_read",
            "session",
            "session",
            "side_effect",
            "side_effect_resolved",
            "follow_up_opened",
            "follow_up_closed",
        ]
        assert [e.at for e in events] == sorted(e.at for e in events)
        assert {str(e.at.tzinfo) for e in events} == {"America/New_York"}
        by_kind = {e.kind: e for e in events}
        version = course.protocol.version
        assert by_kind["planned"].detail.startswith("Cellulite")
        assert f"protocol v{version}" in by_kind["planned"].detail
        assert by_kind["planned"].who == "Practitioner"
        assert by_kind["consent"].detail.startswith("Text v1, signed by Ana Lopez")
        assert by_kind["test_read"].title == "Allergy test read: No reaction"
        first, second = (e for e in events if e.kind == "session")
        assert (first.title, second.title) == ("Session 1", "Session 2")
        assert second.url == f"/sessions/{session.pk}/" and second.detail == "Thighs"
        assert second.who == "Practitioner"
        assert by_kind["side_effect"].title == "Side effect: Other: Itch, grade 1 (session 2)"
        assert by_kind["side_effect"].tone == "warn"
        assert by_kind["follow_up_opened"].title == "Follow-up opened (routine)"
        closed = by_kind["follow_up_closed"]
        assert (closed.detail, closed.who) == ("Settled.", "Manager")

    def test_the_chart_shows_each_courses_timeline(
        self, world: World, patient: Patient, course: Course
    ) -> None:
        page = signed_in(world.front_desk).get(f"/patients/{patient.pk}/").content.decode()
        timeline = page[page.index("Timeline") :]
        assert "oldest first, times in America/New_York" in timeline
        assert timeline.index("Allergy test given") < timeline.index(">Session 1</a>")
        assert timeline.index(">Session 1</a>") < timeline.index(">Session 2</a>")

    def test_a_stopped_course_says_when_who_and_why(
        self, world: World, patient: Patient, course: Course
    ) -> None:
        actions.do_stop_course(course, "Moved to Chicago.", world.manager)
        stopped = course_timeline(fresh(course))[-1]
        assert (stopped.kind, stopped.detail, stopped.who) == (
            "stopped",
            "Moved to Chicago.",
            "Manager",
        )
        assert abs(stopped.at - timezone.now()) < dt.timedelta(minutes=1)
        assert not stopped.time_unknown

    def test_a_completed_course_ends_with_its_maintenance_window(
        self, world: World, patient: Patient
    ) -> None:
        course = course_with_sessions(world, patient, 15, ago(days=7 * 14 + 1))
        course = fresh(course)
        assert course.status == Course.Status.COMPLETED
        last = course_timeline(course)[-1]
        window = course.progress()["maintenance_window"]
        assert isinstance(window, dict)
        assert (last.kind, last.date_only) == ("maintenance", True)
        assert last.at.date().isoformat() == window["from"]
        to = dt.date.fromisoformat(window["to"])
        assert last.detail.endswith(f"to {to.day} {to:%b %Y}")

    def test_its_query_count_does_not_grow_with_sessions_or_side_effects(
        self, world: World, patient: Patient
    ) -> None:
        course = course_with_sessions(world, patient, 1, ago(days=30))

        def add_session_with_effects(when: dt.datetime) -> None:
            session = actions.do_record_session(
                course,
                performed_at=when,
                practitioner=world.practitioner,
                injections=[actions.InjectionInput("thighs", world.lot, Decimal(2))],
                stimulants_avoided=True,
                user=world.practitioner,
            )
            effect = actions.do_report_side_effect(
                session,
                kind="other",
                description="Itch",
                onset_at=when + dt.timedelta(hours=1),
                grade=1,
                user=world.practitioner,
            )
            actions.do_close_follow_up(effect.follow_ups.get(), "Seen.", world.manager)

        add_session_with_effects(ago(days=23))
        with CaptureQueriesContext(connection) as few:
            small = course_timeline(fresh(course))
        for days in (16, 9, 2):
            add_session_with_effects(ago(days=days))
        with CaptureQueriesContext(connection) as many:
            large = course_timeline(fresh(course))
        assert len(large) > len(small)
        assert len(many.captured_queries) == len(few.captured_queries)
