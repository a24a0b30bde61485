"""Staff management and licences: deactivating and reactivating a member (their sessions,
tokens and calendar addresses end; never oneself or the clinic's last manager, also when two
managers race on PostgreSQL), renewing a licence (the old one kept as history) and correcting
one (audited before and after), and the warnings 60, 30 and 7 days before a licence expires,
on Today and by email through a real SMTP server on loopback, each once per licence."""

from __future__ import annotations

import datetime as dt
import re
import textwrap
from typing import Any

import pytest
import time_machine
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.test import Client
from django.utils import timezone

from mesoclinic.accounts import licences, staff
from mesoclinic.accounts.models import (
    AuditEvent,
    LicenceWarning,
    Membership,
    PractitionerLicence,
    User,
)
from mesoclinic.api.models import ApiToken
from mesoclinic.courses.models import Course
from mesoclinic.scheduling import feeds
from mesoclinic.scheduling.actions import BookingRefused, do_book
from mesoclinic.scheduling.models import CalendarFeed
from tests.conftest import World
from tests.scheduling_fixtures import NOW, at, race_processes, run_script
from tests.test_reminders import Mailbox
from tests.test_reminders import mail as mail  # noqa: F401 - a fixture
from tests.test_reminders import smtp_server as smtp_server  # noqa: F401 - a fixture


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def member_of(world: World, user: User) -> Membership:
    return Membership.every.get(clinic=world.clinic, user=user)


def licence_of(user: User) -> PractitionerLicence:
    return PractitionerLicence.objects.get(user=user, superseded_by__isnull=True)


def local_today(world: World) -> dt.date:
    return licences.local_today(world.clinic)


def expiring(world: World, user: User, days: int) -> PractitionerLicence:
    licence = licence_of(user)
    licence.expires_on = local_today(world) + dt.timedelta(days=days)
    licence.save(update_fields=["expires_on"])
    return licence


def licence_post(**changes: str) -> dict[str, str]:
    data = {
        "kind": PractitionerLicence.Kind.PHYSICIAN,
        "number": "MD-RENEWED",
        "jurisdiction": "New York",
        "expires_on": str(dt.date.today() + dt.timedelta(days=800)),
    }
    data.update(changes)
    return data


def errors_of(response: Any) -> str:
    page = response.content.decode()
    return " ".join(re.findall(r'<ul class="errorlist"[^>]*>(.*?)</ul>', page, re.S))


def messages_of(client: Client, url: str) -> str:
    return client.get(url).content.decode()


