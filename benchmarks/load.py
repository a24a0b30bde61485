"""A clinic's mixed staff load against a real `mesoclinic serve` on loopback, on SQLite and on
PostgreSQL.

1. Load the demo clinic ten times over (300 patients) into the benchmark's database.
2. Start `mesoclinic serve` as an operator does, in its own processes, on a free port.
3. Drive it from this process with 50 clients, each on its own keep-alive connection
   (asyncio, so the clients cost the machine little beside the server):
   - the baseline: the login page, then a static file, each as fast as the clients can ask;
   - the mix, as fast as they can ask ("hammering"): Today, patient search, a chart, the
     calendar day, the API's patient and course, the session check, and about 10 % writes
     (registering a patient, reporting a side effect);
   - the same mix paced as people work: each user asks, then waits 1 to 2 seconds.
4. For each: requests, errors, throughput, throughput per second of the server's CPU (all its
   processes, read from /proc), p50, p95 and p99; and each worker's memory.
5. Stop the server and delete what was made. Every phase is bounded in time.

`mesoclinic serve` runs once as it was before it had workers (one process of 8 threads) and
once as it is now (one worker per core), so the table compares the two on the same data in
the same run. PostgreSQL is used when a server answers at BENCH_POSTGRES_URL (by default
postgres://postgres@127.0.0.1:5432/test); the benchmark makes a database of its own there
and drops it at the end.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from benchmarks.postgres import throwaway_database
from benchmarks.timing import percentile

SCALE = 10
CLIENTS = 50
# Each phase's length; BENCH_LOAD_SECONDS shortens them (the suite's run of the benchmark).
PHASE_S = float(os.environ.get("BENCH_LOAD_SECONDS", "15"))
WARM_S = min(3.0, PHASE_S)
PACE_S = (1.0, 2.0)
BENCH_DB = "mesoclinic_bench_load"
SERVER_KEY = secrets.token_urlsafe(50)
LOGIN = "/accounts/login/"
STATIC = "/static/css/app.css"


@dataclass
class Fixture:
    """What the clients ask for: a signed-in staff session, an API token, and ids to choose
    from."""

    cookie: str
    token: str
    patients: list[int]
    courses: list[int]
    sessions: list[int]
    names: list[str]
    days: list[str]


@dataclass
class Phase:
    name: str
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    # The first few refused or failed requests, to say which.
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    cpu: float = 0.0

    def figures(self) -> dict[str, float]:
        n = len(self.latencies)
        return {
            "requests": n,
            "errors": self.errors,
            "throughput": n / self.seconds if self.seconds else 0.0,
            "per_cpu": n / self.cpu if self.cpu else 0.0,
            "p50": statistics.median(self.latencies) if n else 0.0,
            "p95": percentile(self.latencies, 0.95) if n else 0.0,
            "p99": percentile(self.latencies, 0.99) if n else 0.0,
        }


# The server: started as an operator starts it, watched through /proc.


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def server_env(workers: int, threads: int) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("EMAIL_", "SECURE_", "BENCH_"))
        and k not in {"DEBUG", "DJANGO_SETTINGS_MODULE"}
    }
    return {
        **env,
        "SECRET_KEY": SERVER_KEY,
        "ALLOWED_HOSTS": "127.0.0.1",
        "ALLOW_CONSOLE_EMAIL": "1",
        "WORKERS": str(workers),
        "THREADS": str(threads),
        # The access log goes to the server's own output, which is discarded here.
        "ACCESS_LOG": "1",
    }


def start_server(workers: int, threads: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    binary = Path(sys.executable).with_name("mesoclinic")
    process = subprocess.Popen(
        [str(binary), "serve", "--port", str(port)],
        env=server_env(workers, threads),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mesoclinic serve stopped at start ({process.returncode}).")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.2)
    else:
        process.kill()
        raise RuntimeError("mesoclinic serve did not listen within 60 s.")
    # The workers are forked just after the socket listens; let them start.
    time.sleep(2.0)
    return process, port


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def server_pids(parent: int) -> list[int]:
    """The server's process and its workers."""
    found = [parent]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The fields after the command's closing parenthesis: state, then the parent's pid.
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
            found.append(int(entry.name))
    return found


