"""Proposing a course as a series of visits, from each practitioner's free time."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from mesoclinic.scheduling.series import (
    Interval,
    Preferences,
    Rules,
    VisitSpec,
    propose,
)

NY = zoneinfo.ZoneInfo("America/New_York")
TEST = VisitSpec("allergy_test", dt.timedelta(minutes=15))
SESSION = VisitSpec("session", dt.timedelta(minutes=45))
WEEKLY = Rules(
    cadence=dt.timedelta(days=7),
    tolerance=dt.timedelta(days=2),
    test_wait=dt.timedelta(hours=24),
)
MONDAY = dt.date(2026, 11, 23)


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=NY)


def weekdays(first: dt.date, days: int, start: int = 9, end: int = 17) -> list[Interval]:
    """Working hours on every weekday for `days` days from `first`."""
    out = []
    for n in range(days):
        day = first + dt.timedelta(days=n)
        if day.weekday() < 5:
            out.append(Interval(at(day, start), at(day, end)))
    return out


def minus(free: list[Interval], start: dt.datetime, end: dt.datetime) -> list[Interval]:
    out = []
    for gap in free:
        if gap.end <= start or gap.start >= end:
            out.append(gap)
            continue
        if gap.start < start:
            out.append(Interval(gap.start, start))
        if end < gap.end:
            out.append(Interval(end, gap.end))
    return out


def test_a_course_keeps_its_cadence_with_the_same_practitioner() -> None:
    free = {1: weekdays(MONDAY, 60), 2: weekdays(MONDAY, 60)}
    got = propose(
        [TEST] + [SESSION] * 6,
        not_before=at(MONDAY, 10),
        rules=WEEKLY,
        practitioners=[1, 2],
        free=free,
        tz=NY,
    )
    assert got.complete
    starts = [v.start for v in got.visits]
    assert starts[0] == at(MONDAY, 10)
    assert starts[1] == at(MONDAY + dt.timedelta(days=1), 10)  # 24 h after the test
    assert all(b - a == dt.timedelta(days=7) for a, b in zip(starts[1:], starts[2:], strict=False))
    assert {v.practitioner for v in got.visits} == {1}


def test_session_1_is_never_less_than_the_wait_after_the_test() -> None:
    # The day after the test is fully booked until 10:30, so session 1 may not be at 10:00.
    free = {
        1: minus(
            weekdays(MONDAY, 30),
            at(MONDAY + dt.timedelta(days=1), 9),
            at(MONDAY + dt.timedelta(days=1), 10, 30),
        )
    }
    got = propose(
        [TEST, SESSION],
        not_before=at(MONDAY, 10),
        rules=WEEKLY,
        practitioners=[1],
        free=free,
        tz=NY,
    )
    assert got.complete
    assert got.visits[1].start - got.visits[0].start >= dt.timedelta(hours=24)
    assert got.visits[1].start == at(MONDAY + dt.timedelta(days=1), 10, 30)


def test_a_taken_slot_moves_the_visit_inside_its_window_not_the_rest() -> None:
    tuesday = MONDAY + dt.timedelta(days=1)
    week2 = tuesday + dt.timedelta(days=7)
    free = {1: minus(weekdays(MONDAY, 40), at(week2, 9), at(week2, 17))}
    got = propose(
        [TEST] + [SESSION] * 3,
        not_before=at(MONDAY, 10),
        rules=WEEKLY,
        practitioners=[1],
        free=free,
        tz=NY,
    )
    assert got.complete
    second, third = got.visits[2].start, got.visits[3].start
    assert abs(second - at(week2, 10)) <= WEEKLY.tolerance and second.date() != week2
    # The next session follows the moved one at the cadence, within its own window.
    assert abs(third - (second + WEEKLY.cadence)) <= WEEKLY.tolerance


def test_another_practitioner_takes_a_visit_only_when_the_first_has_no_room() -> None:
    week2 = MONDAY + dt.timedelta(days=8)
    busy_week = minus(
        weekdays(MONDAY, 40),
        at(week2 - dt.timedelta(days=3), 0),
        at(week2 + dt.timedelta(days=3), 0),
    )
    got = propose(
        [TEST] + [SESSION] * 3,
        not_before=at(MONDAY, 10),
        rules=WEEKLY,
        practitioners=[1, 2],
        free={1: busy_week, 2: weekdays(MONDAY, 40)},
        tz=NY,
    )
    assert got.complete
    assert [v.practitioner for v in got.visits] == [1, 1, 2, 1]


def test_the_patients_preferred_days_and_times_win_when_the_window_allows() -> None:
    prefs = Preferences(weekdays=frozenset({3}), earliest_time=dt.time(14))  # Thursdays, afternoon
    got = propose(
        [SESSION] * 4,
        not_before=at(MONDAY, 9),
        rules=WEEKLY,
        practitioners=[1],
        free={1: weekdays(MONDAY, 60)},
        tz=NY,
        prefs=prefs,
    )
    assert got.complete
    local = [v.start.astimezone(NY) for v in got.visits]
    assert all(t.weekday() == 3 and t.time() >= dt.time(14) for t in local)


def test_a_visit_with_no_room_is_named_and_nothing_after_it_is_placed() -> None:
    got = propose(
        [TEST] + [SESSION] * 3,
        not_before=at(MONDAY, 10),
        rules=WEEKLY,
        practitioners=[1],
        free={1: weekdays(MONDAY, 5)},  # one week of hours only
        tz=NY,
    )
    assert not got.complete
    assert len(got.visits) == 2
    assert got.problems == [
        "Visit 3 (session) has no free time between Sun 29 Nov 10:00 and Thu 3 Dec 10:00."
    ]


def test_weekly_sessions_keep_their_clock_time_across_the_end_of_daylight_saving() -> None:
    before = dt.date(2026, 10, 27)  # Tuesday; US daylight saving ends on Sunday 1 November
    got = propose(
        [SESSION] * 3,
        not_before=at(before, 10),
        rules=WEEKLY,
        practitioners=[1],
        free={1: weekdays(before, 30)},
        tz=NY,
    )
    assert got.complete
    assert [v.start.astimezone(NY).time() for v in got.visits] == [dt.time(10)] * 3
    assert got.visits[1].start - got.visits[0].start == dt.timedelta(days=7, hours=1)


def test_a_window_across_a_daylight_saving_change_keeps_its_edges_on_the_clock() -> None:
    import zoneinfo

    from mesoclinic.scheduling.series import Anchor, Rules, window_after

    ny = zoneinfo.ZoneInfo("America/New_York")
    rules = Rules(
        cadence=dt.timedelta(days=7),
        tolerance=dt.timedelta(days=2),
        test_wait=dt.timedelta(hours=24),
    )
    # Clocks go forward on Sun 8 Mar 2026.
    last = dt.datetime(2026, 3, 2, 10, 0, tzinfo=ny)
    window, due = window_after(Anchor("session", last), rules, ny)
    assert window.start.astimezone(ny) == dt.datetime(2026, 3, 7, 10, 0, tzinfo=ny)
    assert due.astimezone(ny) == dt.datetime(2026, 3, 9, 10, 0, tzinfo=ny)
    assert window.end.astimezone(ny) == dt.datetime(2026, 3, 11, 10, 0, tzinfo=ny)
