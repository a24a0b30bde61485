"""What every benchmark times with: wall-clock samples in milliseconds, and their percentiles."""

from __future__ import annotations

import time
from collections.abc import Callable


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
