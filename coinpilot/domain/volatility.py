"""Next-minute volatility from a GARCH(1,1) fit (SPEC §13.1), per symbol.

Returns are percent log returns of consecutive closes; the model has a constant mean,
GARCH(1, 1) variance and Normal errors, and is fitted without automatic rescaling so the
forecast stays in "% per minute". The answer is the square root of the one-step-ahead
conditional variance. Too few returns or a failed fit give 0.0, which is never "high".
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

Status = Literal["ok", "too_few_returns", "fit_failed"]


@dataclass(frozen=True)
class VolatilityEstimate:
    volatility_pct: float
    is_high: bool
    returns: int
    status: Status


def log_returns_pct(close: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """100 × ln(P_t / P_{t-1}); non-positive or non-finite prices are dropped first."""
    prices = np.asarray(close, dtype=np.float64)
    prices = prices[np.isfinite(prices) & (prices > 0)]
    if len(prices) < 2:
        return np.empty(0, dtype=np.float64)
    return 100.0 * np.diff(np.log(prices))


def garch_one_step_std(returns: npt.NDArray[np.float64]) -> float:
    """Square root of the one-step-ahead conditional variance; raises if the fit fails."""
    from arch import arch_model  # heavy import, only paid by the volatility job

    model = arch_model(
        returns, mean="Constant", vol="GARCH", p=1, q=1, dist="normal", rescale=False
    )
    # Convergence and scale warnings are expected on quiet minutes; the result is still used.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = model.fit(disp="off", show_warning=False)
        forecast = fitted.forecast(horizon=1, reindex=False)
    variance = float(np.asarray(forecast.variance)[-1, 0])
    if not math.isfinite(variance) or variance < 0:
        raise ValueError(f"GARCH forecast variance is not usable: {variance!r}")
    return math.sqrt(variance)


def estimate_volatility(
    close: npt.ArrayLike, *, threshold_pct: float, min_returns: int
) -> VolatilityEstimate:
    returns = log_returns_pct(close)
    if len(returns) < min_returns:
        return VolatilityEstimate(0.0, False, len(returns), "too_few_returns")
    try:
        vol = garch_one_step_std(returns)
    except Exception:  # SPEC: any fitting error means 0.0; the caller logs the status
        return VolatilityEstimate(0.0, False, len(returns), "fit_failed")
    return VolatilityEstimate(vol, vol > threshold_pct, len(returns), "ok")
