"""No double booking when requests race: parallel HTTP requests through the API and the web
app, from threads in one process and in several processes, each thread with its own client and
database connection, on SQLite and on PostgreSQL.

- A patient is never in two visits at once: four practitioners booking the same patient at the
  same moment give exactly one 201; the others are refused because the patient is busy.
- A course is booked once: parallel "book the course" requests (the API's and the web app's,
  with different practitioners and start dates) write exactly one series of 16 visits.
- A completed course gets one maintenance visit however many requests ask at once.

Like the slot races of tests/test_scheduling.py, they run against a database that separate
processes can open (the `shared_db` fixture): the test database on PostgreSQL, a migrated
file on SQLite.
"""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

from mesoclinic.patients.models import Patient
from mesoclinic.scheduling import actions
from mesoclinic.scheduling.actions import BookingRefused, do_book, exclusion_code
from mesoclinic.scheduling.models import Appointment, AppointmentOverlap
from tests.scheduling_fixtures import NEW_YORK, at, race_processes, run_script

CHILD = [sys.executable, "-m", "tests.booking_race_child"]
API = "/api/v1"


def _race(database_url: str, batches: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Send each batch from its own process, one thread per request, all released at once;
    the responses in the order of the requests."""
    outputs = race_processes(CHILD, database_url, [{"requests": batch} for batch in batches])
    results: list[dict[str, Any]] = [r for output in outputs for r in output]
    for r in results:
        assert r["status"] not in (0, 500), r
    return results


def _split(requests: list[dict[str, Any]], processes: int) -> list[list[dict[str, Any]]]:
    return [requests[i::processes] for i in range(processes)]


def _weekday_ahead(days: int, weekday: int) -> dt.date:
    """The first `weekday` at least `days` from today in New York."""
    day = dt.datetime.now(NEW_YORK).date() + dt.timedelta(days=days)
    return day + dt.timedelta(days=(weekday - day.weekday()) % 7)


def _reasons(result: dict[str, Any]) -> list[str]:
    assert result["status"] == 409, result
    problem = result["json"]
    assert problem["type"] == "/api/v1/problems/booking-refused", problem
    return [r["code"] for r in problem["reasons"]]


class PatientDoubleBookingTests:
    def _book_the_patient_with_everyone(
        self, shared_db: str, processes: int
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        seeded = run_script(CHILD, shared_db, "seed", {})
        day = _weekday_ahead(7, 1)  # a Tuesday: everyone works 09:00–13:00
        starts_at = dt.datetime.combine(day, dt.time(10), tzinfo=NEW_YORK)
        requests = [
            {
                "method": "POST",
                "path": f"{API}/appointments",
                "token": seeded["tokens"][str(practitioner)],
                "body": {
                    "patient": seeded["patient"],
                    "kind": "session",
                    "practitioner": practitioner,
                    "starts_at": starts_at.isoformat(),
                    "ends_at": (starts_at + dt.timedelta(minutes=45)).isoformat(),
                },
            }
            for practitioner in seeded["practitioners"]
        ]
        return seeded, _race(shared_db, _split(requests, processes))

    def _assert_one_booking(self, shared_db: str, seeded: dict[str, Any], results: Any) -> None:
        assert [r["status"] for r in results].count(201) == 1, results
        for lost in (r for r in results if r["status"] != 201):
            assert _reasons(lost) == ["patient_busy"], lost
            assert lost["json"]["detail"].startswith("Ana Lopez already has a session 10:00"), lost
        assert run_script(CHILD, shared_db, "count", seeded)["patient"] == 1

    def test_it_books_a_patient_with_only_one_of_four_practitioners_racing_in_threads(
        self, shared_db
    ):
        seeded, results = self._book_the_patient_with_everyone(shared_db, processes=1)
        self._assert_one_booking(shared_db, seeded, results)

    def test_it_books_a_patient_with_only_one_of_four_practitioners_racing_in_processes(
        self, shared_db
    ):
        seeded, results = self._book_the_patient_with_everyone(shared_db, processes=2)
        self._assert_one_booking(shared_db, seeded, results)


class CourseSeriesRaceTests:
    def _contenders(self, seeded: dict[str, Any]) -> list[dict[str, Any]]:
        """Four front-desk requests to book the course, each with another practitioner and
        another first day, so that no two series would clash on a practitioner or a time."""
        first = dt.datetime.now(NEW_YORK).date() + dt.timedelta(days=1)
        return [
            {
                "method": "POST",
                "path": f"{API}/courses/{seeded['course']}/booking",
                "token": seeded["tokens"][str(seeded["front_desk"])],
                "body": {
                    "practitioner": practitioner,
                    "not_before": dt.datetime.combine(
                        first + dt.timedelta(days=i), dt.time(0), tzinfo=NEW_YORK
                    ).isoformat(),
                },
            }
            for i, practitioner in enumerate(seeded["practitioners"])
        ]

    def _assert_one_series(self, shared_db: str, seeded: dict[str, Any], results: Any) -> None:
        won = [r for r in results if r["status"] == 201]
        assert len(won) == 1, [r["status"] for r in results]
        assert len(won[0]["json"]["appointments"]) == 16
        for lost in (r for r in results if r["status"] != 201):
            assert _reasons(lost) == ["already_booked"], lost
            assert lost["json"]["detail"] == (
                "Every visit of this course is already booked or done."
            ), lost
        assert run_script(CHILD, shared_db, "count", seeded)["course"] == 16

    def test_parallel_api_bookings_of_a_course_write_one_series_from_threads(self, shared_db):
        seeded = run_script(CHILD, shared_db, "seed", {})
        results = _race(shared_db, [self._contenders(seeded)])
        self._assert_one_series(shared_db, seeded, results)

    def test_parallel_api_bookings_of_a_course_write_one_series_from_processes(self, shared_db):
        seeded = run_script(CHILD, shared_db, "seed", {})
        results = _race(shared_db, _split(self._contenders(seeded), 2))
        self._assert_one_series(shared_db, seeded, results)

    def test_the_web_apps_book_the_course_writes_one_series(self, shared_db):
        """The chart's "Book the course" button pressed on three screens at once: one books
        and returns to the chart; the others show the page again with the reason."""
        seeded = run_script(CHILD, shared_db, "seed", {})
        first = dt.datetime.now(NEW_YORK).date() + dt.timedelta(days=1)
        requests = [
            {
                "path": f"/courses/{seeded['course']}/booking/",
                "login": seeded["front_desk"],
                "body": {
                    "practitioner": practitioner,
                    "not_before": (first + dt.timedelta(days=i)).isoformat(),
                    "book": "",
                },
            }
            for i, practitioner in enumerate(seeded["practitioners"][:3])
        ]
        results = _race(shared_db, [requests])
        assert sorted(r["status"] for r in results) == [200, 200, 302], results
        for shown in (r for r in results if r["status"] == 200):
            assert "Every visit of this course is already booked or done." in shown["text"]
        assert run_script(CHILD, shared_db, "count", seeded)["course"] == 16

    def test_parallel_requests_book_one_maintenance_visit(self, shared_db):
        seeded = run_script(CHILD, shared_db, "seed", {})
        token = seeded["tokens"][str(seeded["front_desk"])]
        request = {
            "method": "POST",
            "path": f"{API}/courses/{seeded['completed_course']}/maintenance",
            "token": token,
            "body": {},
        }
        results = _race(shared_db, [[request] * 4])
        assert sorted(r["status"] for r in results) == [201, 409, 409, 409], results
        for lost in (r for r in results if r["status"] == 409):
            assert _reasons(lost) == ["already_booked"], lost
            assert lost["json"]["detail"] == "A maintenance visit is already booked.", lost
        assert run_script(CHILD, shared_db, "count", seeded)["maintenance"] == 1


class PatientOverlapConstraintTests:
    def test_the_database_refuses_a_patient_in_two_visits_at_once(self, cal, patient):
        """Whatever writes the row: PostgreSQL's exclusion constraint refuses it even from
        bulk_create, which skips save(); on SQLite save() re-checks inside its IMMEDIATE
        transaction. Another patient, or a cancelled visit, at the same time is fine."""

        def visit(**kw: Any) -> Appointment:
            fields: dict[str, Any] = {
                "clinic": cal.clinic,
                "patient": patient,
                "kind": "session",
                "starts_at": at(10),
                "ends_at": at(10, 45),
            }
            return Appointment(**(fields | kw))

        visit(practitioner=cal.practitioner).save()
        if connection.vendor == "postgresql":
            with pytest.raises(IntegrityError) as caught, transaction.atomic():
                Appointment.objects.bulk_create(
                    [visit(practitioner=cal.manager, starts_at=at(10, 30), ends_at=at(11))]
                )
            assert exclusion_code(caught.value) == "patient_busy"
        else:
            with pytest.raises(AppointmentOverlap):
                visit(practitioner=cal.manager, starts_at=at(10, 30), ends_at=at(11)).save()
        other = Patient.objects.create(
            clinic=cal.clinic, first_name="Bea", last_name="Cruz", date_of_birth=dt.date(1985, 1, 2)
        )
        visit(practitioner=cal.manager, patient=other).save()
        visit(practitioner=cal.manager, status=Appointment.Status.CANCELLED).save()
        visit(practitioner=cal.manager, starts_at=at(10, 45), ends_at=at(11, 30)).save()
        assert Appointment.objects.filter(patient=patient).count() == 3

    def test_a_booking_that_races_past_the_check_is_refused_in_words(
        self, cal, patient, monkeypatch
    ):
        """The check is blinded, as when another request commits between it and the insert:
        PostgreSQL's constraint refuses the row, and the refusal names the visit that won."""
        do_book(
            patient,
            kind="session",
            practitioner=cal.practitioner,
            starts_at=at(10),
            ends_at=at(10, 45),
            user=cal.front_desk,
        )
        if connection.vendor == "postgresql":
            real = actions._overlap_refusals
            calls = []

            def blind_first_time(clinic: Any, appointments: Any) -> Any:
                calls.append(1)
                return [] if len(calls) == 1 else real(clinic, appointments)

            monkeypatch.setattr(actions, "_overlap_refusals", blind_first_time)
        with pytest.raises(BookingRefused) as caught:
            do_book(
                patient,
                kind="review",
                practitioner=cal.manager,
                starts_at=at(10, 30),
                ends_at=at(11),
                user=cal.front_desk,
            )
        if connection.vendor == "postgresql":
            assert isinstance(caught.value.__cause__, IntegrityError)
        assert caught.value.codes == ["patient_busy"]
        assert str(caught.value) == (
            "Ana Lopez already has a session 10:00–10:45 on Tue 1 Dec with Maria Silva."
        )
        assert Appointment.objects.count() == 1


class PatientOverlapMigrationTests:
    @pytest.mark.django_db(transaction=True)
    def test_the_migration_names_the_visits_of_a_patient_already_booked_twice(self, world):
        """Before the constraint, racing requests could leave a patient in two visits at once.
        PostgreSQL would refuse the constraint with a bare error; the migration instead says
        which visits clash and what to do, and leaves them for the clinic to choose."""
        if connection.vendor != "postgresql":
            pytest.skip("SQLite has no exclusion constraint to create.")
        executor = MigrationExecutor(connection)
        executor.migrate([BEFORE])
        # The model as it was at BEFORE: the current one has columns added by later migrations.
        then = executor.loader.project_state([BEFORE]).apps.get_model("scheduling", "Appointment")
        patient = Patient.objects.create(
            clinic=world.clinic,
            first_name="Ana",
            last_name="Lopez",
            date_of_birth=dt.date(1990, 1, 1),
        )
        starts_at = dt.datetime(2030, 1, 8, 15, tzinfo=dt.UTC)
        first, second = then.objects.bulk_create(
            then(
                clinic_id=world.clinic.pk,
                patient_id=patient.pk,
                kind="session",
                practitioner_id=practitioner.pk,
                starts_at=starts_at,
                ends_at=starts_at + dt.timedelta(minutes=45),
            )
            for practitioner in (world.practitioner, world.manager)
        )
        try:
            executor = MigrationExecutor(connection)
            with pytest.raises(RuntimeError) as caught:
                executor.migrate([AFTER])
            assert str(caught.value) == (
                "These patients are booked into two visits at the same time. Cancel or move "
                "one visit of each pair, then run the migration again:\n"
                f"patient {patient.pk}: appointment {first.pk} at 2030-01-08 15:00 UTC and "
                f"appointment {second.pk} at 2030-01-08 15:00 UTC"
            )
            then.objects.filter(pk=second.pk).update(status="cancelled")
            executor = MigrationExecutor(connection)
            executor.migrate([AFTER])
            assert "appointment_no_patient_overlap" in _constraints()
        finally:
            then.objects.all().delete()
            executor = MigrationExecutor(connection)
            executor.migrate(executor.loader.graph.leaf_nodes())


BEFORE = ("scheduling", "0002_calendar_feed")
AFTER = ("scheduling", "0003_no_patient_overlap")


def _constraints() -> set[str]:
    with connection.cursor() as cursor:
        return set(connection.introspection.get_constraints(cursor, Appointment._meta.db_table))
