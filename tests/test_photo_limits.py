"""What one photo upload may cost: the pixel budget read from the header, decoding at the stored
size, the limit on decodes at once, and uploads stopped as they stream in, through Django's
full stack and through waitress on loopback. Memory itself is measured by
`python -m benchmarks photos`, not here."""

from __future__ import annotations

import http.client
import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadhandler import StopUpload
from django.test.client import ClientHandler, RequestFactory
from django.urls import reverse
from PIL import Image, ImageChops

from mesoclinic.api.body_limit import limit_for
from mesoclinic.api.models import ApiToken
from mesoclinic.courses.models import Course
from mesoclinic.outcomes import photo_actions, photos, uploads
from mesoclinic.outcomes.models import Photo
from mesoclinic.patients.models import Patient
from tests.conftest import World, problem_of
from tests.test_photos import (
    api_upload,
    cellulite_course,
    grant,
    image_file,
    jpeg,
    photo_dir,
    png,
    stored_bytes,
)
from tests.test_web import signed_in

__all__ = ["photo_dir"]  # the fixture, used by name

MB = 1024 * 1024
# How far past the limit the parser may read: it reads in chunks of 64 KB, and a little ahead
# to find the boundary between parts.
SLACK = 256 * 1024


def grey_jpeg(width: int, height: int) -> bytes:
    """A large JPEG that is cheap to make (one channel, one colour)."""
    out = io.BytesIO()
    Image.new("L", (width, height), 128).save(out, "JPEG")
    return out.getvalue()


def claiming(data: bytes, width: int, height: int) -> bytes:
    """A JPEG whose frame header (SOF0) claims other dimensions; its pixels are for the old."""
    at = data.index(b"\xff\xc0")
    size = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return data[: at + 5] + size + data[at + 9 :]


@pytest.fixture
def course(world: World, patient: Patient) -> Course:
    return cellulite_course(world, patient)


class PixelBudgetTests:
    def test_it_refuses_the_7000_by_7000_jpeg_by_its_size_and_the_limit(self) -> None:
        with pytest.raises(photos.PhotoError) as caught:
            photos.prepare(grey_jpeg(7000, 7000))
        assert str(caught.value) == (
            "is 7000 × 7000 pixels (49 megapixels); a photo may have at most 36 megapixels. "
            "Take it with the camera's standard resolution, or make it smaller."
        )

    def test_it_refuses_from_the_header_without_decoding(self) -> None:
        # The headers of an 800 × 600 JPEG claiming 6500 × 6000, with the pixels cut off:
        # decoding would find it damaged (as it does with a claim within the budget), so the
        # budget's refusal shows that only the header was read.
        def headers_claiming(width: int, height: int) -> bytes:
            data = claiming(jpeg(800, 600), width, height)
            return data[: data.index(b"\xff\xda") + 40]

        with pytest.raises(photos.PhotoError, match=r"6500 × 6000 pixels \(39 megapixels\)"):
            photos.prepare(headers_claiming(6500, 6000))
        with pytest.raises(photos.PhotoError, match="damaged or incomplete"):
            photos.prepare(headers_claiming(1600, 1200))

    def test_a_header_cut_short_is_damaged_not_an_error(self) -> None:
        data = jpeg(800, 600)
        with pytest.raises(photos.PhotoError, match="damaged or incomplete"):
            photos.prepare(data[: data.index(b"\xff\xda") + 12])

    def test_the_budget_is_a_setting(self, settings: Any) -> None:
        settings.PHOTO_MAX_PIXELS = 1_000_000
        with pytest.raises(photos.PhotoError, match="at most 1 megapixel\\."):
            photo_actions.prepare(jpeg(1200, 900))
        settings.PHOTO_MAX_PIXELS = 1_100_000
        assert photo_actions.prepare(jpeg(1200, 900)).width == 1200

    def test_a_phone_photo_is_stored_as_taken(self) -> None:
        # 4032 × 3024 is a 12 MP phone's photo: within the stored side, so not resampled.
        prepared = photos.prepare(jpeg(4032, 3024))
        assert (prepared.width, prepared.height) == (4032, 3024)


