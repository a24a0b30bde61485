"""What every benchmark times with: wall-clock samples in milliseconds, their percentiles, and
the queries a call makes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def percentile(samples: list[float], q: float) -> float:
    """The sample at quantile `q` (0–1) of the sorted samples, nearest rank below."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def time_ms(fn: Callable[[], object], runs: int) -> list[float]:
    """Call `fn` `runs` times; each call's wall time in milliseconds."""
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def time_ms_interleaved(fns: dict[str, Callable[[], object]], runs: int) -> dict[str, list[float]]:
    """Call each of `fns` in turn, `runs` rounds; each call's wall time in milliseconds, by
    name. Taking the pages in turn rather than one block after another spreads whatever else
    the shared machine is doing over all of them alike, so a busy minute does not land on one
    page's block alone and the ratios between them hold."""
    out: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            out[name].append((time.perf_counter() - start) * 1000)
    return out


def count_queries(fn: Callable[[], object]) -> int:
    """How many queries `fn` sends to the default database. Counted as they run, not from the
    length of connection.queries_log as CaptureQueriesContext does: that log keeps only the
    last 9000 queries, so once a long benchmark has filled it every later call would count 0."""
    from django.db import connection

    count = 0

    def counter(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        nonlocal count
        count += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(counter):
        fn()
    return count