class StaffPageTests:
    def test_it_shows_each_members_role_last_sign_in_and_licences(self, world: World) -> None:
        world.practitioner.last_login = timezone.now() - dt.timedelta(days=2)
        world.practitioner.save(update_fields=["last_login"])
        expiring(world, world.practitioner, -3)
        page = signed_in(world.manager).get("/manage/staff/").content.decode()
        row = next(r for r in page.split("<tr") if "MD-practitioner" in r)
        assert "Never" in page  # the front desk never signed in
        when = world.practitioner.last_login.astimezone(world.clinic.tz)
        assert f"{when:%-d %b %Y}" in row, row
        expired = local_today(world) - dt.timedelta(days=3)
        assert f"expired on {expired:%-d %b %Y}" in page
        assert f"expires on {expired:%-d %b %Y}" not in page
        assert f"Deactivate {world.practitioner.display_name}" in row
        # Nobody is offered to deactivate themself.
        assert f"Deactivate {world.manager.display_name}" not in page

    def test_each_practitioner_and_manager_links_to_their_hours(self, world: World) -> None:
        client = signed_in(world.manager)
        page = client.get("/manage/staff/").content.decode()
        for user in (world.practitioner, world.manager):
            pk = member_of(world, user).pk
            row = next(r for r in page.split("<tr") if f'href="/manage/staff/{pk}/"' in r)
            link = f'<a href="/manage/staff/{pk}/hours/">Hours of {user.display_name}</a>'
            assert link in row, row
            assert client.get(f"/manage/staff/{pk}/hours/").status_code == 200
        # The front desk is not booked, and a deactivated member no longer is.
        assert f"Hours of {world.front_desk.display_name}" not in page
        staff.do_deactivate(member_of(world, world.practitioner), user=world.manager)
        page = client.get("/manage/staff/").content.decode()
        assert f"Hours of {world.practitioner.display_name}" not in page

    def test_the_member_page_lists_current_licences_and_history(self, world: World) -> None:
        licence = licence_of(world.practitioner)
        staff.do_renew_licence(
            licence,
            {
                "kind": licence.kind,
                "number": "MD-NEW",
                "jurisdiction": licence.jurisdiction,
                "expires_on": licence.expires_on + dt.timedelta(days=365),
            },
            user=world.manager,
        )
        member = member_of(world, world.practitioner)
        page = signed_in(world.manager).get(f"/manage/staff/{member.pk}/").content.decode()
        current, history = page.split("Earlier licences")
        assert "MD-NEW" in current and "Renew" in current
        assert "MD-practitioner" in history and "renewed by MD-NEW" in history

    def test_other_roles_may_not_see_or_change_staff(self, world: World) -> None:
        member = member_of(world, world.front_desk)
        licence = licence_of(world.practitioner)
        for user in (world.practitioner, world.front_desk):
            client = signed_in(user)
            assert client.get(f"/manage/staff/{member.pk}/").status_code == 403
            assert client.post(f"/manage/staff/{member.pk}/deactivate/").status_code == 403
            assert client.get(f"/manage/licences/{licence.pk}/renew/").status_code == 403
            assert client.post(f"/manage/licences/{licence.pk}/edit/", {}).status_code == 403
        assert member_of(world, world.front_desk).is_active

    def test_another_clinics_manager_gets_404(self, world: World, other: World) -> None:
        member = member_of(world, world.front_desk)
        licence = licence_of(world.practitioner)
        client = signed_in(other.manager)
        assert client.get(f"/manage/staff/{member.pk}/").status_code == 404
        assert client.post(f"/manage/staff/{member.pk}/deactivate/").status_code == 404
        assert client.post(f"/manage/staff/{member.pk}/reactivate/").status_code == 404
        assert client.get(f"/manage/licences/{licence.pk}/renew/").status_code == 404
        assert (
            client.post(f"/manage/licences/{licence.pk}/edit/", licence_post()).status_code == 404
        )
        assert member_of(world, world.front_desk).is_active
        assert licence_of(world.practitioner).pk == licence.pk


