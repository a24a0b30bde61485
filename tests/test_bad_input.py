"""Bad input that used to escape as a 500, an HTML page or a stored value: each is now a
problem+json answer that names the field and the reason."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import pkgutil
import select
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django import forms
from django.test import Client, RequestFactory, override_settings

import mesoclinic
from mesoclinic.api.body_limit import MULTIPART_ENVELOPE_BYTES
from mesoclinic.api.schemas import MAX_ID
from mesoclinic.patients.models import Patient
from mesoclinic.safety.models import SurveillanceRun
from mesoclinic.web.forms import PatientForm
from tests.conftest import Api, Scene, World, api_for, error_fields, problem_of

PATIENT = {"first_name": "Ana", "last_name": "Lopez", "date_of_birth": "1990-05-17"}


class Unreadable(io.RawIOBase):
    """A request body that fails the test if anything reads it."""

    def read(self, size: int = -1) -> bytes:
        raise AssertionError("the body was read")

    readinto = read  # type: ignore[assignment]


def post_claiming(api: Api, path: str, length: int, content_type: str) -> Any:
    """POST whose Content-Length claims `length` bytes and whose body may not be read."""
    api.client.raise_request_exception = False
    return api.client.generic(
        "POST",
        path,
        b"",
        content_type=content_type,
        headers=api._headers(),
        CONTENT_LENGTH=str(length),
        **{"wsgi.input": Unreadable()},
    )


class HugeNumberTests:
    def test_an_id_in_a_query_above_64_bits_is_a_422_naming_it(self, scene: Scene) -> None:
        api = api_for(scene.world.manager)
        api.client.raise_request_exception = False
        r = api.get("/adverse-events", patient=2**64)
        assert error_fields(r) == {"patient"}

    def test_every_query_id_is_bounded(self, scene: Scene) -> None:
        api = api_for(scene.world.manager)
        api.client.raise_request_exception = False
        week = {"start": "2030-01-01T00:00:00Z", "end": "2030-01-08T00:00:00Z"}
        for path, params, field in [
            ("/adverse-events", {"course": MAX_ID + 1}, "course"),
            ("/appointments", {**week, "patient": 2**64}, "patient"),
            ("/appointments", {**week, "practitioner": 2**64}, "practitioner"),
            ("/calendar/next-free", {"practitioner": 2**70}, "practitioner"),
        ]:
            assert error_fields(api.get(path, **params)) == {field}, path

    def test_an_overflow_anywhere_is_a_422_naming_the_parameter(self, scene: Scene) -> None:
        """The last line: a query that overflows the database driver is answered as input."""
        from mesoclinic.api.problems import _parameters, _too_large

        request = RequestFactory().get("/api/v1/x", {"minutes": str(2**64), "q": "abc"})
        request.resolver_match = None
        assert [name for name, value in _parameters(request) if _too_large(value)] == ["minutes"]


class BodySizeTests:
    def test_a_json_body_over_the_limit_is_refused_unread_with_413(self, world: World) -> None:
        api = api_for(world.manager)
        with override_settings(API_MAX_BODY_BYTES=1000):
            r = post_claiming(api, "/api/v1/patients", 1001, "application/json")
        problem = problem_of(r, 413)
        assert problem["limit"] == 1000
        assert problem["errors"][0]["field"] == "body"
        assert "at most" in problem["detail"]

    def test_a_photo_may_be_larger_than_a_json_body_but_not_without_limit(
        self, scene: Scene
    ) -> None:
        api = api_for(scene.world.manager)
        path = f"/api/v1/courses/{scene.course['id']}/photos"
        with override_settings(API_MAX_BODY_BYTES=1000, PHOTO_MAX_BYTES=5000):
            refused = post_claiming(
                api, path, 5000 + MULTIPART_ENVELOPE_BYTES + 1, "multipart/form-data; boundary=x"
            )
            # Within the photo limit, the body is read: here it is empty, so the upload is
            # refused for what it lacks, not for its size.
            api.client.raise_request_exception = False
            small = api.client.post(
                path, {"area": "thighs", "view": "front"}, headers=api._headers()
            )
        assert problem_of(refused, 413)["errors"][0]["field"] == "image"
        assert small.status_code == 422

    def test_a_web_photo_upload_over_the_limit_is_refused_unread(self, scene: Scene) -> None:
        client = Client(raise_request_exception=False)
        client.force_login(scene.world.manager)
        with override_settings(PHOTO_MAX_BYTES=5000):
            r = client.generic(
                "POST",
                f"/courses/{scene.course['id']}/photos/",
                b"",
                content_type="multipart/form-data; boundary=x",
                CONTENT_LENGTH=str(4 * 5000 + MULTIPART_ENVELOPE_BYTES + 1),
                **{"wsgi.input": Unreadable()},
            )
        assert r.status_code == 413
        assert "at most" in r.content.decode()

    def test_a_large_web_form_is_refused_before_it_is_read(self, world: World) -> None:
        client = Client(raise_request_exception=False)
        client.force_login(world.manager)
        with override_settings(API_MAX_BODY_BYTES=1000):
            r = client.generic(
                "POST",
                "/patients/new/",
                b"",
                content_type="application/x-www-form-urlencoded",
                CONTENT_LENGTH="1001",
                **{"wsgi.input": Unreadable()},
            )
        assert r.status_code == 413


@pytest.fixture
def live_server_url(world: World) -> Iterator[str]:
    """mesoclinic served by waitress on loopback, configured as `mesoclinic serve` does."""
    from waitress.server import create_server

    from mesoclinic.api.body_limit import largest_body
    from mesoclinic.wsgi import application

    with override_settings(API_MAX_BODY_BYTES=1000, PHOTO_MAX_BYTES=1000):
        server = create_server(
            application, host="127.0.0.1", port=0, max_request_body_size=largest_body()
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            yield f"127.0.0.1:{server.effective_port}"  # type: ignore[union-attr]
        finally:
            server.close()
            thread.join(timeout=5)


def send_chunked(address: str, path: str, size: int) -> bytes:
    """POST a JSON body of about `size` bytes in chunks, with no Content-Length; the raw
    answer."""
    host, port = address.split(":")
    body = b'{"first_name": "' + b"A" * size + b'"}'
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n".encode()
        )
        for start in range(0, len(body), 512):
            chunk = body[start : start + 512]
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            if select.select([sock], [], [], 0)[0]:
                break  # the server has answered before the end of the body
        else:
            sock.sendall(b"0\r\n\r\n")
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while data := sock.recv(65536):
                answer += data
    return answer


@pytest.mark.django_db(transaction=True)
class ChunkedBodyTests:
    def test_a_chunked_body_over_the_limit_is_refused_with_413(self, live_server_url: str) -> None:
        answer = send_chunked(live_server_url, "/api/v1/patients", 200_000)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]

    def test_a_chunked_json_body_just_over_its_limit_is_a_problem(
        self, live_server_url: str
    ) -> None:
        # Under the server's own ceiling (the photo limit) but over the JSON limit: waitress
        # passes the length it counted, and the API answers in problem+json.
        answer = send_chunked(live_server_url, "/api/v1/patients", 2000)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413"), head
        assert b"application/problem+json" in head
        assert b'"limit": 1000' in body


class StrictDateTests:
    @pytest.mark.parametrize("value", [0, 19900517, 1.5, True, None, [1990, 5, 17]])
    def test_a_date_of_birth_that_is_not_text_is_refused(self, world: World, value: Any) -> None:
        api = api_for(world.manager)
        r = api.post("/patients", {**PATIENT, "date_of_birth": value})
        assert error_fields(r) == {"date_of_birth"}
        assert not Patient.objects.filter(last_name="Lopez").exists()

    def test_the_answer_says_to_write_the_date_as_text(self, world: World) -> None:
        r = api_for(world.manager).post("/patients", {**PATIENT, "date_of_birth": 0})
        assert "must be a date written as text, e.g. 1990-05-17" in problem_of(r, 422)["detail"]

    def test_a_time_that_is_a_number_is_refused(self, scene: Scene) -> None:
        api = api_for(scene.world.manager)
        r = api.post(f"/side-effects/{scene.side_effect['id']}/resolve", {"resolved_at": 0})
        assert error_fields(r) == {"resolved_at"}
        assert "with a time zone offset" in problem_of(r, 422)["detail"]

    def test_a_date_as_text_still_works(self, world: World) -> None:
        r = api_for(world.manager).post("/patients", PATIENT)
        assert r.status_code == 201, r.content
        assert r.json()["date_of_birth"] == "1990-05-17"


class NotAnObjectTests:
    @pytest.mark.parametrize("body", ["[]", "[{}]", "0", "null", '"run"', "true"])
    def test_a_body_that_is_not_an_object_runs_no_surveillance(
        self, world: World, body: str
    ) -> None:
        r = api_for(world.manager).post("/safety/surveil", raw=body)
        problem = problem_of(r, 422)
        assert problem["errors"] == [
            {"field": "body", "message": "must be a JSON object, e.g. {}."}
        ]
        assert not SurveillanceRun.objects.exists()

    def test_an_object_still_runs_it(self, world: World) -> None:
        r = api_for(world.manager).post("/safety/surveil", {})
        assert r.status_code == 200, r.content
        assert SurveillanceRun.objects.count() == 1

    def test_an_endpoint_without_a_body_refuses_a_body_that_is_not_an_object(
        self, scene: Scene
    ) -> None:
        api = api_for(scene.world.manager)
        r = api.post(f"/appointments/{scene.appointment}/no-show", raw="[1, 2]")
        assert error_fields(r) == {"body"}

    def test_a_body_that_is_not_json_is_a_400_naming_the_body(self, scene: Scene) -> None:
        api = api_for(scene.world.manager)
        r = api.post(f"/appointments/{scene.appointment}/no-show", raw="{nope")
        assert problem_of(r, 400)["errors"][0]["field"] == "body"


class TextLengthTests:
    def test_a_2_mb_address_is_refused_by_the_api(self, world: World) -> None:
        r = api_for(world.manager).post("/patients", {**PATIENT, "address": "x" * 501})
        assert error_fields(r) == {"address"}
        assert not Patient.objects.exists()

    def test_a_long_address_is_refused_by_the_web_form(self) -> None:
        form = PatientForm(data={**PATIENT, "sex": "unknown", "address": "x" * 501})
        assert not form.is_valid()
        assert "address" in form.errors
        assert "at most 500 characters" in form.errors["address"][0]

    @pytest.mark.parametrize(
        ("path", "body", "field"),
        [
            ("/courses/{course}/stop", {"reason": "x" * 2001}, "reason"),
            ("/follow-ups/{follow_up}/close", {"outcome": "x" * 5001}, "outcome"),
            ("/lots/{lot}/recall", {"reason": "x" * 2001}, "reason"),
            (
                "/sessions/{session}/side-effects",
                {
                    "kind": "swelling",
                    "onset_at": "2020-01-01T00:00:00Z",
                    "grade": 1,
                    "description": "x" * 5001,
                },
                "description",
            ),
        ],
    )
    def test_every_free_text_is_bounded(
        self, scene: Scene, path: str, body: dict[str, Any], field: str
    ) -> None:
        r = api_for(scene.world.manager).post(path.format(**scene.ids), body)
        assert error_fields(r) == {field}

    def test_every_text_field_of_every_form_has_a_maximum_length(self) -> None:
        """Walks every form class of the product (web pages and admin), so a new text field
        without a limit fails here. JSON fields (the admin's protocol document) are bounded by
        the body limit instead."""
        unbounded = []
        for module_info in pkgutil.walk_packages(mesoclinic.__path__, "mesoclinic."):
            if ".migrations" in module_info.name:
                continue
            module = importlib.import_module(module_info.name)
            for name, cls in inspect.getmembers(module, inspect.isclass):
                if not issubclass(cls, forms.BaseForm) or cls.__module__ != module.__name__:
                    continue
                for field_name, field in cls.base_fields.items():  # type: ignore[attr-defined]
                    if (
                        isinstance(field, forms.CharField)
                        and not isinstance(field, forms.JSONField)
                        and field.max_length is None
                    ):
                        unbounded.append(f"{module.__name__}.{name}.{field_name}")
        assert unbounded == []
