"""PBO by CSCV and the deflated Sharpe ratio against small cases worked by hand."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from coinpilot.optimize.overfitting import (
    EULER_GAMMA,
    choose_splits,
    cscv_pbo,
    deflated_sharpe,
    expected_max_sharpe,
    moments,
    sharpe_columns,
)


def test_sharpe_columns_is_mean_over_sample_std_and_zero_when_flat() -> None:
    r = np.array([[0.02, 0.0], [0.0, 0.0], [0.02, 0.0], [0.0, 0.0]])
    # column 0: mean 0.01, deviations ±0.01, sample variance 4e-4 / 3
    assert sharpe_columns(r)[0] == pytest.approx(0.01 / math.sqrt(4e-4 / 3))
    assert sharpe_columns(r)[1] == 0.0


def test_pbo_is_one_when_the_in_sample_winner_always_loses_out_of_sample() -> None:
    """Two trials, two blocks of two returns.

    Block 0: A = [0.01, 0.03] (Sharpe 0.02 / 0.01414 = 1.41), B = [0.00, 0.01] (0.707).
    Block 1: A = [-0.01, 0.01] (Sharpe 0),                     B = [0.02, 0.03] (3.54).
    In-sample block 0 picks A, which ranks 1st of 2 (worst) in block 1: ω = 1/3, λ = ln ½.
    In-sample block 1 picks B, which ranks worst in block 0: again λ = ln ½. PBO = 2/2.
    """
    r = np.array([[0.01, 0.00], [0.03, 0.01], [-0.01, 0.02], [0.01, 0.03]])
    got = cscv_pbo(r, splits=2)
    assert got.combinations == 2
    assert got.pbo == 1.0
    assert got.logits == pytest.approx([math.log(0.5), math.log(0.5)])


def test_pbo_is_zero_when_the_winner_stays_the_winner() -> None:
    """A beats B in both blocks: each split picks A and A ranks 2nd of 2, ω = 2/3, λ = ln 2."""
    r = np.array([[0.02, 0.00], [0.03, 0.01], [0.02, -0.01], [0.04, 0.00]])
    got = cscv_pbo(r, splits=2)
    assert got.pbo == 0.0
    assert got.logits == pytest.approx([math.log(2.0), math.log(2.0)])


def test_pbo_counts_the_six_ways_to_halve_four_blocks() -> None:
    """S = 4 gives C(4, 2) = 6 splits; with three trials ω ∈ {1/4, 2/4, 3/4}, and the
    median rank (ω = ½, λ = 0) counts as overfit."""
    rng = np.random.default_rng(3)
    r = rng.normal(0.0, 0.01, (16, 3))
    got = cscv_pbo(r, splits=4)
    assert got.combinations == 6
    allowed = {round(math.log(w / (1 - w)), 12) for w in (0.25, 0.5, 0.75)}
    assert {round(v, 12) for v in got.logits} <= allowed
    assert got.pbo == sum(1 for v in got.logits if v <= 0) / 6


def test_pbo_drops_the_oldest_rows_that_do_not_fill_a_block() -> None:
    r = np.array([[9.0, -9.0], [0.01, 0.00], [0.03, 0.01], [-0.01, 0.02], [0.01, 0.03]])
    assert cscv_pbo(r, splits=2).pbo == 1.0  # the first row is ignored, as in the case above


def test_pbo_refuses_what_it_cannot_compute() -> None:
    with pytest.raises(ValueError, match="two trials"):
        cscv_pbo(np.zeros((8, 1)), 2)
    with pytest.raises(ValueError, match="even"):
        cscv_pbo(np.zeros((8, 2)), 3)
    with pytest.raises(ValueError, match="too few"):
        cscv_pbo(np.zeros((7, 2)), 4)
    assert choose_splits(100) == 16
    assert choose_splits(21) == 10
    assert choose_splits(7) == 2
    assert choose_splits(3) is None


def test_moments_of_a_two_point_series() -> None:
    # ±0.01 around the mean: skewness 0, kurtosis m4 / m2² = 1e-8 / (1e-4)² = 1
    assert moments(np.array([0.02, 0.0, 0.02, 0.0])) == pytest.approx((0.0, 1.0))
    # [0, 0, 0, 1]: mean ¼, m2 = 3/16, m3 = (3·(−¼)³ + (¾)³)/4 = 3/32, m4 = 21/256
    skew, kurt = moments(np.array([0.0, 0.0, 0.0, 1.0]))
    assert skew == pytest.approx((3 / 32) / (3 / 16) ** 1.5)
    assert kurt == pytest.approx((21 / 256) / (3 / 16) ** 2)


def test_expected_max_sharpe_of_two_trials() -> None:
    """SR₀ = √V · ((1−γ) Φ⁻¹(1 − 1/2) + γ Φ⁻¹(1 − 1/(2e))) with V = var([0.1, 0.3]) = 0.02."""
    z = NormalDist().inv_cdf(1 - 1 / (2 * math.e))
    assert expected_max_sharpe(np.array([0.1, 0.3])) == pytest.approx(
        math.sqrt(0.02) * EULER_GAMMA * z
    )
    assert expected_max_sharpe(np.array([0.4])) == 0.0


def test_deflated_sharpe_of_one_trial_is_its_probabilistic_sharpe() -> None:
    """Returns [0.02, 0, 0.02, 0]: SR = √3/2, skew 0, kurtosis 1, T = 4, one trial (SR₀ = 0):
    DSR = Φ(√3/2 · √3 / √(1 + 0 + 0)) = Φ(1.5)."""
    got = deflated_sharpe(np.array([0.02, 0.0, 0.02, 0.0]), np.array([0.5]))
    assert got.sharpe == pytest.approx(math.sqrt(3) / 2)
    assert got.sharpe0 == 0.0
    assert got.probability == pytest.approx(NormalDist().cdf(1.5))
    assert not got.significant


def test_expected_max_sharpe_floors_the_spread_at_the_null_variance() -> None:
    """Near-copies of one trial have almost no spread; with T = 5 returns the variance is
    floored at 1 / (5 − 1) = 0.25, so SR₀ = 0.5 · ((1−γ) Φ⁻¹(1 − 1/3) + γ Φ⁻¹(1 − 1/(3e)))."""
    z1 = NormalDist().inv_cdf(1 - 1 / 3)
    z2 = NormalDist().inv_cdf(1 - 1 / (3 * math.e))
    got = expected_max_sharpe(np.array([0.30, 0.31, 0.32]), n_obs=5)
    assert got == pytest.approx(0.5 * ((1 - EULER_GAMMA) * z1 + EULER_GAMMA * z2))
    # a wide spread is used as it is: var([0, 2, 4]) = 4 > 0.25
    wide = expected_max_sharpe(np.array([0.0, 2.0, 4.0]), n_obs=5)
    assert wide == pytest.approx(2.0 * ((1 - EULER_GAMMA) * z1 + EULER_GAMMA * z2))


def test_deflated_sharpe_falls_with_the_trials_behind_the_choice() -> None:
    """The same four returns chosen among trials with Sharpes [0.1, 0.3]: their variance
    0.02 is below the floor 1 / (4 − 1), so SR₀ = √(1/3) · γ · Φ⁻¹(1 − 1/(2e)); the kurtosis
    term (1 − 1)/4 is 0, so DSR = Φ((√3/2 − SR₀) · √3)."""
    z = NormalDist().inv_cdf(1 - 1 / (2 * math.e))
    sr0 = math.sqrt(1 / 3) * EULER_GAMMA * z
    got = deflated_sharpe(np.array([0.02, 0.0, 0.02, 0.0]), np.array([0.1, 0.3]))
    assert got.sharpe0 == pytest.approx(sr0)
    expected = NormalDist().cdf((math.sqrt(3) / 2 - sr0) * math.sqrt(3))
    assert got.probability == pytest.approx(expected)
    assert expected < NormalDist().cdf(1.5)


def test_deflated_sharpe_of_a_long_steady_edge_is_significant() -> None:
    """Daily mean 0.2 %, std 1 % over a year: SR ≈ 0.2, z ≈ 0.2 · √364 ≈ 3.8 without trials."""
    rng = np.random.default_rng(7)
    r = 0.002 + 0.01 * rng.standard_normal(365)
    assert deflated_sharpe(r, np.array([0.0])).significant
