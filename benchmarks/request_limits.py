"""What a too-large request costs the server, and what the JSON-object check costs a normal one.

1. Send a 200 MB photo upload in chunks (no Content-Length) to the API served by waitress on
   loopback, twice: with the ceiling `mesoclinic serve` sets now (the largest body any path
   accepts, four photos), and with waitress's default 1 GB, as before. waitress reads a
   chunked body whole before the application sees it, so the ceiling is what bounds it. Print
   how much of the body the server took in before it answered, and how long that took. (A
   body with a Content-Length is refused unread by the middleware: tests/test_bad_input.py.)
2. Time the API middleware's check that a JSON body is an object, on a 2 KB and a 1 MB body.
"""

from __future__ import annotations

from benchmarks.timing import percentile, time_ms

UPLOAD_BYTES = 200 * 1024 * 1024
RUNS = 200


def _upload(with_limit: bool, upload_bytes: int) -> dict[str, float]:
    """Serve the app with waitress on loopback, with the ceiling `mesoclinic serve` sets now
    (or waitress's default 1 GB, as before), and send it a chunked 200 MB upload until it
    answers."""
    import select
    import socket
    import threading
    import time

    from waitress.server import create_server

    from mesoclinic.cli import server_options
    from mesoclinic.wsgi import application

    ceiling = server_options()["max_request_body_size"] if with_limit else 1024**3
    chunk = b"\xff" * (64 * 1024)
    sent = 0
    server = create_server(application, host="127.0.0.1", port=0, max_request_body_size=ceiling)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    started = time.perf_counter()
    port = server.effective_port  # type: ignore[union-attr]
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(
            b"POST /api/v1/courses/1/photos HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        try:
            while sent < upload_bytes and not select.select([sock], [], [], 0)[0]:
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                sent += len(chunk)
            if sent >= upload_bytes:
                sock.sendall(b"0\r\n\r\n")
            answer = sock.recv(200)
        except ConnectionResetError:
            answer = b"(reset)"
    seconds = time.perf_counter() - started
    time.sleep(0.5)  # let waitress finish the answer before its sockets close
    server.close()
    thread.join(timeout=5)
    return {
        # 0: waitress refused and closed the connection while the body was still coming.
        "status": float(answer.split(b" ")[1]) if answer.startswith(b"HTTP/") else 0.0,
        "ms": seconds * 1000,
        "sent_mb": sent / (1024 * 1024),
    }


def _object_check(size: int, runs: int) -> list[float]:
    import json

    from django.test import RequestFactory

    from mesoclinic.api.middleware import ApiProblemMiddleware

    body = json.dumps({"notes": "x" * size})
    factory = RequestFactory()

    def check() -> None:
        request = factory.post("/api/v1/patients", body, content_type="application/json")
        assert ApiProblemMiddleware._not_an_object(request) is None

    return time_ms(check, runs)


def run(upload_bytes: int = UPLOAD_BYTES, runs: int = RUNS) -> dict[str, float]:
    figures: dict[str, float] = {}
    from django.test.client import Client

    Client(HTTP_HOST="localhost").get("/api/v1/openapi.json")  # load the URLs and the API
    print(f"A {upload_bytes / (1024 * 1024):.0f} MB photo upload to the API:")
    for label, with_limit in (("now", True), ("before", False)):
        result = _upload(with_limit, upload_bytes)
        print(
            f"  {label:7} answered {int(result['status']) or 'by closing':>10} after "
            f"{result['ms']:8.1f} ms, "
            f"having taken {result['sent_mb']:6.1f} MB of the body"
        )
        figures[f"upload_{label}_ms"] = result["ms"]
        figures[f"upload_{label}_taken_mb"] = result["sent_mb"]
    print("The check that a JSON body is an object:")
    for size in (2 * 1024, 1_000_000):
        samples = _object_check(size, runs)
        p50, p95 = percentile(samples, 0.5), percentile(samples, 0.95)
        print(f"  {size // 1024:5} KB body  p50 {p50:.3f} ms  p95 {p95:.3f} ms")
        figures[f"object_check_{size // 1024}k_p95_ms"] = p95
    return figures
