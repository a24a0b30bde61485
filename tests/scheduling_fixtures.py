"""The calendar fixtures shared by the scheduling, planning, API and web calendar tests: a
clinic with opening hours, two practitioners' working weeks and two rooms, on a frozen clock.
tests/conftest.py registers this module as a plugin, so the fixtures need no import."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

import pytest
import time_machine

from mesoclinic.courses.actions import do_plan_course
from mesoclinic.courses.models import Course
from mesoclinic.patients.models import Patient
from mesoclinic.protocols.models import ClinicProtocol
from mesoclinic.scheduling.models import OpeningHours, Room, WorkingHours
from tests.conftest import World

NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
# "Now" for these tests is Monday 23 Nov 2026; most bookings are on Tuesday 1 Dec.
NOW = dt.datetime(2026, 11, 23, 8, 0, tzinfo=NEW_YORK)
TUESDAY = dt.date(2026, 12, 1)


def at(hour: int, minute: int = 0, day: dt.date = TUESDAY) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=NEW_YORK)


@pytest.fixture
def now() -> Any:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def cal(world: World, now: Any) -> World:
    """The clinic opens 08:00–20:00 Monday to Saturday; Maria Silva (the practitioner) and
    the manager work 09:00–13:00 and 14:00–18:00 Monday to Friday; two rooms."""
    world.practitioner.first_name, world.practitioner.last_name = "Maria", "Silva"
    world.practitioner.save()
    for weekday in range(6):
        OpeningHours.objects.create(
            clinic=world.clinic, weekday=weekday, opens=dt.time(8), closes=dt.time(20)
        )
    for user in (world.practitioner, world.manager):
        for weekday in range(5):
            for starts, ends in ((9, 13), (14, 18)):
                WorkingHours.objects.create(
                    clinic=world.clinic,
                    user=user,
                    weekday=weekday,
                    starts=dt.time(starts),
                    ends=dt.time(ends),
                )
    Room.objects.create(clinic=world.clinic, name="Room 1")
    Room.objects.create(clinic=world.clinic, name="Room 2")
    return world


def room(world: World, name: str) -> Room:
    return Room.objects.get(clinic=world.clinic, name=name)


@pytest.fixture
def course(cal: World, patient: Patient) -> Course:
    return do_plan_course(
        patient,
        ClinicProtocol.current(cal.clinic, "cellulite"),  # type: ignore[arg-type]
        indication="cellulite",
        areas=["thighs", "buttocks"],
        cadence_days=7,
        planned_sessions=15,
        user=cal.manager,
    )
