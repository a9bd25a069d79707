"""The volatility estimate's rules around the GARCH fit (SPEC §13.1), worked out by hand.

The fit itself is checked against simulated series in test_volatility.py; here it is
replaced where the rule around it is the subject (counts, thresholds, failed fits), and
inspected where the subject is which model is fitted.
"""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pytest

from coinpilot.domain import volatility as vol
from coinpilot.domain.volatility import VolatilityEstimate, estimate_volatility, log_returns_pct


def test_two_prices_give_one_return() -> None:
    assert log_returns_pct([100.0, 110.0]).tolist() == pytest.approx([100 * math.log(1.1)])


def test_fewer_than_two_usable_prices_give_no_returns() -> None:
    for close in ([5.0], [], [5.0, 0.0, -1.0, math.nan]):
        out = log_returns_pct(close)
        assert out.shape == (0,)
        assert out.dtype == np.float64


def test_prices_below_one_are_prices() -> None:
    """0.5 → 0.25 → 0.5 (a coin quoted below 1 KRW): 100·ln(1/2) and 100·ln 2."""
    got = log_returns_pct([0.5, 0.25, 0.5])
    assert got.tolist() == pytest.approx([-100 * math.log(2), 100 * math.log(2)])


def test_decimal_closes_are_read_as_prices() -> None:
    """The money type of the ledger: 100 → 125 is 100·ln 1.25."""
    got = log_returns_pct([Decimal("100"), Decimal("125")])
    assert got.tolist() == pytest.approx([100 * math.log(1.25)])


def rising(n_returns: int) -> list[float]:
    return [100.0 + i for i in range(n_returns + 1)]


def test_exactly_min_returns_is_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    """10 prices are 9 returns: with min 9 the fit runs, with min 10 it does not."""
    monkeypatch.setattr(vol, "garch_one_step_std", lambda returns: 0.5)
    assert estimate_volatility(rising(9), threshold_pct=1.0, min_returns=9) == VolatilityEstimate(
        0.5, False, 9, "ok"
    )
    assert estimate_volatility(rising(9), threshold_pct=1.0, min_returns=10) == VolatilityEstimate(
        0.0, False, 9, "too_few_returns"
    )


def test_high_means_strictly_above_the_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vol, "garch_one_step_std", lambda returns: 0.8)
    at = estimate_volatility(rising(5), threshold_pct=0.8, min_returns=2)
    below = estimate_volatility(rising(5), threshold_pct=0.75, min_returns=2)
    assert at == VolatilityEstimate(0.8, False, 5, "ok")
    assert below == VolatilityEstimate(0.8, True, 5, "ok")


def test_a_failed_fit_is_zero_and_never_high(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(returns: np.ndarray) -> float:
        raise np.linalg.LinAlgError("singular")

    monkeypatch.setattr(vol, "garch_one_step_std", fail)
    est = estimate_volatility(rising(6), threshold_pct=-1.0, min_returns=2)
    assert est == VolatilityEstimate(0.0, False, 6, "fit_failed")
    assert isinstance(est.volatility_pct, float)
    assert est.is_high is False


class _Forecast:
    def __init__(self, variance: float) -> None:
        self.variance = np.array([[variance]])


class _Model:
    """Stands in for the fitted arch model: its forecast variance is set by the test."""

    def __init__(self, variance: float) -> None:
        self.value = variance

    def fit(self, **_: object) -> _Model:
        return self

    def forecast(self, **_: object) -> _Forecast:
        return _Forecast(self.value)


@pytest.mark.parametrize("variance", [math.nan, math.inf, -0.25])
def test_an_unusable_forecast_variance_is_a_failed_fit(
    monkeypatch: pytest.MonkeyPatch, variance: float
) -> None:
    import arch

    monkeypatch.setattr(arch, "arch_model", lambda *a, **k: _Model(variance))
    with pytest.raises(ValueError, match="GARCH forecast variance is not usable"):
        vol.garch_one_step_std(np.ones(10))
    est = estimate_volatility(rising(10), threshold_pct=0.1, min_returns=2)
    assert est == VolatilityEstimate(0.0, False, 10, "fit_failed")


def test_a_zero_forecast_variance_is_zero_volatility(monkeypatch: pytest.MonkeyPatch) -> None:
    """Variance 0 is usable (a perfectly quiet forecast), variance 0.25 is 0.5 % per minute."""
    import arch

    monkeypatch.setattr(arch, "arch_model", lambda *a, **k: _Model(0.0))
    assert estimate_volatility(rising(10), threshold_pct=0.1, min_returns=2) == (
        VolatilityEstimate(0.0, False, 10, "ok")
    )
    monkeypatch.setattr(arch, "arch_model", lambda *a, **k: _Model(0.25))
    assert vol.garch_one_step_std(np.ones(10)) == 0.5


def test_the_fitted_model_is_constant_mean_garch_1_1_normal_unscaled(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """SPEC §13.1's model, whatever the spelling of its options: constant mean, GARCH with
    one ARCH and one GARCH lag (no asymmetry), Normal errors, the data not rescaled (so
    the forecast stays in % per minute even for very quiet returns); the fit prints nothing.
    """
    import arch
    from arch.univariate import GARCH, ConstantMean, Normal

    built: list[object] = []
    real = arch.arch_model

    def spy(*args: object, **kwargs: object) -> object:
        model = real(*args, **kwargs)  # type: ignore[arg-type]
        built.append(model)
        return model

    monkeypatch.setattr(arch, "arch_model", spy)
    rng = np.random.default_rng(11)
    quiet = 0.01 * rng.standard_normal(400)  # variance 1e-4: arch would rescale this
    vol.garch_one_step_std(quiet)
    (model,) = built
    assert isinstance(model, ConstantMean)
    assert isinstance(model.volatility, GARCH)
    assert (model.volatility.p, model.volatility.o, model.volatility.q) == (1, 0, 1)
    assert isinstance(model.distribution, Normal)
    assert model.scale == 1.0
    assert capsys.readouterr().out == ""
