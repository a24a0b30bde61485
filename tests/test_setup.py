"""A new clinic's first run and setup: `mesoclinic init`, the first sign-in, the setup guide,
opening hours and holidays, rooms, visit types (a consultation booked without a course), each
practitioner's hours, and the clinic's date and time formats."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from io import StringIO
from typing import Any
from urllib.parse import urlencode

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from mesoclinic import cli
from mesoclinic.accounts.models import AuditEvent, Clinic, Membership, User
from mesoclinic.lib import formats
from mesoclinic.patients.models import Patient
from mesoclinic.scheduling.models import (
    Appointment,
    Holiday,
    OpeningHours,
    Room,
    VisitType,
    WorkingException,
    WorkingHours,
)
from tests.conftest import World
from tests.scheduling_fixtures import NOW, TUESDAY, at

MONDAY = NOW.date()

PASSWORD = "a long and unusual passphrase"
INIT = [
    "--clinic-name",
    "Clínica Norte",
    "--address",
    "12 Harbour Street",
    "--city",
    "Porto",
    "--phone",
    "+351 22 000 0000",
    "--timezone",
    "Europe/Lisbon",
    "--currency",
    "eur",
    "--date-format",
    "31/12/2026",
    "--time-format",
    "24h",
    "--locale",
    "en-GB",
    "--username",
    "ana",
    "--first-name",
    "Ana",
    "--last-name",
    "Costa",
    "--email",
    "ana@example.com",
    "--no-input",
]


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def html(response: Any, status: int = 200) -> str:
    assert response.status_code == status, (response.status_code, response.content[:400])
    return str(response.content.decode())


def error_of(page: str, field: str) -> str:
    """The error shown beside one field."""
    found = re.search(rf'id="id_{field}_error"><ul class="errorlist">(.*?)</ul>', page, re.S)
    assert found is not None, f"no error beside {field}"
    return found.group(1)


def init(monkeypatch: pytest.MonkeyPatch, *extra: str) -> str:
    monkeypatch.setenv("MESOCLINIC_MANAGER_PASSWORD", PASSWORD)
    out = StringIO()
    call_command("init", *INIT, *extra, stdout=out)
    return out.getvalue()


class TestInit:
    def test_it_creates_the_clinic_and_its_first_manager(
        self, db: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        said = init(monkeypatch)

        clinic = Clinic.objects.get()
        assert (clinic.name, clinic.address, clinic.timezone, clinic.currency) == (
            "Clínica Norte",
            "12 Harbour Street",
            "Europe/Lisbon",
            "EUR",
        )
        assert (clinic.date_format, clinic.time_format, clinic.locale) == ("d/m/Y", "24h", "en-GB")
        assert clinic.setup_pending
        manager = User.objects.get(username="ana")
        assert manager.check_password(PASSWORD)
        assert Membership.objects.get(user=manager).role == Membership.Role.MANAGER
        # What every clinic needs came with it: the protocols and the consent wording.
        assert clinic.protocols.exists() and clinic.consent_templates.exists()
        assert "Created Clínica Norte and its manager ana" in said
        created = AuditEvent.objects.filter(action="create", via="command", clinic=clinic)
        assert set(created.values_list("object_type", flat=True)) == {
            "accounts.Clinic",
            "accounts.Membership",
        }

    def test_it_refuses_a_second_clinic_unless_asked(
        self, db: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        init(monkeypatch)
        with pytest.raises(CommandError, match="already has a clinic"):
            init(monkeypatch)
        assert Clinic.objects.count() == 1

        call_command(
            "init",
            *[a if a not in ("ana", "ana@example.com") else f"x{a}" for a in INIT],
            "--another",
            stdout=StringIO(),
        )
        assert Clinic.objects.count() == 2

    def test_bad_values_are_named_and_nothing_is_created(
        self, db: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("MESOCLINIC_MANAGER_PASSWORD", "short")
        args = [a if a != "Europe/Lisbon" else "Mars/Olympus" for a in INIT]
        with pytest.raises(CommandError) as raised:
            call_command("init", *args, stdout=StringIO())
        message = str(raised.value)
        assert "Time zone: Select a valid choice." in message
        assert "- Password: This password is too short." in message
        assert not Clinic.objects.exists() and not User.objects.exists()

    def test_the_cli_migrates_and_reports_a_refusal_in_words(
        self, db: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.setenv("MESOCLINIC_MANAGER_PASSWORD", PASSWORD)
        assert cli.main(["init", *INIT]) == 0
        assert cli.main(["init", *INIT]) == 1
        assert "already has a clinic, so nothing was created" in capsys.readouterr().err

    def test_it_asks_for_what_the_flags_do_not_give(
        self, db: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        answers = iter(
            [
                "Little Clinic",
                "1 Main St",
                "",
                "555 0100",
                "",
                "",
                "",
                "12h",
                "",
                "bo",
                "Bo",
                "Berg",
                "bo@example.com",
            ]
        )
        monkeypatch.setattr("builtins.input", lambda _q: next(answers))
        monkeypatch.setattr("getpass.getpass", lambda _q: PASSWORD)
        call_command("init", stdout=StringIO())
        clinic = Clinic.objects.get()
        assert (clinic.name, clinic.timezone, clinic.time_format, clinic.date_format) == (
            "Little Clinic",
            "UTC",
            "12h",
            "j M Y",
        )
        assert User.objects.get(username="bo").check_password(PASSWORD)


class TestFirstSignIn:
    def test_a_new_clinics_manager_is_led_to_the_setup_guide(
        self, db: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        init(monkeypatch)
        client = Client()
        response = client.post("/accounts/login/", {"username": "ana", "password": PASSWORD})
        assert response["Location"] == "/manage/setup/"
        guide = html(client.get("/manage/setup/"))
        # The details were given to init; the rest is still to do.
        assert "5 steps to go" in guide
        today = html(client.get("/today/"))
        assert "Open the setup guide" in today

        # Saying the clinic is set up ends the banner and the detour.
        client.post("/manage/setup/")
        assert "Open the setup guide" not in html(client.get("/today/"))
        client.post("/accounts/logout/")
        again = client.post("/accounts/login/", {"username": "ana", "password": PASSWORD})
        assert again["Location"] == "/today/"

    def test_a_set_up_clinics_staff_go_to_today(self, world: World) -> None:
        world.manager.set_password(PASSWORD)
        world.manager.save()
        response = Client().post(
            "/accounts/login/", {"username": world.manager.username, "password": PASSWORD}
        )
        assert response["Location"] == "/today/"

    def test_a_superuser_with_no_clinic_creates_one_on_the_first_run_page(self, db: Any) -> None:
        admin = User.objects.create_superuser("root", "root@example.com", PASSWORD)
        client = Client()
        response = client.post("/accounts/login/", {"username": "root", "password": PASSWORD})
        assert response["Location"] == "/manage/setup/"
        page = html(client.get("/manage/setup/"))
        assert "Create your clinic" in page

        data = {
            "name": "First Clinic",
            "address": "",
            "city": "",
            "phone": "not a phone",
            "timezone": "America/Chicago",
            "currency": "USD",
            "date_format": "m/d/Y",
            "time_format": "12h",
            "locale": "en-US",
            "baseline_required": "on",
        }
        refused = html(client.post("/manage/setup/", data))
        assert "Enter a phone number" in error_of(refused, "phone")
        assert not Clinic.objects.exists()

        data["phone"] = "312 555 0100"
        assert client.post("/manage/setup/", data)["Location"] == "/manage/setup/"
        clinic = Clinic.objects.get()
        assert Membership.objects.get(user=admin, clinic=clinic).role == "manager"
        assert "Checklist" in html(client.get("/manage/setup/"))

    def test_other_roles_may_not_open_the_guide(self, world: World) -> None:
        assert signed_in(world.front_desk).get("/manage/setup/").status_code == 403
        assert signed_in(world.practitioner).get("/manage/rooms/").status_code == 403


class TestGuide:
    def test_each_step_is_done_once_the_clinic_has_it(self, world: World) -> None:
        client = signed_in(world.manager)

        def done() -> set[str]:
            page = html(client.get("/manage/setup/"))
            return set(re.findall(r'tag ok">Done</span>\s*<a href="[^"]+">([^<]+)</a>', page))

        # The test clinic has a formulary with lots in date, and licences, but no hours.
        assert done() == {"The formulary"}
        world.clinic.address, world.clinic.phone = "1 Main St", "555 0100"
        world.clinic.save()
        OpeningHours.objects.create(
            clinic=world.clinic, weekday=0, opens=dt.time(9), closes=dt.time(17)
        )
        Room.objects.create(clinic=world.clinic, name="Room 1")
        VisitType.objects.create(clinic=world.clinic, kind="consultation", minutes=20)
        WorkingHours.objects.create(
            clinic=world.clinic,
            user=world.practitioner,
            weekday=0,
            starts=dt.time(9),
            ends=dt.time(12),
        )
        assert done() == {
            "Clinic details",
            "Opening hours and holidays",
            "Rooms",
            "Visit types",
            "A practitioner with hours and a licence",
            "The formulary",
        }
        assert "everything is done" in html(client.get("/manage/setup/"))


class TestClinicDetails:
    def test_the_details_and_formats_are_saved_and_audited(self, world: World) -> None:
        client = signed_in(world.manager)
        data = {
            "name": "Renamed Clinic",
            "address": "2 Side St",
            "city": "Boston",
            "phone": "617 555 0100",
            "timezone": "America/New_York",
            "currency": "usd",
            "date_format": "Y-m-d",
            "time_format": "12h",
            "locale": "en-US",
        }
        assert client.post("/manage/clinic/", data).status_code == 302
        world.clinic.refresh_from_db()
        assert (world.clinic.name, world.clinic.date_format, world.clinic.currency) == (
            "Renamed Clinic",
            "Y-m-d",
            "USD",
        )
        event = AuditEvent.objects.filter(object_type="accounts.Clinic", action="update").get()
        assert event.detail["date_format"] == "Y-m-d" and event.detail["baseline_required"] is False

    def test_a_bad_currency_is_refused_beside_the_field(self, world: World) -> None:
        page = html(
            signed_in(world.manager).post(
                "/manage/clinic/",
                {
                    "name": "X",
                    "timezone": "UTC",
                    "currency": "dollars",
                    "date_format": "Y-m-d",
                    "time_format": "24h",
                    "locale": "en-US",
                },
            )
        )
        assert "three-letter code" in error_of(page, "currency")


def week_data(**days: str) -> dict[str, str]:
    data = {"form": "week", **{f"day{n}": "" for n in range(7)}}
    data.update(days)
    return data


class TestOpeningHours:
    def test_the_week_is_saved_from_what_was_typed(self, world: World) -> None:
        client = signed_in(world.manager)
        response = client.post(
            "/manage/hours/", week_data(day0="9:00-12:30, 14:00–18:00", day5="9 am - 1 pm")
        )
        assert response.status_code == 302
        rows = list(
            OpeningHours.objects.filter(clinic=world.clinic).values_list(
                "weekday", "opens", "closes"
            )
        )
        assert rows == [
            (0, dt.time(9), dt.time(12, 30)),
            (0, dt.time(14), dt.time(18)),
            (5, dt.time(9), dt.time(13)),
        ]
        page = html(client.get("/manage/hours/"))
        assert 'value="09:00–12:30, 14:00–18:00"' in page
        assert AuditEvent.objects.filter(object_type="scheduling.OpeningHours").exists()

    @pytest.mark.parametrize(
        ("typed", "error"),
        [
            ("12:00-9:00", "the end is not after the start"),
            ("9:00-13:00, 12:00-17:00", "overlap"),
            ("nine to five", "is not a time"),
            ("9:00", "as a start and an end"),
        ],
    )
    def test_bad_hours_are_refused_beside_the_day(
        self, world: World, typed: str, error: str
    ) -> None:
        page = html(signed_in(world.manager).post("/manage/hours/", week_data(day2=typed)))
        assert error in error_of(page, "day2")
        assert not OpeningHours.objects.filter(clinic=world.clinic).exists()

    def test_holidays_are_added_in_the_clinics_format_and_removed(self, world: World) -> None:
        world.clinic.date_format = "d/m/Y"
        world.clinic.save()
        client = signed_in(world.manager)
        client.post(
            "/manage/hours/", {"form": "holiday", "date": "25/12/2026", "name": "Christmas"}
        )
        holiday = Holiday.objects.get(clinic=world.clinic)
        assert holiday.date == dt.date(2026, 12, 25)
        page = html(client.get("/manage/hours/"))
        assert "25/12/2026" in page

        twice = html(
            client.post(
                "/manage/hours/", {"form": "holiday", "date": "2026-12-25", "name": "Again"}
            )
        )
        assert "already a holiday" in error_of(twice, "date")
        bad = html(
            client.post("/manage/hours/", {"form": "holiday", "date": "12/25/2026", "name": "X"})
        )
        assert "Enter a date like 31/12/2026." in error_of(bad, "date")

        client.post(f"/manage/hours/holidays/{holiday.pk}/delete/")
        assert not Holiday.objects.exists()
        assert AuditEvent.objects.filter(object_type="scheduling.Holiday", action="delete").exists()

    def test_another_clinics_holiday_is_not_found(self, world: World, other: World) -> None:
        theirs = Holiday.objects.create(
            clinic=other.clinic, date=dt.date(2026, 1, 1), name="New Year"
        )
        response = signed_in(world.manager).post(f"/manage/hours/holidays/{theirs.pk}/delete/")
        assert response.status_code == 404
        assert Holiday.objects.filter(pk=theirs.pk).exists()


class TestRooms:
    def test_add_rename_close_and_reopen(self, world: World) -> None:
        client = signed_in(world.manager)
        client.post("/manage/rooms/", {"name": "Room A"})
        room = Room.objects.get(clinic=world.clinic)
        taken = html(client.post("/manage/rooms/", {"name": "room a"}), 400)
        assert "already has a room with this name" in error_of(taken, "name")

        client.post(
            f"/manage/rooms/{room.pk}/", {"action": "rename", f"r{room.pk}-name": "Blue room"}
        )
        client.post(f"/manage/rooms/{room.pk}/", {"action": "deactivate"})
        room.refresh_from_db()
        assert (room.name, room.active) == ("Blue room", False)
        client.post(f"/manage/rooms/{room.pk}/", {"action": "activate"})
        room.refresh_from_db()
        assert room.active
        assert AuditEvent.objects.filter(object_type="scheduling.Room").count() == 4

    def test_a_room_with_visits_is_closed_not_deleted(self, cal: World, patient: Patient) -> None:
        room = Room.objects.get(clinic=cal.clinic, name="Room 1")
        Appointment.objects.create(
            clinic=cal.clinic,
            patient=patient,
            kind="review",
            practitioner=cal.practitioner,
            room=room,
            starts_at=at(10),
            ends_at=at(10, 30),
        )
        client = signed_in(cal.manager)
        listed = html(client.get("/manage/rooms/"))
        assert "1 visit booked from now on." in listed
        refused = client.post(f"/manage/rooms/{room.pk}/", {"action": "delete"}, follow=True)
        assert "Room 1 cannot be deleted because visits were booked in it" in html(refused)
        assert Room.objects.filter(pk=room.pk).exists()

        closed = html(
            client.post(f"/manage/rooms/{room.pk}/", {"action": "deactivate"}, follow=True)
        )
        assert "The 1 visit already booked in it stay booked" in closed

        unused = Room.objects.get(clinic=cal.clinic, name="Room 2")
        client.post(f"/manage/rooms/{unused.pk}/", {"action": "delete"})
        assert not Room.objects.filter(pk=unused.pk).exists()


class TestVisitTypes:
    def test_the_lengths_are_saved_and_the_protocols_shown(self, world: World) -> None:
        client = signed_in(world.manager)
        page = html(client.get("/manage/visit-types/"))
        assert "Consultation" in page and "Lengths the protocols give" in page
        data = {kind: "30" for kind in Appointment.Kind.values} | {"consultation": "45"}
        client.post("/manage/visit-types/", data)
        assert dict(VisitType.objects.values_list("kind", "minutes")) == {
            kind: 30 for kind in Appointment.Kind.values
        } | {"consultation": 45}

    def test_a_consultation_is_booked_from_the_calendar_without_a_course(
        self, cal: World, patient: Patient
    ) -> None:
        VisitType.objects.create(clinic=cal.clinic, kind="consultation", minutes=45)
        client = signed_in(cal.front_desk)
        query = {
            "patient": patient.pk,
            "kind": "consultation",
            "practitioner": cal.practitioner.pk,
            "course": "",
            "minutes": "",
        }
        page = html(client.get("/calendar/book/?" + urlencode(query)))
        assert "Monday 23 November 2026, 09:00–09:45" in page
        fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page))
        assert client.post("/calendar/book/", fields).status_code == 302
        made = Appointment.objects.get(patient=patient)
        assert (made.kind, made.course, made.duration) == (
            "consultation",
            None,
            dt.timedelta(minutes=45),
        )
        assert made.starts_at == at(9, 0, MONDAY)

    def test_a_consultation_booked_without_an_end_takes_the_clinics_length(
        self, cal: World, patient: Patient, course: Any
    ) -> None:
        from mesoclinic.scheduling.actions import do_book

        VisitType.objects.create(clinic=cal.clinic, kind="consultation", minutes=20)
        # Even with a course: no protocol gives a consultation's length.
        visit = do_book(
            patient,
            kind="consultation",
            practitioner=cal.practitioner,
            starts_at=at(10),
            course=course,
            user=cal.front_desk,
        )
        assert visit.duration == dt.timedelta(minutes=20)


class TestPractitionerHours:
    def member(self, world: World) -> Membership:
        return Membership.objects.get(user=world.practitioner, clinic=world.clinic)

    def test_weekly_hours_are_saved_and_hours_beyond_opening_are_warned(self, cal: World) -> None:
        client = signed_in(cal.manager)
        url = f"/manage/staff/{self.member(cal).pk}/hours/"
        page = html(client.post(url, week_data(day0="8:00-12:00", day6="10:00-12:00"), follow=True))
        assert "On Sunday these hours go beyond the clinic&#x27;s opening hours" in page
        assert list(
            WorkingHours.objects.filter(user=cal.practitioner).values_list("weekday", "starts")
        ) == [(0, dt.time(8)), (6, dt.time(10))]
        bad = html(client.post(url, week_data(day1="9:00-12:00, 11:00-13:00")))
        assert "overlap" in error_of(bad, "day1")

    def test_time_off_and_extra_hours(self, cal: World) -> None:
        client = signed_in(cal.manager)
        url = f"/manage/staff/{self.member(cal).pk}/hours/"
        client.post(
            url, {"form": "exception", "date": "2026-12-01", "kind": "time_off", "hours": ""}
        )
        off = WorkingException.objects.get(user=cal.practitioner)
        assert off.whole_day and off.date == TUESDAY
        clash = html(
            client.post(
                url,
                {
                    "form": "exception",
                    "date": "1 Dec 2026",
                    "kind": "extra_hours",
                    "hours": "18:00-20:00",
                },
            )
        )
        assert "already a change of hours on this day" in error_of(clash, "date")
        no_hours = html(
            client.post(
                url, {"form": "exception", "date": "2 Dec 2026", "kind": "extra_hours", "hours": ""}
            )
        )
        assert "Say when the extra hours are" in error_of(no_hours, "hours")
        client.post(
            url,
            {
                "form": "exception",
                "date": "2 Dec 2026",
                "kind": "extra_hours",
                "hours": "18:00-20:00",
                "note": "Late clinic",
            },
        )
        page = html(client.get(url))
        assert "2 Dec 2026" in page and "18:00–20:00" in page and "Late clinic" in page
        client.post(f"{url}{off.pk}/delete/")
        assert WorkingException.objects.filter(user=cal.practitioner).count() == 1

    def test_another_clinics_practitioner_is_not_found(self, world: World, other: World) -> None:
        theirs = Membership.objects.get(user=other.practitioner)
        assert signed_in(world.manager).get(f"/manage/staff/{theirs.pk}/hours/").status_code == 404


class TestFormats:
    @pytest.mark.parametrize(
        ("key", "shown"),
        [
            ("d/m/Y", "05/03/2026"),
            ("m/d/Y", "03/05/2026"),
            ("Y-m-d", "2026-03-05"),
            ("j M Y", "5 Mar 2026"),
        ],
    )
    def test_dates_in_each_format_read_back(self, key: str, shown: str) -> None:
        clinic = Clinic(date_format=key, timezone="UTC")
        assert formats.date_text(dt.date(2026, 3, 5), clinic) == shown
        assert formats.parse_date(shown, clinic) == dt.date(2026, 3, 5)
        assert formats.parse_date("2026-03-05", clinic) == dt.date(2026, 3, 5)

    def test_times_on_the_clinics_clock_and_zone(self) -> None:
        clinic = Clinic(time_format="12h", timezone="America/New_York", date_format="m/d/Y")
        moment = dt.datetime(2026, 7, 1, 18, 5, tzinfo=dt.UTC)
        assert formats.datetime_text(moment, clinic) == "07/01/2026, 2:05 pm"
        assert formats.time_text(dt.time(0, 30), clinic) == "12:30 am"
        assert formats.time_text(dt.time(12), clinic) == "12:00 pm"
        clinic.time_format = "24h"
        assert formats.time_text(moment, clinic) == "14:05"

    def test_a_moment_with_its_weekday_falls_on_the_clinics_day(self) -> None:
        # 02:30 UTC on Thursday 31 December is still Wednesday 30 December in New York.
        clinic = Clinic(time_format="12h", timezone="America/New_York", date_format="d/m/Y")
        moment = dt.datetime(2026, 12, 31, 2, 30, tzinfo=dt.UTC)
        assert formats.when_text(moment, clinic) == "Wed 30/12/2026, 9:30 pm"
        assert formats.short_when_text(moment, clinic) == "Wed 30 Dec, 9:30 pm"
        assert formats.short_day_text(moment, clinic) == "Wed 30 Dec"
        # A date is a day already: no zone moves it.
        assert formats.short_day_text(dt.date(2026, 12, 31), clinic) == "Thu 31 Dec"
        clinic.timezone = "Europe/Paris"
        clinic.time_format = "24h"
        assert formats.when_text(moment, clinic) == "Thu 31/12/2026, 03:30"
        assert formats.short_day_text(moment, clinic) == "Thu 31 Dec"
        assert formats.when_text(None, clinic) == formats.short_when_text(None, clinic) == ""
        assert formats.short_day_text(None, clinic) == ""

    def test_without_a_clinic_the_active_zone_is_used(self) -> None:
        from django.utils import timezone

        moment = dt.datetime(2026, 7, 1, 18, 5, tzinfo=dt.UTC)
        with timezone.override(zoneinfo.ZoneInfo("Asia/Tokyo")):
            assert formats.datetime_text(moment) == "2 Jul 2026, 03:05"

    def test_spans_read_as_people_type_them(self) -> None:
        assert formats.parse_spans("2 pm - 6 pm, 9:00–12:00") == [
            (dt.time(9), dt.time(12)),
            (dt.time(14), dt.time(18)),
        ]
        assert formats.parse_spans("  ") == []