class StoredSizeTests:
    def test_a_larger_jpeg_is_decoded_at_a_reduced_scale_never_at_full_size(self) -> None:
        limits = photos.Limits(max_pixels=50_000_000, max_side=2000)
        decoded = photos.decode(grey_jpeg(7000, 7000), limits)
        # Half the size is still at least the stored 2000: that is what is decoded.
        assert decoded.image.size == (3500, 3500)
        assert decoded.stored_size == (2000, 2000)
        assert photos.decode(jpeg(3000, 2000), limits).image.size == (3000, 2000)

    def test_it_is_stored_at_the_long_side_limit_with_its_proportions(self) -> None:
        limits = photos.Limits(max_pixels=50_000_000, max_side=2000)
        prepared = photos.prepare(grey_jpeg(7000, 7000), limits)
        assert (prepared.width, prepared.height) == (2000, 2000)
        assert (prepared.format, photos.prepare(png(3000, 1500), limits).width) == ("JPEG", 2000)

    def test_it_is_scaled_a_band_at_a_time_without_seams(self) -> None:
        noise = Image.effect_noise((3000, 2000), 60).convert("RGB")
        whole = noise.resize((1700, 1133), Image.Resampling.LANCZOS)
        banded = photos._scale_down(noise.copy(), (1700, 1133))
        difference = ImageChops.difference(whole, banded).getextrema()
        assert all(most <= 1 for _, most in difference)  # type: ignore[union-attr]

    def test_a_transparent_png_keeps_its_transparency(self) -> None:
        limits = photos.Limits(max_side=2000)
        prepared = photos.prepare(png(3000, 1500, mode="RGBA"), limits)
        with Image.open(io.BytesIO(prepared.data)) as stored:
            assert (stored.mode, stored.size) == ("RGBA", (2000, 1000))

    def test_a_portrait_is_scaled_then_turned_upright(self) -> None:
        # Orientation 6 on a 4000 × 3000 picture: stored upright as 1500 × 2000, left half up.
        limits = photos.Limits(max_side=2000)
        prepared = photos.prepare(jpeg(4000, 3000, orientation=6, gps=True), limits)
        assert (prepared.width, prepared.height) == (1500, 2000)
        with Image.open(io.BytesIO(prepared.data)) as stored:
            red, green, blue = stored.convert("RGB").getpixel((750, 100))  # type: ignore[misc]
            assert red > 200 and blue < 60
        assert photos.metadata_of(prepared.data)["exif"] == {}

    def test_with_a_raised_budget_the_api_stores_the_7000_by_7000_jpeg_at_the_stored_side(
        self, settings: Any, world: World, course: Course, photo_dir: Path
    ) -> None:
        settings.PHOTO_MAX_PIXELS = 50_000_000
        grant(course.patient, world.practitioner)
        response = api_upload(
            world.practitioner,
            course,
            image=image_file(grey_jpeg(7000, 7000)),
            area="thighs",
            view="front",
        )
        assert response.status_code == 201, response.content
        assert (response.json()["width"], response.json()["height"]) == (4096, 4096)
        with Image.open(io.BytesIO(stored_bytes(Photo.objects.get()))) as stored:
            assert stored.size == (4096, 4096)

    def test_by_default_the_api_refuses_it_naming_the_image(
        self, world: World, course: Course, photo_dir: Path
    ) -> None:
        grant(course.patient, world.practitioner)
        response = api_upload(
            world.practitioner,
            course,
            image=image_file(grey_jpeg(7000, 7000)),
            area="thighs",
            view="front",
        )
        body = problem_of(response, 422)
        assert body["errors"][0]["field"] == "image"
        assert "at most 36 megapixels" in body["errors"][0]["message"]
        assert not Photo.objects.exists()


