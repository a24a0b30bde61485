"""`mesoclinic serve` refuses a configuration that is not safe for real patients, and starts with
the documented production one. Run as an operator runs it: its own process, a fresh folder, the
embedded database (these tests ignore DATABASE_URL on purpose, as tests/test_cli.py does)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from benchmarks.load import server_pids

BIN = Path(sys.executable).with_name("mesoclinic")

# The same on either database: the PostgreSQL run of .ci/run leaves it out.
pytestmark = pytest.mark.embedded

# A key as `secrets.token_urlsafe(50)` makes one; fixed so a failure is easy to reproduce.
STRONG_KEY = "q3J8v0Zk1mW9xR2bT7nY4cL6pH5sD8fG0aE3uI1oK9jB2vN7xM4zQ6wS5tR8yU1e"

# The production environment of docs/deployment.md, with the mail server on loopback.
PRODUCTION = {
    "SECRET_KEY": STRONG_KEY,
    "ALLOWED_HOSTS": "clinic.example.com,127.0.0.1",
    "CSRF_TRUSTED_ORIGINS": "https://clinic.example.com",
    "SITE_URL": "https://clinic.example.com",
    "BEHIND_TLS_PROXY": "1",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "1",
    "SECURE_HSTS_PRELOAD": "1",
    "EMAIL_URL": "smtp+tls://mesoclinic:secret@127.0.0.1:2525",
    "DEFAULT_FROM_EMAIL": "clinic@clinic.example.com",
}


def environment(data_dir: Path, **env: str) -> dict[str, str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "SECRET_KEY", "DJANGO_SETTINGS_MODULE", "DEBUG"}
        and not k.startswith(("EMAIL_", "SECURE_", "ALLOW_"))
    }
    return {**base, "DATA_DIR": str(data_dir), **env}


def run(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), *args],
        cwd=cwd,
        env=environment(cwd / "data", **env),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="session")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with every migration applied, made once: migrating takes a while. Once for
    the session, not the module: pytest-xdist's --dist loadscope runs this module's classes
    between other modules' tests, so a module-scoped copy was migrated again for each class."""
    folder = tmp_path_factory.mktemp("migrated")
    result = run(folder, "migrate", "--no-input", **PRODUCTION)
    assert result.returncode == 0, result.stderr
    return folder / "data"


@pytest.fixture
def site(tmp_path: Path, migrated: Path) -> Path:
    """A fresh folder holding a copy of the migrated database."""
    shutil.copytree(migrated, tmp_path / "data")
    return tmp_path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@contextlib.contextmanager
def serving(site: Path, command: str, *args: str, **env: str) -> Iterator[int]:
    """`mesoclinic <command>` serving on a free port until the block ends; yields the port once
    /healthz answers."""
    with server_process(site, command, *args, **env) as (port, _):
        yield port