class DeactivationTests:
    def test_deactivating_ends_sessions_tokens_and_calendar_addresses(self, world: World) -> None:
        practitioner = signed_in(world.practitioner)
        assert practitioner.get("/today/").status_code == 200
        api = world.api(world.practitioner)
        assert api.get("/patients").status_code == 200
        feed, token = feeds.do_create_feed(user=world.practitioner, for_user=world.practitioner)
        assert Client().get(f"/feeds/{token}.ics").status_code == 200
        member = member_of(world, world.practitioner)

        manager = signed_in(world.manager)
        response = manager.post(f"/manage/staff/{member.pk}/deactivate/")
        assert response.status_code == 302
        member.refresh_from_db()
        assert member.deactivated_at is not None and member.deactivated_by == world.manager
        assert "is deactivated" in manager.get("/manage/staff/").content.decode()

        # The browser session is gone: the next page asks to sign in.
        answer = practitioner.get("/today/")
        assert answer.status_code == 302 and "/accounts/login/" in answer["Location"]
        assert api.get("/patients").status_code == 401
        assert not ApiToken.objects.active().filter(user=world.practitioner).exists()
        assert Client().get(f"/feeds/{token}.ics").status_code == 404
        assert CalendarFeed.objects.get(pk=feed.pk).revoked_at is not None
        # Signing in again gives no access to the clinic.
        again = signed_in(world.practitioner)
        assert again.get("/today/").status_code == 403
        # The booking no longer knows them as a member of the clinic.
        assert not Membership.objects.filter(user=world.practitioner).exists()
        event = AuditEvent.objects.get(
            action="update", object_type="accounts.Membership", object_id=str(member.pk)
        )
        assert event.detail == {"deactivated": True, "member": "practitioner"}
        assert event.user == world.manager
        assert AuditEvent.objects.filter(
            action="revoke", object_type="accounts.Membership", object_id=str(member.pk)
        ).exists()

    def test_reactivating_gives_access_back_and_is_audited(self, world: World) -> None:
        member = member_of(world, world.front_desk)
        staff.do_deactivate(member, user=world.manager)
        manager = signed_in(world.manager)
        page = manager.get("/manage/staff/").content.decode()
        assert "Deactivated" in page and "Reactivate Frontdesk" in page.replace(
            "Reactivate frontdesk", "Reactivate Frontdesk"
        )
        response = manager.post(f"/manage/staff/{member.pk}/reactivate/", {"next": "member"})
        assert response["Location"] == f"/manage/staff/{member.pk}/"
        member.refresh_from_db()
        assert member.is_active and member.role == Membership.Role.FRONT_DESK
        assert signed_in(world.front_desk).get("/today/").status_code == 200
        event = AuditEvent.objects.filter(object_id=str(member.pk), action="update").first()
        assert event is not None and event.detail == {"deactivated": False, "member": "frontdesk"}

    def test_a_manager_cannot_deactivate_themself(self, world: World) -> None:
        member = member_of(world, world.manager)
        Membership.objects.create(
            user=User.objects.create_user("second", email="s@example.com"),
            clinic=world.clinic,
            role=Membership.Role.MANAGER,
        )
        client = signed_in(world.manager)
        client.post(f"/manage/staff/{member.pk}/deactivate/")
        assert member_of(world, world.manager).is_active
        assert "cannot deactivate yourself" in client.get("/manage/staff/").content.decode()
        assert not AuditEvent.objects.filter(object_id=str(member.pk), action="update").exists()

    def test_the_last_manager_cannot_be_deactivated(self, world: World) -> None:
        member = member_of(world, world.manager)
        with pytest.raises(staff.StaffChangeRefused, match="at least one manager"):
            staff.do_deactivate(member, user=world.practitioner)
        assert member_of(world, world.manager).is_active

    def test_a_deactivated_manager_does_not_count_as_the_one_left(self, world: World) -> None:
        second = User.objects.create_user("second", email="s@example.com")
        Membership.objects.create(user=second, clinic=world.clinic, role="manager")
        staff.do_deactivate(member_of(world, second), user=world.manager)
        with pytest.raises(staff.StaffChangeRefused, match="at least one manager"):
            staff.do_change_role(member_of(world, world.manager), "front_desk", user=second)

    def test_a_member_of_two_clinics_keeps_their_session_for_the_other(
        self, world: World, other: World
    ) -> None:
        Membership.objects.create(user=world.practitioner, clinic=other.clinic, role="practitioner")
        client = signed_in(world.practitioner)
        staff.do_deactivate(member_of(world, world.practitioner), user=world.manager)
        page = client.get("/today/")
        assert page.status_code == 200 and "Other Clinic" in page.content.decode()


