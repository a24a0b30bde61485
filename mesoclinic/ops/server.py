"""`mesoclinic serve`'s processes: one waitress server in each of several worker processes,
all accepting on one listening socket, so that the server uses every core it is given.

Python runs one thread of a process at a time, so a single process never uses more than one
core however many threads it has; several processes do. Each worker is a whole waitress: its
event loop reads every request in full (up to the body limit) before a thread takes it, so a
slow or idle client (a keep-alive connection held open between clicks) never ties up a
thread, and each worker keeps every check of `server_options` and the trusted proxy.

The parent binds the socket, loads the application once (the workers share its memory until
they write to it), then forks the workers and watches them: a worker that dies is started
again, and SIGTERM or Ctrl-C stops them all, each finishing the requests it has.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

# A worker that dies within this many seconds of starting, this many times running, means
# something is wrong with every worker (a bad setting, the database gone): stop, not loop.
QUICK_DEATH_S = 5.0
QUICK_DEATHS = 5


def cores() -> int:
    """The cores this process may run on (a container or `taskset` may give it fewer than the
    machine has)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def workers_from_env(value: str | None) -> int:
    """WORKERS: a whole number of at least 1, or empty for one worker per core."""
    if value is None or not value.strip():
        return cores()
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"WORKERS must be a whole number, not {value!r}.") from None
    if n < 1:
        raise ValueError("WORKERS must be at least 1.")
    return n


def listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def run(
    host: str,
    port: int,
    workers: int,
    threads: int,
    serve_one: Callable[[socket.socket, int], None],
    ready: Callable[[], None] = lambda: None,
) -> int:
    """Bind, fork `workers` processes that each call `serve_one(sock, threads)`, and watch
    them until told to stop. With one worker it serves in this process, as before."""
    sock = listen(host, port)
    ready()
    if workers == 1:
        serve_one(sock, threads)
        return 0
    children: dict[int, float] = {}
    stopping = False
    quick_deaths = 0

    def start() -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 0
            try:
                serve_one(sock, threads)
            except BaseException:  # noqa: BLE001 - the worker reports and exits non-zero
                import traceback

                traceback.print_exc()
                code = 1
            finally:
                os._exit(code)
        children[pid] = time.monotonic()

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for _ in range(workers):
        start()
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        started = children.pop(pid, None)
        if started is None or stopping:
            continue
        code = os.waitstatus_to_exitcode(status)
        print(f"mesoclinic worker {pid} stopped ({code}); starting another", file=sys.stderr)
        if time.monotonic() - started < QUICK_DEATH_S:
            quick_deaths += 1
            if quick_deaths >= QUICK_DEATHS:
                print("mesoclinic workers keep dying at start; stopping.", file=sys.stderr)
                stop(signal.SIGTERM, None)
                continue
        start()
    sock.close()
    return 1 if quick_deaths >= QUICK_DEATHS else 0
