"""The calendar model and the booking path: working and opening hours, holidays, durations from
the protocol, refusals that name the conflict, cancellations and no-shows, and no double
booking even when many threads and processes race for one slot, on SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import textwrap
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction

from mesoclinic.accounts.models import AuditEvent, Membership
from mesoclinic.patients.models import Patient
from mesoclinic.protocols.loader import shipped_protocols, validate_protocol
from mesoclinic.protocols.vocab import NO_SOURCE
from mesoclinic.scheduling import logic
from mesoclinic.scheduling.actions import (
    BookingRefused,
    BookingRequest,
    do_book,
    do_book_many,
    do_cancel,
    do_mark_no_show,
)
from mesoclinic.scheduling.models import (
    Appointment,
    AppointmentOverlap,
    Holiday,
    Room,
    WorkingException,
    WorkingHours,
)
from tests.conftest import World, make_user
from tests.scheduling_fixtures import (
    NEW_YORK,
    NOW,
    TUESDAY,
    at,
    race_processes,
    room,
    run_script,
)


def book(world: World, patient: Patient, start: dt.datetime, minutes: int = 30, **kw: Any) -> Any:
    kw.setdefault("practitioner", world.practitioner)
    kw.setdefault("kind", Appointment.Kind.SESSION)
    return do_book(
        patient,
        starts_at=start,
        ends_at=start + dt.timedelta(minutes=minutes),
        user=world.front_desk,
        **kw,
    )


def refusal(world: World, patient: Patient, start: dt.datetime, **kw: Any) -> BookingRefused:
    with pytest.raises(BookingRefused) as caught:
        book(world, patient, start, **kw)
    return caught.value


def second_patient(world: World) -> Patient:
    return Patient.objects.create(
        clinic=world.clinic, first_name="Bea", last_name="Cruz", date_of_birth=dt.date(1985, 1, 2)
    )


class DurationTests:
    def test_visit_lengths_come_from_the_protocol_and_a_session_grows_with_its_areas(self):
        spec = shipped_protocols()["cellulite"]
        minutes = {
            kind: logic.duration(kind, spec, n) / dt.timedelta(minutes=1)
            for kind, n in (
                ("allergy_test", 2),
                ("test_reading", 2),
                ("review", 2),
                ("maintenance", 1),
            )
        }
        assert minutes == {
            "allergy_test": 20,
            "test_reading": 15,
            "review": 20,
            "maintenance": 30,
        }
        assert logic.duration("session", spec, 1) == dt.timedelta(minutes=30)
        assert logic.duration("session", spec, 3) == dt.timedelta(minutes=50)
        assert logic.duration("session", spec, 0) == dt.timedelta(minutes=30)

    def test_every_shipped_visit_length_is_sourced_or_says_why_not(self):
        for key, spec in shipped_protocols().items():
            assert spec.visits is not None, key
            for name, fact in spec.visits:
                chosen = fact.chosen
                assert chosen.source, (key, name)
                if NO_SOURCE in chosen.source:
                    assert chosen.note.strip(), (key, name)

    def test_a_clinic_copy_saved_before_visit_lengths_takes_the_shipped_ones(self):
        document = shipped_protocols()["cellulite"].model_dump(mode="json", exclude_none=True)
        del document["visits"]
        old = validate_protocol(document, "old copy")
        assert old.visits is None
        assert logic.duration("session", old, 2) == dt.timedelta(minutes=40)

    def test_hours_arithmetic(self):
        t = dt.time
        assert logic.merge([(t(14), t(18)), (t(9), t(13)), (t(13), t(14))]) == [(t(9), t(18))]
        assert logic.subtract([(t(9), t(18))], [(t(12), t(13))]) == [
            (t(9), t(12)),
            (t(13), t(18)),
        ]
        assert logic.covers([(t(9), t(13)), (t(13), t(18))], t(12, 30), t(13, 30))
        assert not logic.covers([(t(9), t(12)), (t(13), t(18))], t(11, 30), t(12, 30))
        assert logic.working_spans([(t(9), t(13))], [(t(18), t(20))], [], False) == [
            (t(9), t(13)),
            (t(18), t(20)),
        ]
        assert logic.working_spans([(t(9), t(13))], [(t(18), t(20))], [], True) == []


class ModelTests:
    def test_an_appointment_must_end_after_it_starts(self, cal, patient):
        with pytest.raises(IntegrityError), transaction.atomic():
            Appointment.objects.bulk_create(
                [
                    Appointment(
                        clinic=cal.clinic,
                        patient=patient,
                        kind="session",
                        practitioner=cal.practitioner,
                        starts_at=at(10),
                        ends_at=at(10),
                    )
                ]
            )

    def test_extra_hours_must_say_when(self, cal):
        with pytest.raises(IntegrityError), transaction.atomic():
            WorkingException.objects.create(
                clinic=cal.clinic, user=cal.practitioner, date=TUESDAY, kind="extra_hours"
            )

    def test_working_hours_end_after_they_start(self, cal):
        with pytest.raises(IntegrityError), transaction.atomic():
            WorkingHours.objects.create(
                clinic=cal.clinic,
                user=cal.practitioner,
                weekday=1,
                starts=dt.time(12),
                ends=dt.time(9),
            )

    def test_the_database_refuses_two_active_appointments_at_once(self, cal, patient):
        """PostgreSQL: the exclusion constraints refuse the row even when the application's
        check is skipped (bulk_create does not call save()). SQLite has no such constraint;
        there, every save re-checks inside a transaction that begins IMMEDIATE."""

        def appt(**kw: Any) -> Appointment:
            fields: dict[str, Any] = {
                "clinic": cal.clinic,
                "patient": patient,
                "kind": "session",
                "practitioner": cal.practitioner,
                "starts_at": at(10),
                "ends_at": at(10, 45),
            }
            fields.update(kw)
            return Appointment(**fields)

        appt(room=room(cal, "Room 2")).save()
        if connection.vendor == "postgresql":
            with pytest.raises(IntegrityError) as caught, transaction.atomic():
                Appointment.objects.bulk_create([appt(starts_at=at(10, 30), ends_at=at(11))])
            assert "appointment_no_practitioner_overlap" in str(caught.value)
            with pytest.raises(IntegrityError) as caught, transaction.atomic():
                Appointment.objects.bulk_create(
                    [appt(practitioner=cal.manager, room=room(cal, "Room 2"))]
                )
            assert "appointment_no_room_overlap" in str(caught.value)
            # Back to back, or cancelled, is fine.
            Appointment.objects.bulk_create(
                [
                    appt(starts_at=at(10, 45), ends_at=at(11, 30)),
                    appt(status=Appointment.Status.CANCELLED),
                    appt(status=Appointment.Status.NO_SHOW),
                ]
            )
        else:
            assert connection.vendor == "sqlite"
            assert connection.settings_dict["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
            with pytest.raises(AppointmentOverlap):
                appt(starts_at=at(10, 30), ends_at=at(11)).save()
            with pytest.raises(AppointmentOverlap):
                appt(practitioner=cal.manager, room=room(cal, "Room 2")).save()
            appt(starts_at=at(10, 45), ends_at=at(11, 30)).save()
            appt(status=Appointment.Status.CANCELLED).save()
            appt(status=Appointment.Status.NO_SHOW).save()
        assert Appointment.objects.exclude(status__in=Appointment.INACTIVE).count() == 2

    def test_reopening_a_cancelled_appointment_over_a_new_one_is_refused(self, cal, patient):
        first = book(cal, patient, at(10))
        do_cancel(first, user=cal.front_desk)
        book(cal, second_patient(cal), at(10))
        first.refresh_from_db()
        first.status = Appointment.Status.BOOKED
        with pytest.raises(AppointmentOverlap):
            first.save()


class BookingTests:
    def test_it_books_a_session_as_long_as_the_protocol_says(self, cal, patient, course):
        appointment = do_book(
            patient,
            kind="session",
            practitioner=cal.practitioner,
            starts_at=at(10),
            course=course,
            room=room(cal, "Room 1"),
            user=cal.front_desk,
            via="web",
        )
        # Cellulite: 30 minutes for the first area, 10 for the second.
        assert appointment.ends_at == at(10, 40)
        assert appointment.status == Appointment.Status.BOOKED
        assert appointment.created_by == cal.front_desk
        event = AuditEvent.objects.get(object_type="scheduling.Appointment")
        assert event.action == AuditEvent.Action.CREATE and event.patient_id == patient.pk
        assert event.detail["course"] == course.pk and event.via == "web"

    def test_it_refuses_a_practitioner_who_already_has_a_visit(self, cal, patient):
        book(cal, patient, at(10), minutes=45)
        refused = refusal(cal, second_patient(cal), at(10, 30))
        assert refused.codes == ["practitioner_busy"]
        assert str(refused) == "Maria Silva already has a session 10:00–10:45 on Tue 1 Dec."

    def test_it_refuses_a_room_that_is_taken(self, cal, patient):
        book(cal, patient, at(10), minutes=45, room=room(cal, "Room 2"))
        refused = refusal(
            cal, second_patient(cal), at(10, 15), practitioner=cal.manager, room=room(cal, "Room 2")
        )
        assert refused.codes == ["room_taken"]
        assert str(refused) == "Room 2 is taken by a session 10:00–10:45 on Tue 1 Dec."

    def test_back_to_back_visits_and_other_rooms_are_fine(self, cal, patient):
        book(cal, patient, at(10), room=room(cal, "Room 1"))
        book(cal, patient, at(10, 30), room=room(cal, "Room 1"))
        book(cal, second_patient(cal), at(10), practitioner=cal.manager, room=room(cal, "Room 2"))
        assert Appointment.objects.count() == 3

    def test_it_refuses_outside_working_hours(self, cal, patient):
        refused = refusal(cal, patient, at(12, 45))
        assert refused.codes == ["practitioner_not_working"]
        assert str(refused) == (
            "Maria Silva works 09:00–13:00, 14:00–18:00 on Tue 1 Dec: "
            "Session 12:45–13:15 on Tue 1 Dec falls outside."
        )

    def test_it_refuses_a_day_off_and_part_of_a_day_off(self, cal, patient):
        WorkingException.objects.create(
            clinic=cal.clinic, user=cal.practitioner, date=TUESDAY, kind="time_off"
        )
        day_off = refusal(cal, patient, at(10))
        assert day_off.codes == ["practitioner_not_working"]
        # A whole day off is said as such, never as "works none".
        assert "Maria Silva does not work on Tue 1 Dec" in str(day_off)
        assert "none" not in str(day_off)
        wednesday = TUESDAY + dt.timedelta(days=1)
        WorkingException.objects.create(
            clinic=cal.clinic,
            user=cal.practitioner,
            date=wednesday,
            kind="time_off",
            starts=dt.time(9),
            ends=dt.time(11),
        )
        assert refusal(cal, patient, at(10, day=wednesday)).codes == ["practitioner_not_working"]
        book(cal, patient, at(11, day=wednesday))

    def test_extra_hours_open_a_saturday(self, cal, patient):
        saturday = dt.date(2026, 12, 5)
        assert refusal(cal, patient, at(10, day=saturday)).codes == ["practitioner_not_working"]
        WorkingException.objects.create(
            clinic=cal.clinic,
            user=cal.practitioner,
            date=saturday,
            kind="extra_hours",
            starts=dt.time(9),
            ends=dt.time(12),
        )
        book(cal, patient, at(10, day=saturday))

    def test_it_refuses_when_the_clinic_is_closed(self, cal, patient):
        sunday = dt.date(2026, 12, 6)
        WorkingException.objects.create(
            clinic=cal.clinic,
            user=cal.practitioner,
            date=sunday,
            kind="extra_hours",
            starts=dt.time(9),
            ends=dt.time(12),
        )
        refused = refusal(cal, patient, at(10, day=sunday))
        assert refused.codes == ["clinic_closed"]
        assert "The clinic is closed on Sundays, so a session 10:00–10:30 on Sun 6 Dec" in str(
            refused
        )
        assert "none" not in str(refused)

    def test_it_refuses_a_holiday(self, cal, patient):
        Holiday.objects.create(clinic=cal.clinic, date=TUESDAY, name="Staff training")
        refused = refusal(cal, patient, at(10))
        assert refused.codes == ["holiday"]
        assert str(refused).startswith("The clinic is closed on Tue 1 Dec (Staff training)")

    def test_it_refuses_what_makes_no_sense(self, cal, other, patient):
        assert refusal(cal, patient, at(10), minutes=0).codes == ["invalid"]
        naive = dt.datetime(2026, 12, 1, 10)
        assert "time zone" in str(refusal(cal, patient, naive))
        past = refusal(cal, patient, NOW - dt.timedelta(days=1))
        assert "in the past" in str(past)
        assert "not a practitioner" in str(
            refusal(cal, patient, at(10), practitioner=cal.front_desk)
        )
        stranger = make_user(other.clinic, "stranger", Membership.Role.PRACTITIONER)
        assert "not a practitioner" in str(refusal(cal, patient, at(10), practitioner=stranger))
        theirs = Room.objects.create(clinic=other.clinic, name="Salle A")
        assert "not an open room" in str(refusal(cal, patient, at(10), room=theirs))
        closed = room(cal, "Room 1")
        closed.active = False
        closed.save()
        assert "not an open room" in str(refusal(cal, patient, at(10), room=closed))
        with pytest.raises(BookingRefused, match="end time"):
            do_book(
                patient, kind="review", practitioner=cal.practitioner, starts_at=at(10), user=None
            )
        assert Appointment.objects.count() == 0

    def test_booking_several_is_all_or_nothing(self, cal, patient):
        book(cal, second_patient(cal), at(10, 15, day=TUESDAY + dt.timedelta(days=14)))
        requests = [
            BookingRequest(
                patient,
                "session",
                cal.practitioner,
                at(10, day=TUESDAY + dt.timedelta(days=d)),
                at(10, 30, day=TUESDAY + dt.timedelta(days=d)),
            )
            for d in (0, 7, 14)
        ]
        with pytest.raises(BookingRefused) as caught:
            do_book_many(requests, user=cal.front_desk)
        assert caught.value.codes == ["practitioner_busy"]
        assert "Tue 15 Dec" in str(caught.value)
        assert Appointment.objects.filter(patient=patient).count() == 0
        requests[2].starts_at = at(11, day=TUESDAY + dt.timedelta(days=14))
        requests[2].ends_at = at(11, 30, day=TUESDAY + dt.timedelta(days=14))
        booked = do_book_many(requests, user=cal.front_desk)
        assert [a.starts_at.date() for a in booked] == [
            dt.date(2026, 12, 1),
            dt.date(2026, 12, 8),
            dt.date(2026, 12, 15),
        ]
        assert AuditEvent.objects.filter(object_type="scheduling.Appointment").count() == 4

    def test_booking_several_refuses_visits_that_overlap_each_other(self, cal, patient):
        requests = [
            BookingRequest(patient, "session", cal.practitioner, at(10), at(10, 30)),
            BookingRequest(second_patient(cal), "review", cal.practitioner, at(10, 15), at(11)),
        ]
        with pytest.raises(BookingRefused) as caught:
            do_book_many(requests, user=cal.front_desk)
        assert caught.value.codes == ["overlap_in_request"]
        assert Appointment.objects.count() == 0

    def test_every_reason_is_given_at_once(self, cal, patient):
        book(cal, patient, at(12, 30), minutes=30)
        refused = refusal(cal, second_patient(cal), at(12, 45))
        assert refused.codes == ["practitioner_not_working", "practitioner_busy"]

    def test_the_database_conflict_is_translated_into_the_same_refusal(
        self, cal, patient, monkeypatch
    ):
        """A request that raced past both checks meets the exclusion constraint (PostgreSQL
        only: SQLite's guarantee is the serialised check itself, so the SQLite branch shows
        that the check runs inside the IMMEDIATE transaction)."""
        book(cal, patient, at(10), minutes=45)
        if connection.vendor == "postgresql":
            from mesoclinic.scheduling import actions

            real = actions._overlap_refusals
            calls = []

            def blind_first_time(clinic: Any, appointments: Any) -> Any:
                calls.append(1)
                return [] if len(calls) == 1 else real(clinic, appointments)

            monkeypatch.setattr(actions, "_overlap_refusals", blind_first_time)
            monkeypatch.setattr(Appointment, "overlapping", lambda self: Appointment.objects.none())
            refused = refusal(cal, second_patient(cal), at(10, 30))
            assert isinstance(refused.__cause__, IntegrityError)
            assert refused.codes == ["practitioner_busy"]
            assert str(refused) == "Maria Silva already has a session 10:00–10:45 on Tue 1 Dec."
        else:
            assert connection.settings_dict["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
            refused = refusal(cal, second_patient(cal), at(10, 30))
            assert refused.codes == ["practitioner_busy"]
        assert Appointment.objects.count() == 1


class CancellationTests:
    def test_a_cancelled_slot_can_be_booked_again(self, cal, patient):
        first = book(cal, patient, at(10))
        cancelled = do_cancel(first, user=cal.front_desk, reason="Patient called", via="web")
        assert cancelled.status == Appointment.Status.CANCELLED
        assert cancelled.cancelled_by == cal.front_desk and cancelled.cancelled_at == NOW
        assert cancelled.cancel_reason == "Patient called"
        event = AuditEvent.objects.filter(action=AuditEvent.Action.UPDATE).get()
        assert event.detail == {
            "status": "cancelled",
            "previous": "booked",
            "reason": "Patient called",
        }
        again = book(cal, second_patient(cal), at(10))
        assert again.status == Appointment.Status.BOOKED
        # Both are on the calendar's record; only one holds the slot.
        assert Appointment.objects.filter(starts_at=at(10)).count() == 2

    def test_a_cancelled_or_finished_appointment_cannot_be_cancelled_again(self, cal, patient):
        first = book(cal, patient, at(10))
        do_cancel(first, user=cal.front_desk)
        with pytest.raises(Exception, match="cancelled appointment cannot be cancelled"):
            do_cancel(first, user=cal.front_desk)

    def test_a_no_show_is_recorded_once_the_visit_has_begun_and_frees_the_slot(
        self, cal, patient, now
    ):
        first = book(cal, patient, at(10))
        with pytest.raises(Exception, match="not begun"):
            do_mark_no_show(first, user=cal.front_desk)
        now.move_to(at(10, 20))
        missed = do_mark_no_show(first, user=cal.front_desk)
        assert missed.status == Appointment.Status.NO_SHOW
        assert missed.no_show_by == cal.front_desk and missed.no_show_at == at(10, 20)
        assert AuditEvent.objects.filter(
            action=AuditEvent.Action.UPDATE, detail__status="no_show"
        ).exists()
        # The rest of the slot can be given to someone else.
        book(cal, second_patient(cal), at(10, 25), minutes=5)
        with pytest.raises(Exception, match="no-show appointment cannot be cancelled"):
            do_cancel(missed, user=cal.front_desk)


# Races. Each contender books the same practitioner, room and slot for a different patient, in
# a thread or in a separate process, all released at once; exactly one must win. They run
# against a real database that other processes can open: on PostgreSQL the test database
# itself (transactional_db, so rows are committed and flushed afterwards); on SQLite a file
# database (the test run's own SQLite database is in memory and private to this process),
# migrated once per run and copied for each test.

RACE_SCRIPT = textwrap.dedent(
    """
    import datetime as dt, json, sys, threading
    import django
    django.setup()
    from django.db import connection
    from mesoclinic.accounts.models import Clinic, Membership, PractitionerLicence, User
    from mesoclinic.patients.models import Patient
    from mesoclinic.scheduling.actions import BookingRefused, do_book
    from mesoclinic.scheduling.models import Appointment, OpeningHours, Room, WorkingHours

    mode, args = sys.argv[1], json.loads(sys.argv[2])
    if mode == "seed":
        clinic = Clinic.objects.create(name="Race clinic", timezone="America/New_York")
        user = User.objects.create_user("racer", first_name="Rae", last_name="Cer")
        Membership.objects.create(user=user, clinic=clinic, role="practitioner")
        PractitionerLicence.objects.create(
            user=user, clinic=clinic, kind="physician", number="MD-1", jurisdiction="NY",
            expires_on=dt.date(2999, 1, 1),
        )
        room = Room.objects.create(clinic=clinic, name="Room 1")
        for weekday in range(7):
            OpeningHours.objects.create(
                clinic=clinic, weekday=weekday, opens="08:00", closes="20:00"
            )
            WorkingHours.objects.create(
                clinic=clinic, user=user, weekday=weekday, starts="08:00", ends="20:00"
            )
        patients = [
            Patient.objects.create(
                clinic=clinic, first_name="P", last_name=str(i), date_of_birth=dt.date(1990, 1, 1)
            ).pk
            for i in range(args["patients"])
        ]
        print(json.dumps({"practitioner": user.pk, "room": room.pk, "patients": patients}))
    elif mode == "count":
        active = Appointment.objects.exclude(status__in=Appointment.INACTIVE)
        print(json.dumps(active.count()))
    else:
        practitioner = User.objects.get(pk=args["practitioner"])
        room = Room.objects.get(pk=args["room"])
        patients = list(Patient.objects.select_related("clinic").filter(pk__in=args["patients"]))
        starts_at = dt.datetime.fromisoformat(args["starts_at"])
        connection.close()
        results = []
        barrier = threading.Barrier(len(patients))

        def contend(patient):
            try:
                barrier.wait()
                do_book(
                    patient, kind="session", practitioner=practitioner, room=room,
                    starts_at=starts_at, ends_at=starts_at + dt.timedelta(minutes=45),
                    user=None, via="race",
                )
                results.append("won")
            except BookingRefused as exc:
                results.append("refused:" + ",".join(exc.codes))
            except Exception as exc:
                results.append("error:" + repr(exc))
            finally:
                connection.close()

        threads = [threading.Thread(target=contend, args=(p,)) for p in patients]
        print("ready", flush=True)
        sys.stdin.readline()  # Every process waits here until all are ready.
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print(json.dumps(results), flush=True)
    """
)


def _race(database_url: str, processes: int, threads: int) -> list[str]:
    seeded = run_script(RACE_SCRIPT, database_url, "seed", {"patients": processes * threads})
    day = dt.date.today() + dt.timedelta(days=30)
    starts_at = dt.datetime(day.year, day.month, day.day, 10, tzinfo=NEW_YORK)
    outputs = race_processes(
        RACE_SCRIPT,
        database_url,
        [
            {
                **seeded,
                "patients": seeded["patients"][i * threads : (i + 1) * threads],
                "starts_at": starts_at.isoformat(),
            }
            for i in range(processes)
        ],
    )
    results: list[str] = [r for output in outputs for r in output]
    assert len(results) == processes * threads
    assert run_script(RACE_SCRIPT, database_url, "count", {}) == 1
    return results


class RaceTests:
    def test_exactly_one_of_many_threads_wins_a_slot(self, shared_db):
        results = _race(shared_db, processes=1, threads=8)
        assert results.count("won") == 1, results
        assert sorted(set(results) - {"won"}) == ["refused:practitioner_busy"], results

    def test_exactly_one_of_many_processes_wins_a_slot(self, shared_db):
        results = _race(shared_db, processes=6, threads=1)
        assert results.count("won") == 1, results
        assert sorted(set(results) - {"won"}) == ["refused:practitioner_busy"], results

    def test_exactly_one_of_many_threads_in_many_processes_wins_a_slot(self, shared_db):
        results = _race(shared_db, processes=4, threads=4)
        assert results.count("won") == 1, results
        assert sorted(set(results) - {"won"}) == ["refused:practitioner_busy"], results