class LicenceEditingTests:
    def test_renewing_keeps_the_old_licence_as_history(self, world: World) -> None:
        old = expiring(world, world.practitioner, 20)
        client = signed_in(world.manager)
        form = client.get(f"/manage/licences/{old.pk}/renew/").content.decode()
        assert 'value="MD-practitioner"' in form
        new_expiry = local_today(world) + dt.timedelta(days=750)
        response = client.post(
            f"/manage/licences/{old.pk}/renew/", licence_post(expires_on=str(new_expiry))
        )
        assert response.status_code == 302, errors_of(response)
        old.refresh_from_db()
        new = licence_of(world.practitioner)
        assert old.superseded_by == new and old.number == "MD-practitioner"
        assert new.number == "MD-RENEWED" and new.expires_on == new_expiry
        event = AuditEvent.objects.get(action="create", object_id=str(new.pk))
        assert event.detail["renews"] == old.pk
        # The old one is history: it cannot be renewed or edited again.
        again = client.post(f"/manage/licences/{old.pk}/renew/", licence_post())
        assert again.status_code == 302
        assert PractitionerLicence.objects.filter(user=world.practitioner).count() == 2
        client.post(f"/manage/licences/{old.pk}/edit/", licence_post(number="X"))
        old.refresh_from_db()
        assert old.number == "MD-practitioner"

    def test_a_renewal_must_expire_later(self, world: World) -> None:
        old = licence_of(world.practitioner)
        response = signed_in(world.manager).post(
            f"/manage/licences/{old.pk}/renew/", licence_post(expires_on=str(old.expires_on))
        )
        assert response.status_code == 200
        assert "must come after" in errors_of(response)
        assert PractitionerLicence.objects.filter(user=world.practitioner).count() == 1

    def test_correcting_a_typo_is_audited_before_and_after(self, world: World) -> None:
        licence = licence_of(world.practitioner)
        client = signed_in(world.manager)
        data = {
            "kind": licence.kind,
            "number": "MD-PRACTITI0NER-FIXED",
            "jurisdiction": "New Jersey",
            "expires_on": str(licence.expires_on),
        }
        response = client.post(f"/manage/licences/{licence.pk}/edit/", data)
        assert response.status_code == 302, errors_of(response)
        licence.refresh_from_db()
        assert licence.number == "MD-PRACTITI0NER-FIXED" and licence.jurisdiction == "New Jersey"
        assert PractitionerLicence.objects.filter(user=world.practitioner).count() == 1
        event = AuditEvent.objects.get(action="update", object_id=str(licence.pk))
        assert event.detail == {
            "changes": {
                "number": {"before": "MD-practitioner", "after": "MD-PRACTITI0NER-FIXED"},
                "jurisdiction": {"before": "New York", "after": "New Jersey"},
            }
        }

    def test_a_correction_needs_valid_fields(self, world: World) -> None:
        licence = licence_of(world.practitioner)
        response = signed_in(world.manager).post(
            f"/manage/licences/{licence.pk}/edit/", licence_post(number="", expires_on="soon")
        )
        assert response.status_code == 200
        errors = errors_of(response)
        assert "required" in errors and "valid date" in errors
        licence.refresh_from_db()
        assert licence.number == "MD-practitioner"


class TodayWarningTests:
    def test_a_manager_sees_every_licence_near_or_past_expiry(self, world: World) -> None:
        soon = expiring(world, world.practitioner, 25)
        PractitionerLicence.objects.create(
            user=world.manager,
            clinic=world.clinic,
            kind="physician",
            number="MD-GONE",
            jurisdiction="Vermont",
            expires_on=local_today(world) - dt.timedelta(days=2),
        )
        licence_of_manager_far = PractitionerLicence.objects.get(number="MD-manager")
        page = signed_in(world.manager).get("/today/").content.decode()
        assert "Licences to renew" in page
        assert f"expires on {soon.expires_on:%-d %b %Y}" in page and "25 days" in page
        gone = local_today(world) - dt.timedelta(days=2)
        assert f"expired on {gone:%-d %b %Y}" in page
        assert f"expires on {gone:%-d %b %Y}" not in page
        assert licence_of_manager_far.number not in page  # a year away

    def test_a_practitioner_sees_only_their_own(self, world: World) -> None:
        expiring(world, world.manager, 10)
        page = signed_in(world.practitioner).get("/today/").content.decode()
        assert "Licences to renew" not in page
        expiring(world, world.practitioner, 7)
        page = signed_in(world.practitioner).get("/today/").content.decode()
        assert "MD-practitioner" in page and "MD-manager" not in page
        assert "Renew or correct it" not in page  # only a manager can

    def test_a_renewed_licence_leaves_the_list(self, world: World) -> None:
        old = expiring(world, world.practitioner, 5)
        staff.do_renew_licence(
            old,
            {
                **{k: getattr(old, k) for k in staff.LICENCE_FIELDS},
                "number": "MD-NEXT",
                "expires_on": old.expires_on + dt.timedelta(days=700),
            },
            user=world.manager,
        )
        page = signed_in(world.manager).get("/today/").content.decode()
        assert "Licences to renew" not in page


