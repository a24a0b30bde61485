"""Idempotency keys: a creating API request retried with the same Idempotency-Key header gets
the first answer again, and the operation runs once, even when the copies arrive in parallel."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import textwrap
from typing import Any

import pytest
import time_machine
from django.test import Client

from mesoclinic.api import idempotency
from mesoclinic.api.models import IdempotencyRecord
from mesoclinic.courses.models import Course
from mesoclinic.outcomes.models import Photo
from mesoclinic.patients.models import Patient
from mesoclinic.scheduling.models import Appointment
from tests.conftest import Api, World, api_for, problem_of
from tests.scheduling_fixtures import ROOT, process_env, race_processes, run_script
from tests.test_photos import cellulite_course, image_file, noisy_jpeg

# The same patient is registered more than once on purpose here, so the duplicate warning
# (tests/test_patient_record.py) is passed over, as a user who means it does.
PATIENT = {
    "first_name": "Ana",
    "last_name": "Lopez",
    "date_of_birth": "1990-05-17",
    "allow_duplicate": True,
}


def post(api: Api, path: str, body: Any, key: str | None) -> Any:
    headers = {"Authorization": f"Bearer {api.token}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return api.client.post(
        f"/api/v1{path}", json.dumps(body), content_type="application/json", headers=headers
    )


class IdempotencyTests:
    def test_a_retry_gets_the_first_answer_and_creates_no_second_patient(self, world: World):
        api = api_for(world.front_desk)
        first = post(api, "/patients", PATIENT, key="create-ana-1")
        assert first.status_code == 201
        again = post(api, "/patients", PATIENT, key="create-ana-1")
        assert again.status_code == 201
        assert again.content == first.content
        assert again["Content-Type"] == first["Content-Type"]
        assert again["Idempotent-Replayed"] == "true"
        assert not first.has_header("Idempotent-Replayed")
        assert Patient.objects.filter(clinic=world.clinic, last_name="Lopez").count() == 1
        assert IdempotencyRecord.objects.count() == 1

    def test_a_retry_from_another_token_of_the_same_user_is_still_the_same_request(
        self, world: World
    ):
        first = post(api_for(world.front_desk), "/patients", PATIENT, key="k")
        again = post(api_for(world.front_desk), "/patients", PATIENT, key="k")
        assert again.content == first.content
        assert Patient.objects.filter(last_name="Lopez").count() == 1

    def test_without_the_header_each_request_creates(self, world: World):
        api = api_for(world.front_desk)
        assert post(api, "/patients", PATIENT, key=None).status_code == 201
        assert post(api, "/patients", PATIENT, key=None).status_code == 201
        assert Patient.objects.filter(last_name="Lopez").count() == 2
        assert not IdempotencyRecord.objects.exists()

    def test_it_refuses_a_key_reused_with_a_different_body(self, world: World):
        api = api_for(world.front_desk)
        assert post(api, "/patients", PATIENT, key="k").status_code == 201
        other = post(api, "/patients", {**PATIENT, "first_name": "Bea"}, key="k")
        body = problem_of(other, 422)
        assert body["errors"][0]["field"] == "Idempotency-Key"
        assert "different request" in body["detail"]
        assert Patient.objects.filter(last_name="Lopez").count() == 1

    def test_it_refuses_a_key_reused_on_another_address(self, world: World, patient: Patient):
        api = api_for(world.front_desk)
        assert post(api, "/patients", PATIENT, key="k").status_code == 201
        allergy = {"ingredient": "lidocaine", "reaction": "hives"}
        body = problem_of(post(api, f"/patients/{patient.pk}/allergies", allergy, key="k"), 422)
        assert body["errors"][0]["field"] == "Idempotency-Key"

    def test_it_refuses_a_key_that_is_empty_or_too_long(self, world: World):
        api = api_for(world.front_desk)
        for key in ("", "x" * 256):
            body = problem_of(post(api, "/patients", PATIENT, key=key), 422)
            assert body["errors"] == [
                {"field": "Idempotency-Key", "message": "must be 1 to 255 characters long."}
            ]
        assert not Patient.objects.filter(last_name="Lopez").exists()

    def test_two_users_may_use_the_same_key(self, world: World):
        post(api_for(world.front_desk), "/patients", PATIENT, key="k")
        post(api_for(world.manager), "/patients", PATIENT, key="k")
        assert Patient.objects.filter(last_name="Lopez").count() == 2

    def test_a_key_expires_after_a_day(self, world: World):
        with time_machine.travel(dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC), tick=False) as clock:
            post(api_for(world.front_desk), "/patients", PATIENT, key="k")
            clock.shift(dt.timedelta(hours=23, minutes=59))
            # A new token each time: tokens live for less than a day.
            replayed = post(api_for(world.front_desk), "/patients", PATIENT, key="k")
            assert replayed["Idempotent-Replayed"] == "true"
            clock.shift(dt.timedelta(minutes=2))
            fresh = post(api_for(world.front_desk), "/patients", PATIENT, key="k")
            assert fresh.status_code == 201 and not fresh.has_header("Idempotent-Replayed")
        assert Patient.objects.filter(last_name="Lopez").count() == 2
        assert IdempotencyRecord.objects.count() == 1

    def test_purging_deletes_only_expired_keys(self, world: World):
        with time_machine.travel(dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC), tick=False) as clock:
            post(api_for(world.front_desk), "/patients", PATIENT, key="old")
            clock.shift(dt.timedelta(hours=20))
            post(api_for(world.manager), "/patients", PATIENT, key="new")
            clock.shift(dt.timedelta(hours=5))
            assert idempotency.purge_expired() == 1
        assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]

    def test_a_refusal_is_answered_again_too(self, world: World):
        api = api_for(world.front_desk)
        bad = {**PATIENT, "date_of_birth": "not a date"}
        first = post(api, "/patients", bad, key="k")
        assert first.status_code == 422
        again = post(api, "/patients", bad, key="k")
        assert again.content == first.content and again["Idempotent-Replayed"] == "true"

    def test_a_server_error_is_not_kept_and_its_work_is_undone(self, world: World, monkeypatch):
        api = api_for(world.front_desk)
        api.client = Client(raise_request_exception=False)
        real_save = Patient.save

        def save_then_fail(self: Patient, *args: Any, **kwargs: Any) -> None:
            real_save(self, *args, **kwargs)
            raise RuntimeError("the disk went away after the insert")

        monkeypatch.setattr(Patient, "save", save_then_fail)
        assert post(api, "/patients", PATIENT, key="k").status_code == 500
        assert not Patient.objects.filter(last_name="Lopez").exists()
        assert not IdempotencyRecord.objects.exists()
        monkeypatch.setattr(Patient, "save", real_save)
        retried = post(api, "/patients", PATIENT, key="k")
        assert retried.status_code == 201 and not retried.has_header("Idempotent-Replayed")
        assert Patient.objects.filter(last_name="Lopez").count() == 1

    def test_an_unauthenticated_request_runs_nothing_and_keeps_nothing(self, world: World):
        api = Api("not-a-token")
        assert post(api, "/patients", PATIENT, key="k").status_code == 401
        assert not IdempotencyRecord.objects.exists()

    def test_a_retried_course_booking_books_the_course_once(self, cal: World, course: Course):
        api = api_for(cal.front_desk)
        request = {"practitioner": cal.practitioner.pk}
        first = post(api, f"/courses/{course.pk}/booking", request, key="book-course")
        assert first.status_code == 201, first.content
        visits = Appointment.objects.filter(course=course).count()
        assert visits == 16
        again = post(api, f"/courses/{course.pk}/booking", request, key="book-course")
        assert again.status_code == 201 and again.content == first.content
        assert Appointment.objects.filter(course=course).count() == visits

    def test_a_retried_photo_upload_stores_one_photo(
        self, world: World, patient: Patient, settings: Any, tmp_path: Any
    ):
        settings.STORAGES = {
            **settings.STORAGES,
            "clinical_photos": {
                "BACKEND": "django.core.files.storage.FileSystemStorage",
                "OPTIONS": {"location": tmp_path / "photos", "base_url": None},
            },
        }
        course = cellulite_course(world, patient)
        api = api_for(world.practitioner)
        consent = {"purpose": "clinical", "granted": True}
        assert api.post(f"/patients/{patient.pk}/photo-consents", consent).status_code == 201
        # Larger than the in-memory body limit, as a real photo is.
        big = noisy_jpeg(2400, 1800)
        headers = {"Authorization": f"Bearer {api.token}", "Idempotency-Key": "photo-1"}

        def upload(data: bytes) -> Any:
            fields = {"image": image_file(data), "area": "thighs", "view": "front"}
            return api.client.post(f"/api/v1/courses/{course.pk}/photos", fields, headers=headers)

        first = upload(big)
        assert first.status_code == 201, first.content
        again = upload(big)
        assert again.content == first.content and again["Idempotent-Replayed"] == "true"
        assert Photo.objects.filter(course=course).count() == 1
        other = problem_of(upload(noisy_jpeg(800, 600)), 422)
        assert other["errors"][0]["field"] == "Idempotency-Key"


# Parallel copies of one request. They run in threads of separate processes against a database
# those processes can open (see tests/scheduling_fixtures.py, shared_db), through Django's whole
# request handling, middleware included.

PARALLEL_SCRIPT = textwrap.dedent(
    """
    import json, sys, threading
    import django
    django.setup()
    from django.db import connection
    from django.test import Client
    from mesoclinic.accounts.models import Clinic, Membership, User
    from mesoclinic.api.models import ApiToken, IdempotencyRecord
    from mesoclinic.patients.models import Patient

    mode, args = sys.argv[1], json.loads(sys.argv[2])
    if mode == "seed":
        clinic = Clinic.objects.create(name="Parallel clinic", timezone="America/New_York")
        user = User.objects.create_user("desk", first_name="Dee")
        membership = Membership.objects.create(user=user, clinic=clinic, role="front_desk")
        print(json.dumps(ApiToken.issue(user, membership)[1]))
    elif mode == "count":
        print(json.dumps([Patient.objects.count(), IdempotencyRecord.objects.count()]))
    elif mode == "hold":
        # A first request that has claimed the key and is still running.
        from django.db import transaction
        with transaction.atomic():
            IdempotencyRecord.objects.create(
                user=User.objects.get(username="desk"), key=args["key"], fingerprint="f" * 64,
                method="POST", path="/api/v1/patients",
            )
            print("held", flush=True)
            sys.stdin.readline()
            transaction.set_rollback(True)
    else:
        connection.close()
        barrier = threading.Barrier(args["threads"])
        answers = []

        def send():
            try:
                client = Client(raise_request_exception=False)
                barrier.wait()
                r = client.post(
                    "/api/v1/patients", json.dumps(args["body"]),
                    content_type="application/json",
                    headers={"Authorization": "Bearer " + args["token"],
                             "Idempotency-Key": args["key"]},
                )
                answers.append([r.status_code, r.content.decode(), r.get("Retry-After")])
            finally:
                connection.close()

        threads = [threading.Thread(target=send) for _ in range(args["threads"])]
        print("ready", flush=True)
        sys.stdin.readline()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print(json.dumps(answers), flush=True)
    """
)


def _send_in_parallel(
    database_url: str, processes: int, threads: int, token: str | None = None, **env: str
) -> list[list[Any]]:
    token = token or run_script(PARALLEL_SCRIPT, database_url, "seed", {})
    args = {"token": token, "key": "the-same-key", "body": PATIENT, "threads": threads}
    outputs = race_processes(
        PARALLEL_SCRIPT,
        database_url,
        [args] * processes,
        mode="send",
        # Django's test client calls itself "testserver".
        ALLOWED_HOSTS="testserver",
        **env,
    )
    return [answer for answers in outputs for answer in answers]


class ParallelIdempotencyTests:
    @pytest.mark.parametrize(("processes", "threads"), [(1, 6), (4, 2)])
    def test_parallel_copies_of_one_request_create_exactly_one_patient(
        self, shared_db: str, processes: int, threads: int
    ):
        answers = _send_in_parallel(shared_db, processes, threads)
        assert len(answers) == processes * threads
        assert run_script(PARALLEL_SCRIPT, shared_db, "count", {}) == [1, 1], answers
        created = [body for status, body, _ in answers if status == 201]
        # Every copy that did not wait too long got the one patient's answer; one that did
        # got 409 "still being processed", and none got anything else.
        assert created and all(body == created[0] for body in created), answers
        assert all(status in (201, 409) for status, _, _ in answers), answers

    def test_a_copy_that_waits_too_long_is_told_the_first_is_still_running(self, shared_db: str):
        token = run_script(PARALLEL_SCRIPT, shared_db, "seed", {})
        holder = subprocess.Popen(
            [sys.executable, "-c", PARALLEL_SCRIPT, "hold", json.dumps({"key": "the-same-key"})],
            env=process_env(shared_db),
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None and holder.stdin is not None
            assert holder.stdout.readline().strip() == "held", holder.stderr
            [(status, body, retry_after)] = _send_in_parallel(
                shared_db, 1, 1, token=token, IDEMPOTENCY_WAIT_SECONDS="1"
            )
            holder.stdin.write("done\n")
            holder.stdin.flush()
            assert holder.wait(timeout=60) == 0
        finally:
            if holder.poll() is None:
                holder.kill()
        assert status == 409 and retry_after == "1"
        assert "still being processed" in json.loads(body)["detail"]
        # The first request gave up its claim, so the retry runs.
        [(status, _, _)] = _send_in_parallel(shared_db, 1, 1, token=token)
        assert status == 201
        assert run_script(PARALLEL_SCRIPT, shared_db, "count", {}) == [1, 1]
