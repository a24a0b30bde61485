"""Safety surveillance statistics: the Bernoulli CUSUM and the binomial MaxSPRT (issue 5)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from mesoclinic.lib.surveillance import (
    bernoulli_cusum,
    cusum_control_limit,
    cusum_path,
    cusum_weights,
    maxsprt_critical_value,
    maxsprt_llr,
    maxsprt_performance,
    maxsprt_signal_probabilities,
    maxsprt_type_i_error,
    out_of_control_p,
    simulate_cusum_maxima,
    simulate_run_lengths,
)

P0 = 0.02
P1 = 0.10


def reference_cusum(xs: list[int], p0: float, p1: float) -> list[float]:
    """The textbook recursion, one step at a time, to check the vectorised form against."""
    w_event, w_none = math.log(p1 / p0), math.log((1 - p1) / (1 - p0))
    s, path = 0.0, []
    for x in xs:
        s = max(0.0, s + (w_event if x else w_none))
        path.append(s)
    return path


class CusumTests:
    def test_weights_are_the_log_likelihood_ratios(self) -> None:
        w_event, w_none = cusum_weights(P0, P1)
        assert w_event == pytest.approx(math.log(5), abs=1e-15)
        assert w_none == pytest.approx(math.log(0.90 / 0.98), abs=1e-15)

    def test_it_matches_a_hand_computed_path(self) -> None:
        # An event adds a = ln(0.10/0.02) = ln 5 = 1.6094379...; a session without one adds
        # b = ln(0.90/0.98) = -0.0851578...
        a, b = math.log(5), math.log(0.90 / 0.98)
        expected = [
            0.0,  # max(0, 0 + b): the score cannot go below zero
            0.0,  # max(0, 0 + b)
            a,  # 0 + a = 1.6094
            a + b,  # 1.6094 - 0.0852 = 1.5243
            2 * a + b,  # 1.5243 + 1.6094 = 3.1337, the first value >= h = 3
            3 * a + b,  # 3.1337 + 1.6094 = 4.7432
        ]
        result = bernoulli_cusum([0, 0, 1, 0, 1, 1], P0, P1, h=3.0)
        assert len(result.path) == 6
        for got, want in zip(result.path, expected, strict=True):
            assert abs(got - want) < 1e-12
        assert result.first_signal == 4
        assert result.h == 3.0

    def test_it_reports_no_signal_below_the_limit(self) -> None:
        assert bernoulli_cusum([0, 0, 1, 0, 1, 1], P0, P1, h=5.0).first_signal is None

    def test_the_vectorised_path_matches_the_recursion_on_a_long_stream(self) -> None:
        xs = (np.random.default_rng(7).random(5_000) < 0.05).astype(int).tolist()
        got = cusum_path(xs, P0, P1)
        assert np.allclose(got, reference_cusum(xs, P0, P1), rtol=0, atol=1e-10)

    def test_it_refuses_bad_input(self) -> None:
        with pytest.raises(ValueError):
            cusum_path([0, 2], P0, P1)
        with pytest.raises(ValueError):
            cusum_weights(0.1, 0.05)
        with pytest.raises(ValueError):
            bernoulli_cusum([0], P0, P1, h=0)

    def test_out_of_control_p_is_a_capped_multiple(self) -> None:
        assert out_of_control_p(0.02, 5) == pytest.approx(0.10)
        assert out_of_control_p(0.5, 3) == 0.999


N = 500
ALPHA = 0.05
RUNS = 20_000


@pytest.fixture(scope="module")
def limit() -> float:
    """The control limit for 5 % false alarms within 500 sessions, computed once."""
    return cusum_control_limit(P0, P1, N, ALPHA, RUNS, seed=11)


class CusumControlLimitTests:
    N = N
    ALPHA = ALPHA
    RUNS = RUNS

    def test_it_is_reproducible_for_a_seed(self, limit: float) -> None:
        assert cusum_control_limit(P0, P1, self.N, self.ALPHA, self.RUNS, seed=11) == limit
        assert cusum_control_limit(P0, P1, self.N, self.ALPHA, self.RUNS, seed=12) != limit
        assert limit > 0

    def test_its_false_alarm_rate_on_fresh_streams_is_close_to_alpha(self, limit: float) -> None:
        h = limit
        fresh = simulate_cusum_maxima(P0, P1, self.N, self.RUNS, np.random.default_rng(99))
        rate = float((fresh >= h).mean())
        # Both h and the check are estimated from RUNS runs, each with binomial standard
        # error sqrt(a (1 - a) / RUNS) = 0.0015; four combined standard errors is 0.0087.
        se = math.sqrt(self.ALPHA * (1 - self.ALPHA) / self.RUNS)
        assert abs(rate - self.ALPHA) < 4 * math.sqrt(2) * se

    def test_it_detects_a_fivefold_rise_far_sooner(self, limit: float) -> None:
        h = limit
        rng = np.random.default_rng(5)
        raised = simulate_run_lengths(P0, P1, h, 5 * P0, 2_000, 2_000, rng)
        baseline = simulate_run_lengths(P0, P1, h, P0, 2_000, 2_000, rng)
        # About 66 sessions with a drift of 0.084 a session; in control most runs last 2,000.
        assert np.median(raised) * 10 < np.median(baseline)


def brute_force_type_i_error(n_max: int, z: float, cv: float) -> float:
    """Sum the probability of every path of n_max events that signals, one path at a time."""
    p = 1 / (1 + z)
    llr = {(c, n): maxsprt_llr(c, n, z) for n in range(1, n_max + 1) for c in range(n + 1)}
    total = 0.0
    for path in itertools.product((0, 1), repeat=n_max):
        cases = 0
        for n, exposed in enumerate(path, start=1):
            cases += exposed
            if llr[cases, n] >= cv:
                k = sum(path)
                total += p**k * (1 - p) ** (n_max - k)
                break
    return total


class MaxSprtTests:
    def test_llr_matches_the_formula(self) -> None:
        # z = 1 gives p = 1/2: LLR(8 of 10) = 8 ln(8/5) + 2 ln(2/5).
        assert maxsprt_llr(8, 10, 1) == pytest.approx(8 * math.log(1.6) + 2 * math.log(0.4))
        # z = 3 gives p = 1/4: LLR(3 of 4) = 3 ln(3/1) + 1 ln(1/3).
        assert maxsprt_llr(3, 4, 3) == pytest.approx(3 * math.log(3) + math.log(1 / 3))
        # Every event in the new lot: n ln(1 + z).
        assert maxsprt_llr(5, 5, 2) == pytest.approx(5 * math.log(3))

    def test_llr_is_zero_without_an_excess(self) -> None:
        assert maxsprt_llr(5, 10, 1) == 0.0
        assert maxsprt_llr(0, 10, 1) == 0.0
        assert maxsprt_llr(2, 10, 3) == 0.0

    def test_performance_matches_the_sequential_package_example(self) -> None:
        # Published output of Performance.Binomial(N=30, M=1, cv=2, z=1, RR=2), in the
        # documentation examples of the R package Sequential (Silva and Kulldorff).
        result = maxsprt_performance(30, z=1, cv=2, rr=2)
        assert result.power == pytest.approx(0.658732, abs=5e-7)
        assert result.signal_time == pytest.approx(10.7893, abs=5e-5)
        assert result.surveillance_time == pytest.approx(17.3453, abs=5e-5)

    def test_exact_type_i_error_matches_enumerating_every_path(self) -> None:
        for z, cv in [(1.0, 2.0), (2.0, 1.5), (0.5, 2.5)]:
            exact = maxsprt_type_i_error(12, z, cv)
            assert exact == pytest.approx(brute_force_type_i_error(12, z, cv), abs=1e-12)

    @pytest.mark.parametrize(
        ("n_max", "z", "alpha"),
        [(20, 1.1, 0.05), (50, 1, 0.05), (100, 1, 0.05), (200, 2, 0.05), (100, 4, 0.01)],
    )
    def test_critical_value_is_the_smallest_that_keeps_alpha(
        self, n_max: int, z: float, alpha: float
    ) -> None:
        result = maxsprt_critical_value(n_max, z, alpha)
        assert result.type_i_error == maxsprt_type_i_error(n_max, z, result.cv)
        assert result.type_i_error <= alpha
        assert maxsprt_type_i_error(n_max, z, result.cv - 1e-5) > alpha

    def test_critical_value_rises_with_the_length_of_surveillance(self) -> None:
        cvs = [maxsprt_critical_value(n, 1, 0.05).cv for n in (25, 50, 100, 200, 400)]
        assert cvs == sorted(cvs)
        assert cvs[-1] > cvs[0]

    def test_critical_value_falls_as_alpha_is_relaxed(self) -> None:
        cvs = [maxsprt_critical_value(150, 1, a).cv for a in (0.01, 0.025, 0.05, 0.1)]
        assert cvs == sorted(cvs, reverse=True)
        assert cvs[0] > cvs[-1]

    def test_a_minimum_number_of_cases_delays_every_signal(self) -> None:
        # Under H0 with cv just above 0, the first events would signal at once without M.
        probs = maxsprt_signal_probabilities(10, 1, 1e-9, min_cases=3)
        assert probs[:2].sum() == 0.0
        assert probs[2] > 0

    def test_power_at_relative_risk_one_is_the_type_i_error(self) -> None:
        cv = maxsprt_critical_value(60, 1, 0.05).cv
        power = maxsprt_performance(60, 1, cv, rr=1).power
        assert power == pytest.approx(maxsprt_type_i_error(60, 1, cv), abs=1e-15)
        assert maxsprt_performance(60, 1, cv, rr=3).power > 0.5

    def test_it_refuses_an_upper_limit_too_short_for_alpha(self) -> None:
        # With N = 3 and z = 1 even three exposed cases out of three happen with chance 1/8.
        with pytest.raises(ValueError):
            maxsprt_critical_value(3, 1, 0.05)