@contextlib.contextmanager
def server_process(
    site: Path, command: str, *args: str, **env: str
) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """`serving`, yielding the server's process too."""
    port = free_port()
    process = subprocess.Popen(
        [str(BIN), command, "--port", str(port), *args],
        cwd=site,
        env=environment(site / "data", **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if "Serving mesoclinic" in line:
                break
        else:
            raise AssertionError(process.stderr.read() if process.stderr else "")
        deadline = time.monotonic() + 30
        while True:
            try:
                get(f"http://127.0.0.1:{port}/healthz")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield port, process
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def started(site: Path) -> Iterator[tuple[Path, int]]:
    """`mesoclinic serve` running with the production environment, until the test ends."""
    with serving(site, "serve", **PRODUCTION) as port:
        yield site, port


class ServeRefusalTests:
    def test_it_refuses_the_default_secret_key(self, site: Path) -> None:
        env = {k: v for k, v in PRODUCTION.items() if k != "SECRET_KEY"}
        result = run(site, "serve", **env)
        assert result.returncode == 2
        assert "SECRET_KEY is not set" in result.stderr
        assert "Set SECRET_KEY to a long random value" in result.stderr

    @pytest.mark.parametrize(
        "key",
        [
            "short-but-random-Xy7",
            "ab" * 40,
            "django-insecure-" + STRONG_KEY,
        ],
        ids=["short", "few-different-characters", "generated-for-a-test-project"],
    )
    def test_it_refuses_a_weak_secret_key(self, site: Path, key: str) -> None:
        result = run(site, "serve", **{**PRODUCTION, "SECRET_KEY": key})
        assert result.returncode == 2
        assert "SECRET_KEY is weak" in result.stderr

    def test_it_refuses_debug(self, site: Path) -> None:
        result = run(site, "serve", **{**PRODUCTION, "DEBUG": "1"})
        assert result.returncode == 2
        assert "DEBUG is on" in result.stderr
        assert "set DEBUG=0" in result.stderr

    def test_it_refuses_the_console_email_backend_unless_asked(self, site: Path) -> None:
        env = {k: v for k, v in PRODUCTION.items() if k != "EMAIL_URL"}
        result = run(site, "serve", **env)
        assert result.returncode == 2
        assert "only be printed to the console" in result.stderr
        assert "Set EMAIL_URL" in result.stderr
        assert "--allow-console-email" in result.stderr
        # Asked for, either way, it serves.
        with serving(site, "serve", "--allow-console-email", **env) as port:
            assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
        with serving(site, "serve", **env, ALLOW_CONSOLE_EMAIL="1") as port:
            assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200

    def test_it_refuses_an_unmigrated_database_naming_the_command(self, tmp_path: Path) -> None:
        result = run(tmp_path, "serve", **PRODUCTION)
        assert result.returncode == 2
        assert "migrations are not applied" in result.stderr
        assert "Run `mesoclinic migrate` first." in result.stderr

    def test_it_names_every_problem_at_once(self, tmp_path: Path) -> None:
        result = run(tmp_path, "serve", DEBUG="1")
        assert result.returncode == 2
        lines = [line for line in result.stderr.splitlines() if line.startswith("- ")]
        assert len(lines) == 4, result.stderr


class ServeTests:
    def test_it_serves_with_the_production_settings(self, started: tuple[Path, int]) -> None:
        site, port = started
        assert get(f"http://127.0.0.1:{port}/healthz") == (200, {"status": "ok"})
        # No worker has run yet, so the server is alive but not ready.
        status, body = get(f"http://127.0.0.1:{port}/readyz")
        assert status == 503
        checks = body["checks"]
        assert isinstance(checks, dict)
        assert checks["database"] == {"ok": True}
        assert checks["migrations"] == {"ok": True}
        assert checks["worker"]["ok"] is False
        # One tick of the worker writes the heartbeat that makes it ready.
        tick = run(site, "worker", "--once", **PRODUCTION)
        assert tick.returncode == 0, tick.stderr
        status, body = get(f"http://127.0.0.1:{port}/readyz")
        assert (status, body["status"]) == (200, "ok")

    def test_it_redirects_plain_http_to_https_behind_the_proxy(
        self, started: tuple[Path, int]
    ) -> None:
        _, port = started
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/accounts/login/", headers={"Host": "clinic.example.com"}
        )

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: object, **kwargs: object) -> None:
                return None

        opener = urllib.request.build_opener(NoRedirect)
        with pytest.raises(urllib.error.HTTPError) as plain:
            opener.open(request, timeout=10)
        assert plain.value.code == 301
        assert plain.value.headers["Location"] == "https://clinic.example.com/accounts/login/"
        # The proxy says the client used HTTPS: the page is served, with HSTS.
        request.add_header("X-Forwarded-Proto", "https")
        with opener.open(request, timeout=10) as response:
            assert response.status == 200
            assert response.headers["Strict-Transport-Security"] == (
                "max-age=31536000; includeSubDomains; preload"
            )
            cookie = response.headers["Set-Cookie"]
            assert "csrftoken=" in cookie and "Secure" in cookie


class DemoTests:
    def test_the_demo_serves_with_the_development_key_and_console_email(self, site: Path) -> None:
        with serving(site, "demo") as port:
            assert get(f"http://127.0.0.1:{port}/healthz") == (200, {"status": "ok"})


def workers_of(pid: int) -> set[int]:
    """The processes whose parent is `pid`."""
    return set(server_pids(pid)) - {pid}