class StaffApiTests:
    def test_a_manager_lists_the_clinics_staff_with_licences(
        self, world: World, other: World
    ) -> None:
        old = licence_of(world.practitioner)
        new = staff.do_renew_licence(
            old,
            {
                **{k: getattr(old, k) for k in staff.LICENCE_FIELDS},
                "number": "MD-2",
                "expires_on": old.expires_on + dt.timedelta(days=365),
            },
            user=world.manager,
        )
        staff.do_deactivate(member_of(world, world.front_desk), user=world.manager)
        answer = world.api(world.manager).get("/staff")
        assert answer.status_code == 200
        rows = {r["username"]: r for r in answer.json()}
        assert set(rows) == {"manager", "practitioner", "frontdesk"}  # not the other clinic's
        assert rows["frontdesk"]["active"] is False and rows["frontdesk"]["role"] == "front_desk"
        assert [lic["number"] for lic in rows["practitioner"]["licences"]] == ["MD-2"]
        member = member_of(world, world.practitioner)
        history = world.api(world.manager).get(f"/staff/{member.pk}/licences").json()
        assert [(h["id"], h["current"], h["renewed_by"]) for h in history] == [
            (new.pk, True, None),
            (old.pk, False, new.pk),
        ]

    def test_only_managers_of_the_clinic(self, world: World, other: World) -> None:
        member = member_of(world, world.practitioner)
        for user in (world.practitioner, world.front_desk):
            assert world.api(user).get("/staff").status_code == 403
            assert world.api(user).get(f"/staff/{member.pk}/licences").status_code == 403
        assert other.api(other.manager).get(f"/staff/{member.pk}/licences").status_code == 404
        names = {r["username"] for r in other.api(other.manager).get("/staff").json()}
        assert "practitioner" not in names


# The emails: the worker's planning and sending, against a real SMTP server.


def tick() -> list[licences.Outcome]:
    licences.do_plan_warnings()
    return licences.send_due("test-worker")


class WarningEmailTests:
    @pytest.fixture(autouse=True)
    def emails(self, world: World) -> None:
        for user, address in (
            (world.manager, "boss@example.com"),
            (world.practitioner, "maria@example.com"),
        ):
            user.email = address
            user.save()

    def test_each_threshold_is_planned_only_once_and_the_nearest_only(self, world: World) -> None:
        licence = expiring(world, world.practitioner, 20)
        assert licences.do_plan_warnings() == 1
        assert licences.do_plan_warnings() == 0
        warning = LicenceWarning.objects.get()
        assert (warning.licence, warning.threshold) == (licence, 30)
        # Not an application check only: the database refuses a second row.
        with pytest.raises(IntegrityError), transaction.atomic():
            LicenceWarning.objects.create(clinic=world.clinic, licence=licence, threshold=30)

    def test_thresholds(self) -> None:
        assert [licences.threshold_for(d) for d in (61, 60, 31, 30, 8, 7, 0, -1)] == [
            None,
            60,
            60,
            30,
            30,
            7,
            7,
            None,
        ]

    def test_it_emails_managers_and_the_practitioner_at_60_30_and_7_days_once_each(
        self, world: World, mail: Mailbox
    ) -> None:
        expiring(world, world.practitioner, 70)
        start = timezone.now()
        with time_machine.travel(start, tick=False) as clock:
            assert [o.status for o in tick()] == []
            for days, threshold in ((10, 60), (30, 30), (23, 7)):
                clock.shift(dt.timedelta(days=days))
                outcomes = tick()
                assert [(o.threshold, o.status) for o in outcomes] == [(threshold, "sent")]
                assert tick() == []  # once
            clock.shift(dt.timedelta(days=1))
            assert tick() == []
        received = mail.wait_for(3)
        assert len(received) == 3
        for message in received:
            assert sorted(message.rcpt_tos) == ["boss@example.com", "maria@example.com"]
        first = received[0]
        assert "licence expires on" in str(first.message["Subject"])
        assert "in 60 days" in str(first.message["Subject"])
        assert "MD-practitioner" in first.text and "Demo Mesotherapy Clinic" in first.text
        assert "in 7 days" in str(received[2].message["Subject"])
        sent = LicenceWarning.objects.filter(status="sent").order_by("threshold")
        assert [w.threshold for w in sent] == [7, 30, 60]

    def test_a_renewed_licence_starts_fresh(self, world: World, mail: Mailbox) -> None:
        old = expiring(world, world.practitioner, 25)
        start = timezone.now()
        with time_machine.travel(start, tick=False) as clock:
            assert [o.status for o in tick()] == ["sent"]
            new = staff.do_renew_licence(
                old,
                {
                    **{k: getattr(old, k) for k in staff.LICENCE_FIELDS},
                    "number": "MD-2",
                    "expires_on": old.expires_on + dt.timedelta(days=365),
                },
                user=world.manager,
            )
            assert tick() == []
            clock.shift(dt.timedelta(days=365 + 25 - 30))
            # The manager's own licence comes due by then too; only the practitioner's count.
            outcomes = [o for o in tick() if o.licence in (old.pk, new.pk)]
            assert [(o.licence, o.threshold, o.status) for o in outcomes] == [(new.pk, 30, "sent")]
        assert len(mail.wait_for(3)) == 3

    def test_a_warning_planned_before_a_renewal_is_skipped(
        self, world: World, mail: Mailbox
    ) -> None:
        old = expiring(world, world.practitioner, 6)
        licences.do_plan_warnings()
        staff.do_renew_licence(
            old,
            {
                **{k: getattr(old, k) for k in staff.LICENCE_FIELDS},
                "expires_on": old.expires_on + dt.timedelta(days=365),
            },
            user=world.manager,
        )
        outcomes = licences.send_due("w")
        assert [(o.status, o.detail) for o in outcomes] == [("skipped", "the licence was renewed")]
        assert mail.received == []

    def test_a_deactivated_member_gets_no_warning(self, world: World, mail: Mailbox) -> None:
        expiring(world, world.practitioner, 6)
        staff.do_deactivate(member_of(world, world.practitioner), user=world.manager)
        assert tick() == []

    def test_the_worker_sends_them(self, world: World, mail: Mailbox) -> None:
        expiring(world, world.practitioner, 30)
        call_command("worker", "--once")
        assert len(mail.wait_for(1)) == 1
        assert LicenceWarning.objects.get().status == "sent"


