"""Safety surveillance statistics: a Bernoulli CUSUM and the binomial MaxSPRT.

A clinic knows its denominators (sessions per practitioner and per lot), so it can watch
adverse-event rates with exposure-based sequential methods instead of waiting for a cluster
to be noticed by eye. This module holds only the arithmetic, free of Django and of the
database, so that it can be checked against hand calculations and published values.

* The Bernoulli CUSUM (Steiner, Cook, Farewell and Treasure 2000; Reynolds and Stoumbos
  1999) watches a stream of sessions, each with or without an adverse event, and signals
  when the evidence that the event rate rose from ``p0`` to ``p1`` passes a limit ``h``.
* The binomial MaxSPRT (Kulldorff, Davis, Kolczak, Lewis, Lieu and Platt 2011) compares the
  events of a new lot with those of the baseline, with the exact critical value that the R
  package Sequential computes in ``CV.Binomial``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

# The out-of-control probability is capped below 1 so that ln(1 - p1) stays finite.
MAX_OUT_OF_CONTROL_P = 0.999

# Simulated runs are processed in blocks so that memory stays near 40 MB whatever the run count.
_SIMULATION_BLOCK_CELLS = 5_000_000

# The Sequential package reports its critical value rounded up at the fifth decimal.
_CV_DECIMALS = 5


# --------------------------------------------------------------------------------------------
# Bernoulli CUSUM
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CusumResult:
    """The CUSUM path for one stream of sessions, and where it first signalled.

    ``path[t]`` is S after observation t (0-based); ``first_signal`` is the 0-based index of
    the first observation at which S reached ``h``, or None when it never did.
    """

    path: FloatArray
    first_signal: int | None
    h: float


def out_of_control_p(p0: float, ratio: float) -> float:
    """The adverse-event probability the CUSUM is tuned to detect: ``ratio`` times ``p0``.

    A clinic thinks in "three times the usual rate", not in absolute probabilities; the cap
    keeps the weights finite when the multiple would pass 1.
    """
    _check_probability(p0, "p0")
    if ratio <= 1:
        raise ValueError("ratio must be greater than 1: the CUSUM looks for a rise.")
    return min(ratio * p0, MAX_OUT_OF_CONTROL_P)


def cusum_weights(p0: float, p1: float) -> tuple[float, float]:
    """The log-likelihood-ratio weights (event, no event) of one observation.

    An event adds ln(p1/p0) > 0 and a session without one adds ln((1-p1)/(1-p0)) < 0, so the
    score drifts down while the rate is p0 and up when it is p1.
    """
    _check_probability(p0, "p0")
    _check_probability(p1, "p1")
    if p1 <= p0:
        raise ValueError("p1 must exceed p0: the CUSUM looks for a rise.")
    return math.log(p1 / p0), math.log((1 - p1) / (1 - p0))


def cusum_path(observations: Sequence[int] | npt.ArrayLike, p0: float, p1: float) -> FloatArray:
    """S_t = max(0, S_{t-1} + w_t) with S_0 = 0, for every t, vectorised.

    Why the closed form: with C_t the running sum of the weights (C_0 = 0), the reflected
    walk is S_t = C_t - min(0, C_1, ..., C_t) (Lindley's identity). Both are numpy
    accumulations, so ten million sessions take well under a second. Where S resets, C_t is
    the running minimum and the difference is exactly 0.
    """
    x = np.asarray(observations)
    if x.size and not np.isin(x, (0, 1)).all():
        raise ValueError("Each observation must be 0 (no event) or 1 (event).")
    w_event, w_none = cusum_weights(p0, p1)
    weights = np.where(x == 1, w_event, w_none).astype(np.float64)
    return _reflected_walk(weights)


def bernoulli_cusum(
    observations: Sequence[int] | npt.ArrayLike, p0: float, p1: float, h: float
) -> CusumResult:
    """Run the Bernoulli CUSUM over a stream of sessions and find its first signal.

    The first signal is the first t with S_t >= h; the path continues after it so that a
    chart can show what happened next.
    """
    if h <= 0:
        raise ValueError("h must be positive.")
    path = cusum_path(observations, p0, p1)
    hits = np.flatnonzero(path >= h)
    first = int(hits[0]) if hits.size else None
    return CusumResult(path=path, first_signal=first, h=h)


def simulate_cusum_maxima(
    p0: float, p1: float, n: int, runs: int, rng: np.random.Generator, p_true: float | None = None
) -> FloatArray:
    """The largest S over ``n`` observations, for ``runs`` simulated streams at ``p_true``.

    The control limit is a quantile of this maximum: a run raises a false alarm within n
    sessions exactly when its maximum reaches h. ``p_true`` defaults to ``p0`` (in control).
    """
    rate = p0 if p_true is None else p_true
    w_event, w_none = cusum_weights(p0, p1)
    maxima = np.empty(runs, dtype=np.float64)
    for start, stop in _blocks(runs, n):
        events = rng.random((stop - start, n)) < rate
        weights = np.where(events, w_event, w_none)
        maxima[start:stop] = _reflected_walk(weights).max(axis=1)
    return maxima


def simulate_run_lengths(
    p0: float,
    p1: float,
    h: float,
    p_true: float,
    runs: int,
    horizon: int,
    rng: np.random.Generator,
) -> npt.NDArray[np.int64]:
    """The number of observations until the first signal, for simulated streams at ``p_true``.

    Run length is how a CUSUM is judged: long while in control, short after a rise. A run
    that does not signal within ``horizon`` observations is reported as ``horizon + 1``.
    """
    w_event, w_none = cusum_weights(p0, p1)
    lengths = np.empty(runs, dtype=np.int64)
    for start, stop in _blocks(runs, horizon):
        events = rng.random((stop - start, horizon)) < p_true
        signalled = _reflected_walk(np.where(events, w_event, w_none)) >= h
        first = signalled.argmax(axis=1) + 1
        lengths[start:stop] = np.where(signalled.any(axis=1), first, horizon + 1)
    return lengths


def cusum_control_limit(
    p0: float, p1: float, n: int = 500, alpha: float = 0.05, runs: int = 20_000, seed: int = 0
) -> float:
    """The smallest h whose simulated false-alarm rate within ``n`` sessions is at most alpha.

    Steps:

    1. Simulate ``runs`` in-control streams of ``n`` sessions (rate p0) with a numpy
       generator seeded by ``seed``, so the same arguments always give the same h.
    2. Take each run's maximum of S; a run alarms falsely exactly when that maximum >= h.
    3. With k = floor(alpha * runs) alarms allowed, h is placed just above the (k+1)-th
       largest maximum (the empirical 1 - alpha quantile), so at most k runs reach it.

    The Monte Carlo error of the achieved rate is about sqrt(alpha (1 - alpha) / runs):
    0.0015 for alpha = 0.05 and 20,000 runs.
    """
    if not 0 < alpha < 1:
        raise ValueError("alpha must lie strictly between 0 and 1.")
    if n < 1 or runs < 1:
        raise ValueError("n and runs must be positive.")
    maxima = np.sort(simulate_cusum_maxima(p0, p1, n, runs, np.random.default_rng(seed)))
    allowed = math.floor(alpha * runs)
    threshold = float(np.nextafter(maxima[runs - allowed - 1], np.inf))
    return max(threshold, float(np.nextafter(0.0, 1.0)))


def _reflected_walk(weights: FloatArray) -> FloatArray:
    """max(0, S + w) accumulated along the last axis, through Lindley's identity."""
    totals = np.cumsum(weights, axis=-1)
    floor = np.minimum.accumulate(np.minimum(totals, 0.0), axis=-1)
    return totals - floor


def _blocks(runs: int, length: int) -> list[tuple[int, int]]:
    """Split ``runs`` simulated streams into blocks that keep memory bounded."""
    size = max(1, _SIMULATION_BLOCK_CELLS // max(1, length))
    return [(start, min(start + size, runs)) for start in range(0, runs, size)]


def _check_probability(p: float, name: str) -> None:
    """Refuse probabilities of 0 or 1, whose logarithms the weights cannot take."""
    if not 0 < p < 1:
        raise ValueError(f"{name} must lie strictly between 0 and 1.")


# --------------------------------------------------------------------------------------------
# Binomial MaxSPRT
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CriticalValue:
    """An exact MaxSPRT critical value and the type I error it achieves (<= alpha)."""

    cv: float
    type_i_error: float


@dataclass(frozen=True)
class Performance:
    """How a MaxSPRT behaves at a relative risk, as Sequential's ``Performance.Binomial``.

    ``power`` is the probability of a signal by N events; ``signal_time`` is the expected
    number of events at the signal, given one; ``surveillance_time`` is the expected number
    of events when surveillance ends, by a signal or by reaching N.
    """

    power: float
    signal_time: float
    surveillance_time: float


def null_probability(z: float) -> float:
    """The chance that an event falls in the exposed group under H0: p = 1 / (1 + z).

    z is the matching ratio: baseline exposure divided by the new lot's exposure.
    """
    if z <= 0:
        raise ValueError("z must be positive.")
    return 1.0 / (1.0 + z)


def maxsprt_llr(cases: int, events: int, z: float) -> float:
    """The binomial MaxSPRT log likelihood ratio for ``cases`` exposed out of ``events``.

    LLR = c ln(c / (n p)) + (n - c) ln((n - c) / (n (1 - p))) when c / n > p, else 0,
    because the test is one-sided: only an excess in the new lot counts as evidence.
    """
    if not 0 <= cases <= events:
        raise ValueError("cases must lie between 0 and events.")
    return float(_llr_row(events, z)[cases])


def maxsprt_signal_probabilities(
    n_max: int, z: float, cv: float, rr: float = 1.0, min_cases: int = 1
) -> FloatArray:
    """The probability that the first signal comes at event n, for n = 1..n_max.

    Steps (exact, no simulation):

    1. For each n, find the fewest exposed cases a_n with LLR(a_n, n) >= cv (and a_n >=
       min_cases); no signal is possible at n when there is none.
    2. Keep the probability of each count c of exposed cases among paths that have not
       signalled, starting with all mass at c = 0.
    3. At each event the count rises by one with probability RR / (RR + z) (the exposed
       share under relative risk RR); the mass at c >= a_n is the chance of a first signal
       at n, and is removed so that only non-signalled paths go on.
    """
    _check_maxsprt_arguments(n_max, z, min_cases)
    if cv <= 0:
        raise ValueError("cv must be positive: an LLR of 0 is no evidence of excess.")
    if rr <= 0:
        raise ValueError("rr must be positive.")
    share = rr / (rr + z)
    alive = np.zeros(n_max + 2, dtype=np.float64)
    alive[0] = 1.0
    signals = np.zeros(n_max, dtype=np.float64)
    for n in range(1, n_max + 1):
        alive[1 : n + 1] = alive[1 : n + 1] * (1 - share) + alive[0:n] * share
        alive[0] *= 1 - share
        first = _first_signalling_count(n, z, cv, min_cases)
        if first <= n:
            signals[n - 1] = alive[first : n + 1].sum()
            alive[first : n + 1] = 0.0
    return signals


def maxsprt_type_i_error(n_max: int, z: float, cv: float, min_cases: int = 1) -> float:
    """The exact probability of any signal by n_max events when H0 holds (RR = 1)."""
    return float(maxsprt_signal_probabilities(n_max, z, cv, 1.0, min_cases).sum())


def maxsprt_critical_value(
    n_max: int, z: float, alpha: float = 0.05, min_cases: int = 1
) -> CriticalValue:
    """The smallest critical value whose exact type I error by n_max events is <= alpha.

    Steps, as in ``CV.Binomial`` of the R package Sequential (continuous surveillance):

    1. List every positive LLR the data can take for n <= n_max; only these matter, since
       the test at a cv between two of them is the same as at the upper one.
    2. The type I error falls as cv rises, so bisect over that sorted list for the first
       value v whose error is <= alpha; u is the value before it (error > alpha).
    3. Report cv just above u, rounded up at the fifth decimal as Sequential prints it, so
       that "LLR >= cv" rejects exactly when LLR >= v.
    """
    if not 0 < alpha <= 0.5:
        raise ValueError("alpha must lie in (0, 0.5].")
    candidates = _attainable_llrs(n_max, z)

    def error(i: int) -> float:
        return maxsprt_type_i_error(n_max, z, float(candidates[i]), min_cases)

    low, high = -1, len(candidates) - 1
    if not candidates.size or error(high) > alpha:
        raise ValueError("No critical value reaches this alpha: raise the upper limit N.")
    while high - low > 1:
        middle = (low + high) // 2
        if error(middle) > alpha:
            low = middle
        else:
            high = middle
    cv = _report_cv(candidates, low, high)
    return CriticalValue(cv=cv, type_i_error=maxsprt_type_i_error(n_max, z, cv, min_cases))


def maxsprt_performance(
    n_max: int, z: float, cv: float, rr: float, min_cases: int = 1
) -> Performance:
    """Power, expected time to signal and expected length of surveillance at relative risk rr.

    These answer the planning questions "how likely is a real excess to be caught, and how
    many events until it is", from the same exact signal probabilities.
    """
    signals = maxsprt_signal_probabilities(n_max, z, cv, rr, min_cases)
    events = np.arange(1, n_max + 1, dtype=np.float64)
    power = float(signals.sum())
    signalled_time = float((events * signals).sum())
    signal_time = signalled_time / power if power > 0 else math.inf
    return Performance(
        power=power,
        signal_time=signal_time,
        surveillance_time=signalled_time + n_max * (1 - power),
    )


def _llr_row(n: int, z: float) -> FloatArray:
    """The LLR for c = 0..n exposed cases out of n events, computed one way everywhere.

    The critical value is chosen among these very numbers, so they must be bit-identical
    wherever the test compares them with it.
    """
    p = null_probability(z)
    c = np.arange(n + 1, dtype=np.float64)
    rest = n - c
    with np.errstate(divide="ignore", invalid="ignore"):
        exposed = np.where(c > 0, c * np.log(c / (n * p)), 0.0)
        baseline = np.where(rest > 0, rest * np.log(rest / (n * (1 - p))), 0.0)
    return np.where(c > n * p, exposed + baseline, 0.0)


def _first_signalling_count(n: int, z: float, cv: float, min_cases: int) -> int:
    """The fewest exposed cases that signal at event n, or n + 1 when none can.

    The LLR rises with c above n p, so the signalling counts form a tail c >= a_n.
    """
    hits = np.flatnonzero(_llr_row(n, z) >= cv)
    if not hits.size:
        return n + 1
    first = max(int(hits[0]), min_cases)
    return first if first <= n else n + 1


def _attainable_llrs(n_max: int, z: float) -> FloatArray:
    """Every distinct positive LLR for n = 1..n_max, in increasing order."""
    rows = [_llr_row(n, z) for n in range(1, n_max + 1)]
    values = np.unique(np.concatenate(rows))
    return values[values > 0]


def _report_cv(candidates: FloatArray, low: int, high: int) -> float:
    """A cv in (u, v]: u rounded up at the fifth decimal when that stays at or below v."""
    upper = float(candidates[high])
    if low < 0:
        return upper
    scale = 10**_CV_DECIMALS
    rounded = math.floor(float(candidates[low]) * scale + 1) / scale
    return rounded if rounded <= upper else upper


def _check_maxsprt_arguments(n_max: int, z: float, min_cases: int) -> None:
    """Refuse arguments the exact computation has no meaning for."""
    if n_max < 1:
        raise ValueError("The upper limit N must be a positive number of events.")
    if min_cases < 1:
        raise ValueError("min_cases must be at least 1.")
    null_probability(z)
