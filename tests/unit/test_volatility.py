"""GARCH(1,1) next-minute volatility (SPEC §13.1)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from coinpilot.domain.volatility import estimate_volatility, log_returns_pct


def simulate_garch(n: int, omega: float, alpha: float, beta: float, seed: int) -> np.ndarray:
    """Prices whose % log returns follow a known GARCH(1,1) with zero mean."""
    rng = np.random.default_rng(seed)
    var = omega / (1 - alpha - beta)
    returns = np.empty(n)
    for t in range(n):
        returns[t] = math.sqrt(var) * rng.standard_normal()
        var = omega + alpha * returns[t] ** 2 + beta * var
    return 100.0 * np.exp(np.cumsum(returns) / 100.0)


def test_returns_are_percent_log_returns() -> None:
    """Returns are 100·ln(P_t/P_t-1), with non-positive prices dropped first."""
    got = log_returns_pct([100.0, 110.0, 0.0, 99.0])
    assert got == pytest.approx([100 * math.log(1.1), 100 * math.log(99 / 110)])


def test_too_few_returns_give_zero_and_not_high() -> None:
    """Fewer returns than min_returns yield 0.0 and never the high flag."""
    est = estimate_volatility(np.linspace(100, 200, 50), threshold_pct=0.0001, min_returns=100)
    assert (est.volatility_pct, est.is_high, est.status) == (0.0, False, "too_few_returns")


def test_forecast_tracks_the_true_conditional_volatility() -> None:
    """On a simulated GARCH series the forecast is close to the generating model's scale."""
    prices = simulate_garch(3000, omega=0.02, alpha=0.1, beta=0.85, seed=7)
    est = estimate_volatility(prices, threshold_pct=100.0, min_returns=100)
    unconditional = math.sqrt(0.02 / (1 - 0.1 - 0.85))
    assert est.status == "ok"
    assert 0.4 * unconditional < est.volatility_pct < 2.5 * unconditional


def test_high_flag_follows_threshold() -> None:
    """The same series is high against a low threshold and calm against a high one."""
    prices = simulate_garch(1000, omega=0.5, alpha=0.1, beta=0.8, seed=3)
    vol = estimate_volatility(prices, threshold_pct=100.0, min_returns=100).volatility_pct
    assert estimate_volatility(prices, threshold_pct=vol * 0.9, min_returns=100).is_high
    assert not estimate_volatility(prices, threshold_pct=vol * 1.1, min_returns=100).is_high