class DecodeSlotsTests:
    def decodes_at_once(self, monkeypatch: pytest.MonkeyPatch, uploads: int) -> tuple[int, int]:
        """Run `uploads` preparations from as many threads; the most that ran at once, and how
        many finished. The real prepare runs, slowed a little so that the threads overlap."""
        real = photos.prepare
        lock = threading.Lock()
        running, most, done = 0, 0, 0

        def watched(data: bytes, limits: photos.Limits = photos.Limits()) -> photos.Prepared:  # noqa: B008
            nonlocal running, most
            with lock:
                running += 1
                most = max(most, running)
            try:
                time.sleep(0.3)
                return real(data, limits)
            finally:
                with lock:
                    running -= 1

        monkeypatch.setattr(photos, "prepare", watched)
        data = jpeg()

        def upload() -> None:
            nonlocal done
            photo_actions.prepare(data)
            with lock:
                done += 1

        threads = [threading.Thread(target=upload) for _ in range(uploads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return most, done

    def test_four_uploads_at_once_decode_one_at_a_time(
        self, settings: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        settings.PHOTO_MAX_CONCURRENT_DECODES = 1
        assert self.decodes_at_once(monkeypatch, 4) == (1, 4)

    def test_the_number_of_decodes_at_once_is_a_setting(
        self, settings: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        settings.PHOTO_MAX_CONCURRENT_DECODES = 2
        assert self.decodes_at_once(monkeypatch, 4) == (2, 4)

    def test_a_file_over_the_byte_limit_is_refused_without_waiting_for_a_slot(
        self, settings: Any
    ) -> None:
        settings.PHOTO_MAX_BYTES = MB
        settings.PHOTO_MAX_CONCURRENT_DECODES = 1
        slots = photo_actions.decode_slots()
        with slots, pytest.raises(photos.PhotoError, match="at most 1.0 MB"):
            photo_actions.prepare(b"\xff\xd8" + b"\0" * MB)


# Uploads stopped as they stream in. The body is a stream that fails the test if it is read
# more than SLACK past the limit.


class Endless(io.RawIOBase):
    """A multipart body: the given text fields, then a file part that never ends."""

    def __init__(self, boundary: str, fields: dict[str, str], file_field: str, limit: int):
        head = "".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
            for k, v in fields.items()
        )
        head += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; '
            'filename="IMG_0001.JPG"\r\nContent-Type: image/jpeg\r\n\r\n'
        )
        self.head = head.encode()
        self.most = len(self.head) + limit + SLACK
        self.sent = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        wanted = len(buffer)
        if self.sent + wanted > self.most:
            raise AssertionError(f"The upload was read past {self.most} bytes.")
        chunk = (
            (self.head[self.sent :] + b"\xff" * wanted)[:wanted]
            if self.sent < len(self.head)
            else b"\xff" * wanted
        )
        buffer[:wanted] = chunk
        self.sent += wanted
        return wanted


def post_stream(path: str, body: Endless, boundary: str, length: int, **extra: Any) -> Any:
    """POST through Django's whole stack (every middleware), declaring `length` bytes."""
    environ = RequestFactory()._base_environ(  # type: ignore[attr-defined]
        PATH_INFO=path,
        REQUEST_METHOD="POST",
        CONTENT_TYPE=f"multipart/form-data; boundary={boundary}",
        CONTENT_LENGTH=str(length),
        **{"wsgi.input": body},
        **extra,
    )
    response = ClientHandler(enforce_csrf_checks=False)(environ)
    response.json = lambda: json.loads(response.content)  # as the test client's responses have
    return response


class StreamedUploadTests:
    def test_the_api_stops_a_200_mb_upload_at_the_limit_with_413_naming_the_image(
        self, settings: Any, world: World, course: Course, photo_dir: Path
    ) -> None:
        settings.PHOTO_MAX_BYTES = MB
        grant(course.patient, world.practitioner)
        _, token = ApiToken.issue(world.practitioner, world.practitioner.memberships.first())
        body = Endless("b0und", {"area": "thighs", "view": "front"}, "image", MB)
        path = f"/api/v1/courses/{course.pk}/photos"
        # It declares as much as the path accepts, so only counting the bytes can stop it.
        response = post_stream(
            path, body, "b0und", limit_for(path, "POST"), HTTP_AUTHORIZATION=f"Bearer {token}"
        )
        problem = problem_of(response, 413)
        assert problem["errors"] == [
            {"field": "image", "message": "is over 1.0 MB; a photo may be at most 1.0 MB."}
        ]
        assert MB < body.sent <= body.most
        assert not Photo.objects.exists()

    def test_the_api_answers_413_for_an_ordinary_upload_over_the_limit(
        self, settings: Any, world: World, course: Course, photo_dir: Path
    ) -> None:
        settings.PHOTO_MAX_BYTES = MB
        grant(course.patient, world.practitioner)
        big = image_file(b"\xff\xd8" + b"\0" * (MB + 1))
        response = api_upload(world.practitioner, course, image=big, area="thighs", view="front")
        assert problem_of(response, 413)["errors"][0]["field"] == "image"

    def test_the_web_form_stops_it_with_an_error_beside_the_view(
        self, settings: Any, world: World, course: Course, photo_dir: Path
    ) -> None:
        settings.PHOTO_MAX_BYTES = MB
        grant(course.patient, world.practitioner)
        client = signed_in(world.practitioner)
        cookie = (
            f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
        )
        body = Endless("b0und", {"area": "thighs"}, "thighs-back", MB)
        path = reverse("web:course_photos", args=[course.pk])
        response = post_stream(path, body, "b0und", limit_for(path, "POST"), HTTP_COOKIE=cookie)
        assert response.status_code == 200
        page = response.content.decode()
        assert "is over 1.0 MB; a photo may be at most 1.0 MB." in page
        assert MB < body.sent <= body.most
        assert not Photo.objects.exists()

    def test_the_web_form_takes_four_views_under_the_limit(
        self, settings: Any, world: World, course: Course, photo_dir: Path
    ) -> None:
        # Each of the four files counts on its own: together they may pass one file's limit.
        settings.PHOTO_MAX_BYTES = 40 * 1024
        grant(course.patient, world.practitioner)
        data = {"area": "thighs"}
        files = {f"thighs-{v}": image_file(jpeg(1000, 800, quality=100)) for v in
                 ("front", "back", "left", "right")}  # fmt: skip
        assert sum(f.size for f in files.values()) > settings.PHOTO_MAX_BYTES
        response = signed_in(world.practitioner).post(
            reverse("web:course_photos", args=[course.pk]), {**data, **files}
        )
        assert response.status_code == 302, response.content.decode()[:2000]
        assert Photo.objects.count() == 4

    def test_a_declared_200_mb_upload_is_refused_before_a_byte_is_read(
        self, settings: Any, world: World, course: Course, photo_dir: Path
    ) -> None:
        settings.PHOTO_MAX_BYTES = MB
        grant(course.patient, world.practitioner)
        _, token = ApiToken.issue(world.practitioner, world.practitioner.memberships.first())
        body = Endless("b0und", {"area": "thighs", "view": "front"}, "image", MB)
        response = post_stream(
            f"/api/v1/courses/{course.pk}/photos",
            body,
            "b0und",
            200 * MB,
            HTTP_AUTHORIZATION=f"Bearer {token}",
        )
        assert problem_of(response, 413)["errors"][0]["field"] == "image"
        assert body.sent == 0
        assert not Photo.objects.exists()


class UploadHandlerTests:
    def test_the_files_of_one_upload_together_may_not_pass_their_number_times_the_limit(
        self, settings: Any
    ) -> None:
        settings.PHOTO_MAX_BYTES = MB
        limit = uploads.PhotoUploadLimit(None, max_files=2)
        chunk = b"x" * (MB * 9 // 10)
        for name in ("thighs-front", "thighs-back"):
            limit.new_file(name, "a.jpg", "image/jpeg", None)
            assert limit.receive_data_chunk(chunk, 0) == chunk
        limit.new_file("thighs-left", "a.jpg", "image/jpeg", None)
        with pytest.raises(StopUpload):
            limit.receive_data_chunk(chunk, 0)
        assert limit.refused == {
            "thighs-left": "takes the photos sent together past their limit of 2.0 MB."
        }


# Through waitress on loopback, as `mesoclinic serve` runs it.


@pytest.fixture
def server(settings: Any) -> Iterator[tuple[str, int]]:
    from waitress.server import create_server

    from mesoclinic.cli import server_options
    from mesoclinic.wsgi import application

    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    settings.PHOTO_MAX_BYTES = MB
    settings.MAX_REQUEST_BYTES = 4 * MB
    served = create_server(application, host="127.0.0.1", port=0, threads=2, **server_options())
    stopping = threading.Event()

    def run() -> None:
        try:
            served.run()
        except OSError:
            # Closing the server under its polling loop ends the loop this way.
            if not stopping.is_set():
                raise

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", served.effective_port  # type: ignore[union-attr]
    finally:
        stopping.set()
        served.close()
        thread.join(timeout=5)


@pytest.mark.django_db(transaction=True)
class ServedUploadTests:
    def test_a_chunked_200_mb_upload_is_refused_at_the_servers_limit(
        self, server: tuple[str, int], world: World, patient: Patient
    ) -> None:
        course = cellulite_course(world, patient)
        sent = 0
        chunk = b"\xff" * (64 * 1024)
        with socket.create_connection(server, timeout=10) as sock:
            sock.sendall(
                f"POST /api/v1/courses/{course.pk}/photos HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Content-Type: multipart/form-data; boundary=b0und\r\n"
                "Transfer-Encoding: chunked\r\n\r\n".encode()
            )
            try:
                while sent < 200 * MB:
                    sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                    sent += len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
            try:
                answer = sock.recv(4096)
            except ConnectionResetError:
                answer = b""
        # Refused once past 4 MB; what was sent beyond is what the sockets' buffers took.
        assert sent < 40 * MB
        if answer:
            assert answer.startswith(b"HTTP/1.1 413")
        assert not Photo.objects.exists()

    def test_a_chunked_upload_within_the_servers_limit_is_stopped_by_the_photo_limit(
        self, server: tuple[str, int], world: World, patient: Patient, photo_dir: Path
    ) -> None:
        course = cellulite_course(world, patient)
        grant(patient, world.practitioner)
        _, token = ApiToken.issue(world.practitioner, world.practitioner.memberships.first())
        head = (
            b'--b0und\r\nContent-Disposition: form-data; name="area"\r\n\r\nthighs\r\n'
            b'--b0und\r\nContent-Disposition: form-data; name="view"\r\n\r\nfront\r\n'
            b'--b0und\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
            b"Content-Type: image/jpeg\r\n\r\n"
        )

        def body() -> Iterator[bytes]:
            yield head
            for _ in range(32):  # 2 MB: over the photo's 1 MB, under the server's 4 MB
                yield b"\xff" * (64 * 1024)
            yield b"\r\n--b0und--\r\n"

        connection = http.client.HTTPConnection(*server, timeout=10)
        connection.request(
            "POST",
            f"/api/v1/courses/{course.pk}/photos",
            body=body(),
            headers={
                "Content-Type": "multipart/form-data; boundary=b0und",
                "Authorization": f"Bearer {token}",
            },
            encode_chunked=True,
        )
        response = connection.getresponse()
        assert response.status == 413
        assert response.getheader("Content-Type") == "application/problem+json"
        assert b'"field": "image"' in response.read()
        connection.close()
        assert not Photo.objects.exists()


def test_the_server_is_told_the_largest_body(settings: Any) -> None:
    from mesoclinic.cli import server_options

    settings.MAX_REQUEST_BYTES = 5 * MB
    assert server_options()["max_request_body_size"] == 5 * MB