def cpu_seconds(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def memory_mb(pid: int) -> tuple[float, float]:
    """A process's resident memory and its proportional share (shared pages divided among
    the processes that share them), in MB."""
    rss = pss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    except OSError:
        pass
    return rss / 1024, pss / 1024


# The clients: raw HTTP/1.1 on keep-alive connections, so that they cost little CPU.


class Client:
    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> int:
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body:
            lines.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection")
        status = int(status_line.split()[1])
        length, chunked, close = 0, False, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
            elif name == "connection" and "close" in value.lower():
                close = True
        if chunked:
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        elif length:
            await self.reader.readexactly(length)
        if close:
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


Request = tuple[str, str, dict[str, str], bytes]


def mixed(fixture: Fixture, rng: random.Random) -> Callable[[], Request]:
    """One request of the staff's mix, chosen by weight."""
    web = {"Cookie": f"sessionid={fixture.cookie}"}
    api = {"Authorization": f"Bearer {fixture.token}", "Accept": "application/json"}
    post = {**api, "Content-Type": "application/json"}

    def registration() -> bytes:
        n = rng.randrange(10**9)
        return (
            f'{{"first_name": "Load", "last_name": "Test {n}", "date_of_birth": "1980-01-01", '
            f'"email": "load{n}@example.com", "allow_duplicate": true}}'
        ).encode()

    def side_effect() -> bytes:
        onset = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
        return (
            f'{{"kind": "other", "onset_at": "{onset}", "grade": 1, '
            '"description": "Itching at one site"}'
        ).encode()

    choices: list[tuple[float, Callable[[], Request]]] = [
        (15, lambda: ("GET", "/today/", web, b"")),
        (15, lambda: ("GET", f"/patients/?q={quote(rng.choice(fixture.names))}", web, b"")),
        (15, lambda: ("GET", f"/patients/{rng.choice(fixture.patients)}/", web, b"")),
        (
            10,
            lambda: ("GET", f"/calendar/?date={rng.choice(fixture.days)}&view=day", web, b""),
        ),
        (12, lambda: ("GET", f"/api/v1/patients/{rng.choice(fixture.patients)}", api, b"")),
        (12, lambda: ("GET", f"/api/v1/courses/{rng.choice(fixture.courses)}", api, b"")),
        (
            11,
            lambda: (
                "GET",
                f"/api/v1/courses/{rng.choice(fixture.courses)}/session-check",
                api,
                b"",
            ),
        ),
        (5, lambda: ("POST", "/api/v1/patients", post, registration())),
        (
            5,
            lambda: (
                "POST",
                f"/api/v1/sessions/{rng.choice(fixture.sessions)}/side-effects",
                post,
                side_effect(),
            ),
        ),
    ]
    weights = [w for w, _ in choices]
    makers = [m for _, m in choices]
    return lambda: rng.choices(makers, weights)[0]()


async def drive(
    port: int,
    pick: Callable[[], Request],
    seconds: float,
    pace: tuple[float, float] | None,
    phase: Phase,
    rng: random.Random,
) -> None:
    """`CLIENTS` clients ask until `seconds` have passed: as fast as they can, or each waiting
    a random time in `pace` between requests (started at random within the first pause so
    they do not all ask at once)."""
    deadline = time.monotonic() + seconds

    async def one() -> None:
        client = Client(port)
        if pace is not None:
            await asyncio.sleep(rng.uniform(0, pace[1]))
        while time.monotonic() < deadline:
            method, path, headers, body = pick()
            start = time.perf_counter()
            try:
                status = await asyncio.wait_for(
                    client.request(method, path, headers, body), timeout=30
                )
            except (TimeoutError, OSError, ValueError, IndexError) as exc:
                phase.errors += 1
                if len(phase.failures) < 3:
                    phase.failures.append(f"{method} {path}: {exc!r}")
                client.close()
                continue
            phase.latencies.append((time.perf_counter() - start) * 1000)
            phase.statuses[status] = phase.statuses.get(status, 0) + 1
            if status >= 400:
                phase.errors += 1
                if len(phase.failures) < 3:
                    phase.failures.append(f"{method} {path}: {status}")
            if pace is not None:
                await asyncio.sleep(rng.uniform(*pace))
        client.close()

    await asyncio.gather(*(one() for _ in range(CLIENTS)))


def measure(
    process: subprocess.Popen[bytes],
    port: int,
    name: str,
    pick: Callable[[], Request],
    pace: tuple[float, float] | None = None,
    seconds: float = PHASE_S,
) -> Phase:
    rng = random.Random(name)
    asyncio.run(drive(port, pick, WARM_S, pace, Phase("warm-up"), rng))
    phase = Phase(name)
    pids = server_pids(process.pid)
    cpu0, t0 = cpu_seconds(pids), time.monotonic()
    asyncio.run(drive(port, pick, seconds, pace, phase, rng))
    phase.seconds = time.monotonic() - t0
    phase.cpu = cpu_seconds(pids) - cpu0
    return phase


def fixture() -> Fixture:
    """A signed-in practitioner's browser session and API token, and what to ask for."""
    import datetime as dt

    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore
    from django.test.utils import override_settings
    from django.utils import timezone

    from mesoclinic import demo
    from mesoclinic.accounts.models import Clinic, User
    from mesoclinic.api.models import ApiToken
    from mesoclinic.courses.models import Course, Session
    from mesoclinic.patients.models import Patient

    clinic = Clinic.objects.get(name=demo.CLINIC_NAME)
    user = User.objects.get(username="practitioner")
    # Signed with the server's key, as a sign-in there would sign it.
    with override_settings(SECRET_KEY=SERVER_KEY):
        store = SessionStore()
        store[SESSION_KEY] = str(user.pk)
        store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        store[HASH_SESSION_KEY] = user.get_session_auth_hash()
        store.create()
    _, token = ApiToken.issue(user, user.memberships.get(clinic=clinic))
    today = timezone.localdate(timezone.now(), clinic.tz)
    return Fixture(
        cookie=store.session_key or "",
        token=token,
        patients=list(Patient.objects.filter(clinic=clinic).values_list("pk", flat=True)),
        courses=list(Course.objects.filter(clinic=clinic).values_list("pk", flat=True)),
        sessions=list(Session.objects.filter(course__clinic=clinic).values_list("pk", flat=True)),
        names=sorted(
            set(Patient.objects.filter(clinic=clinic).values_list("last_name", flat=True))
        ),
        days=[(today + dt.timedelta(days=d)).isoformat() for d in range(-3, 4)],
    )


def configurations() -> list[tuple[str, int, int]]:
    """`serve` as it was (one process) and as it is (one worker per core); BENCH_LOAD_NOW=1
    runs only the second (the suite's run of the benchmark)."""
    from mesoclinic.ops.server import cores

    n = cores()
    now = (f"now: {n} worker{'s' if n != 1 else ''} of 4 threads", n, 4)
    if os.environ.get("BENCH_LOAD_NOW"):
        return [now]
    return [("before: 1 process of 8 threads", 1, 8), now]


def run_here(scale: int = SCALE) -> dict[str, Any]:
    """The whole benchmark on the database this process is set up with."""
    from django.db import connection, connections

    from mesoclinic import demo

    started = time.perf_counter()
    demo.load(scale=scale)
    built = time.perf_counter() - started
    chosen = fixture()
    connections.close_all()
    vendor = connection.vendor
    load_average = os.getloadavg()
    print(
        f"\nMixed load against mesoclinic serve ({vendor}; demo x{scale}: "
        f"{len(chosen.patients)} patients, loaded in {built:.0f} s; {CLIENTS} clients, "
        f"{PHASE_S:.0f} s a phase; load average before {load_average[0]:.2f})"
    )
    out: dict[str, Any] = {}
    for label, workers, threads in configurations():
        process, port = start_server(workers, threads)
        try:
            rng = random.Random(label)
            phases = [
                measure(process, port, "login page", lambda: ("GET", "/accounts/login/", {}, b"")),
                measure(
                    process, port, "static file", lambda: ("GET", "/static/css/app.css", {}, b"")
                ),
                measure(process, port, "mix, hammering", mixed(chosen, rng)),
                measure(process, port, "mix, paced", mixed(chosen, rng), pace=PACE_S),
            ]
            memory = [memory_mb(pid) for pid in server_pids(process.pid)]
        finally:
            stop_server(process)
        print(f"  {label}")
        for phase in phases:
            f = phase.figures()
            out[f"{vendor}/{label}/{phase.name}"] = f
            print(
                f"    {phase.name:<15} {f['throughput']:7.1f} req/s  "
                f"{f['per_cpu']:7.1f} per server CPU-s  p50 {f['p50']:7.1f} ms  "
                f"p95 {f['p95']:7.1f} ms  p99 {f['p99']:7.1f} ms  "
                f"errors {f['errors']} of {f['requests']}"
            )
            if phase.errors:
                print(f"      statuses: {dict(sorted(phase.statuses.items()))}")
                for failure in phase.failures:
                    print(f"      {failure}")
        workers_memory = memory[1:] if len(memory) > 1 else memory
        print(
            "    memory per worker: "
            + ", ".join(
                f"{rss:.0f} MB resident ({pss:.0f} MB its own share)" for rss, pss in workers_memory
            )
        )
    return out


def run(scale: int = SCALE) -> dict[str, Any]:
    """SQLite here, then PostgreSQL in a child process on a database of its own."""
    figures = run_here(scale)
    with throwaway_database(BENCH_DB) as url:
        if url is not None:
            subprocess.run(
                [sys.executable, "-m", "benchmarks", "load-here"],
                env={**os.environ, "DATABASE_URL": url, "BENCH_LOAD_SCALE": str(scale)},
                check=True,
                timeout=1800,
            )
    return figures


def profile_here(scale: int = SCALE, requests: int = 400) -> dict[str, float]:
    """Where a mixed request's time goes, in this process (`python -m benchmarks
    load-profile`): the same mix through Django's test client under cProfile, with each kind
    of request's mean time and share of the whole, and the functions that take the most."""
    import cProfile
    import pstats
    from collections import defaultdict

    from django.test import Client as DjangoClient
    from django.test.utils import override_settings

    from mesoclinic import demo

    demo.load(scale=scale)
    chosen = fixture()
    client = DjangoClient(HTTP_HOST="127.0.0.1")
    client.cookies["sessionid"] = chosen.cookie
    pick = mixed(chosen, random.Random("profile"))
    spent: dict[str, list[float]] = defaultdict(list)
    profiler = cProfile.Profile()
    with override_settings(SECRET_KEY=SERVER_KEY, ALLOWED_HOSTS=["127.0.0.1"]):
        for n in range(requests + 20):
            method, path, headers, body = pick()
            kind = kind_of(method, path)
            extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
            extra.pop("HTTP_COOKIE", None)
            extra.pop("HTTP_CONTENT_TYPE", None)
            start = time.perf_counter()
            if n >= 20:  # the first requests warm the caches
                profiler.enable()
            if method == "GET":
                client.get(path, **extra)
            else:
                client.post(path, data=body, content_type="application/json", **extra)
            profiler.disable()
            if n >= 20:
                spent[kind].append((time.perf_counter() - start) * 1000)
    total = sum(sum(v) for v in spent.values())
    print(f"\nWhere the mixed load's time goes (demo x{scale}, {requests} requests, in-process)")
    for kind, samples in sorted(spent.items(), key=lambda kv: -sum(kv[1])):
        print(
            f"  {kind:<22} {len(samples):4d} requests  mean {statistics.mean(samples):6.1f} ms"
            f"  {100 * sum(samples) / total:5.1f} % of the time"
        )
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(15)
    return {kind: statistics.mean(samples) for kind, samples in spent.items()}


def kind_of(method: str, path: str) -> str:
    """The kind of a request of the mix, for the profile's table."""
    if method == "POST":
        return "register a patient" if path.endswith("/patients") else "report a side effect"
    if path.startswith("/today/"):
        return "Today"
    if path.startswith("/patients/?"):
        return "patient search"
    if path.startswith("/patients/"):
        return "chart"
    if path.startswith("/calendar/"):
        return "calendar day"
    if path.endswith("/session-check"):
        return "session check"
    return "API patient" if "/patients/" in path else "API course"