def wait_for(check: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.1)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the worker processes from /proc")
class ServeWorkersTests:
    """`serve` runs one worker process per core (or WORKERS), all on one port."""

    def test_every_worker_serves_and_one_that_dies_is_replaced(self, site: Path) -> None:
        with server_process(site, "serve", **PRODUCTION, WORKERS="3", THREADS="2") as (
            port,
            process,
        ):
            wait_for(lambda: len(workers_of(process.pid)) == 3)
            first = workers_of(process.pid)
            # Every request is answered, whichever worker accepts it.
            for _ in range(30):
                assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
            victim = min(first)
            os.kill(victim, signal.SIGKILL)
            wait_for(lambda: len(workers_of(process.pid) - first) == 1)
            assert victim not in workers_of(process.pid)
            assert len(workers_of(process.pid)) == 3
            for _ in range(10):
                assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
            now = workers_of(process.pid)
        # Stopping the server stops every worker, and it waits for them all.
        assert process.returncode == 0
        assert not any(Path(f"/proc/{pid}").exists() for pid in now)

    def test_it_refuses_a_worker_count_that_is_not_a_number(self, site: Path) -> None:
        result = run(site, "serve", **PRODUCTION, WORKERS="many")
        assert result.returncode == 2
        assert "WORKERS must be a whole number, not 'many'." in result.stderr
        result = run(site, "serve", **PRODUCTION, WORKERS="0")
        assert result.returncode == 2
        assert "WORKERS must be at least 1." in result.stderr


def test_one_worker_per_core_by_default() -> None:
    from mesoclinic.ops.server import cores, workers_from_env

    assert (
        workers_from_env(None) == workers_from_env("  ") == cores() == len(os.sched_getaffinity(0))
    )
    assert workers_from_env("3") == 3


# A clinic with one practitioner, an API token and a patient, made in the site's database by a
# process of its own (as an operator's script would), printing the token and the patient's id.
MAKE_READER = """
import datetime as dt, django
django.setup()
from mesoclinic.accounts.models import Clinic, Membership, User
from mesoclinic.api.models import ApiToken
from mesoclinic.patients.models import Patient
clinic = Clinic.objects.create(name="Durable", city="Lyon", timezone="Europe/Paris", currency="EUR")
user = User.objects.create_user("reader", password="a long enough passphrase")
membership = Membership.objects.create(user=user, clinic=clinic, role=Membership.Role.FRONT_DESK)
patient = Patient.objects.create(
    clinic=clinic, first_name="Ana", last_name="Lopez", date_of_birth=dt.date(1990, 5, 17)
)
print(ApiToken.issue(user, membership)[1], patient.pk)
"""

COUNT_READS = """
import django
django.setup()
from mesoclinic.accounts.models import AuditEvent
print(AuditEvent.objects.filter(action="view", patient_id={patient}).count())
"""


def python_in(site: Path, script: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=site,
        env=environment(site / "data", **PRODUCTION, DJANGO_SETTINGS_MODULE="mesoclinic.settings"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the worker processes from /proc")
class ReadAuditDurabilityTests:
    """A read's audit row commits without waiting for the disk, and still survives the
    server's processes being killed outright the moment after the answers left."""

    def test_every_answered_read_is_in_the_trail_after_sigkill(self, site: Path) -> None:
        token, patient = python_in(site, MAKE_READER).split()
        reads = 40
        with server_process(site, "serve", **PRODUCTION, WORKERS="2", THREADS="2") as (
            port,
            process,
        ):
            wait_for(lambda: len(workers_of(process.pid)) == 2)
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/v1/patients/{patient}",
                headers={
                    "Authorization": f"Bearer {token}",
                    "Host": "clinic.example.com",
                    "X-Forwarded-Proto": "https",
                },
            )
            for _ in range(reads):
                with urllib.request.urlopen(request, timeout=10) as response:
                    assert response.status == 200
            # No goodbye: every process of the server dies at once, workers first.
            for pid in [*workers_of(process.pid), process.pid]:
                os.kill(pid, signal.SIGKILL)
            process.wait(timeout=10)
        assert python_in(site, COUNT_READS.format(patient=patient)) == str(reads)