def test_booking_with_an_already_expired_licence_says_expired_on(
    cal: World, course: Course
) -> None:
    PractitionerLicence.objects.filter(user=cal.practitioner).update(
        expires_on=NOW.date() - dt.timedelta(days=2)
    )
    with pytest.raises(BookingRefused) as refused:
        do_book(
            course.patient,
            kind="session",
            practitioner=cal.practitioner,
            starts_at=at(10),
            course=course,
            user=cal.front_desk,
        )
    assert "Maria Silva's licence expired on 21 Nov 2026" in str(refused.value)
    assert "expires on" not in str(refused.value)


# Two managers deactivating each other at the same moment, on PostgreSQL (and SQLite).

RACE = textwrap.dedent(
    """
    import json, sys
    import django
    django.setup()
    from django.db import connection
    from django.test import Client
    from mesoclinic.accounts.models import Clinic, Membership, User

    mode, args = sys.argv[1], json.loads(sys.argv[2])
    if mode == "seed":
        clinic = Clinic.objects.create(name="Race clinic", timezone="America/New_York")
        ids = {}
        for name in args["managers"]:
            user = User.objects.create_user(name)
            ids[name] = Membership.objects.create(user=user, clinic=clinic, role="manager").pk
        print(json.dumps(ids))
    elif mode == "count":
        print(json.dumps(Membership.objects.filter(role="manager").count()))
    else:
        client = Client(raise_request_exception=False)
        client.force_login(User.objects.get(username=args["me"]))
        connection.close()
        print("ready", flush=True)
        sys.stdin.readline()
        r = client.post("/manage/staff/%d/deactivate/" % args["target"])
        print(json.dumps(r.status_code), flush=True)
    """
)


def test_two_managers_deactivating_each_other_leave_one(shared_db: str) -> None:
    ids = run_script(RACE, shared_db, "seed", {"managers": ["ann", "bob"]})
    for _ in range(3):
        statuses = race_processes(
            RACE,
            shared_db,
            [{"me": "ann", "target": ids["bob"]}, {"me": "bob", "target": ids["ann"]}],
            mode="go",
            ALLOWED_HOSTS="testserver",
        )
        assert statuses == [302, 302]
        assert run_script(RACE, shared_db, "count", {}) == 1
        # Reactivate both for the next round, from the database directly.
        run_script(
            "import django, sys; django.setup(); from mesoclinic.accounts.models import "
            "Membership; Membership.every.update(deactivated_at=None); print(1)",
            shared_db,
            "reset",
            {},
        )
