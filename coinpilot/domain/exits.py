"""Exit rules for an open position (SPEC §7), pure: prices, times and config come in.

``evaluate_exit(...) -> ExitDecision(reason, new_hwm, pnl_pct, params)`` checks, in order:

1. ``STOP_LOSS``: pnl ≤ −stop_loss_pct. ``new_hwm`` stays None: the exit price never
   becomes the high-water mark.
2. ``TRAILING_STOP``: HWM = max(stored HWM or avg price, close); active once HWM is at least
   ``trailing_stop_activation_pct`` above the average price; fires when
   close ≤ HWM × (1 − trailing_stop_pct).
3. ``TAKE_PROFIT``: pnl ≥ take_profit_pct.
4. ``RSI_OVERBOUGHT``: RSI14 > rsi_overbought (strict) and pnl ≥ rsi_exit_min_profit_pct.
5. ``TIME_LIMIT``: now − opened_at > time_limit_hours (strict).

pnl = (close − avg) / avg is computed in Decimal, so boundaries such as exactly −3 % are
exact. Thresholds come from the effective parameters of §7.1: the entry regime's, or, after
a regime change, the current regime's with the tighter of the two stop losses; a regime
that is not configured (UNKNOWN, None) reads as SIDEWAYS. ``close=None`` (no fresh price)
evaluates the time limit only, since exits never wait on data (DECISIONS).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from coinpilot.config import ExitParams, RegimeParams

EXIT_REASONS = ("STOP_LOSS", "TRAILING_STOP", "TAKE_PROFIT", "RSI_OVERBOUGHT", "TIME_LIMIT")
FALLBACK_REGIME = "SIDEWAYS"


@dataclass(frozen=True, slots=True)
class ExitDecision:
    """``reason`` is one of EXIT_REASONS or None; ``new_hwm`` is None when not to be stored."""

    reason: str | None
    new_hwm: Decimal | None
    pnl_pct: float | None  # fraction, 0.01 = +1 %; None without a price
    params: ExitParams

    @property
    def should_exit(self) -> bool:
        return self.reason is not None


def _dec(value: Decimal | float | int) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"price must be finite, got {value!r}")
    # repr gives the shortest decimal that round-trips, so 97.0 stays 97.0 (not 96.99…).
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def effective_exit_params(
    entry_regime: str | None, current_regime: str | None, regimes: Mapping[str, RegimeParams]
) -> ExitParams:
    """SPEC §7.1: the entry regime's exits, or after a change the current one's, tighter SL."""
    fallback = regimes[FALLBACK_REGIME]
    entry_cfg = regimes.get(entry_regime or "", fallback).exit
    if current_regime is None or current_regime == entry_regime:
        return entry_cfg
    cur_cfg = regimes.get(current_regime, fallback).exit
    tighter = min(entry_cfg.stop_loss_pct, cur_cfg.stop_loss_pct)
    return cur_cfg.model_copy(update={"stop_loss_pct": tighter})


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def _time_limit(opened_at: datetime | None, now: datetime, p: ExitParams) -> bool:
    if opened_at is None:
        return False
    return _aware(now) - _aware(opened_at) > timedelta(hours=p.time_limit_hours)


def _frac(value: float) -> Decimal:
    return Decimal(repr(float(value)))


def evaluate_exit(
    *,
    avg_price: Decimal | float,
    opened_at: datetime | None,
    entry_regime: str | None,
    hwm: Decimal | float | None,
    close: Decimal | float | None,
    rsi14: float | None,
    current_regime: str | None,
    regimes: Mapping[str, RegimeParams],
    now: datetime,
) -> ExitDecision:
    """Whether to close the position now, and the high-water mark to keep (SPEC §7)."""
    p = effective_exit_params(entry_regime, current_regime, regimes)
    avg = _dec(avg_price)
    if avg == 0:
        return ExitDecision(None, None, None, p)
    if close is None:
        reason = "TIME_LIMIT" if _time_limit(opened_at, now, p) else None
        return ExitDecision(reason, None, None, p)
    price = _dec(close)
    pnl_dec = (price - avg) / avg
    pnl = float(pnl_dec)
    if pnl <= -p.stop_loss_pct:
        return ExitDecision("STOP_LOSS", None, pnl, p)
    stored = avg if hwm is None else _dec(hwm)
    activation = _frac(p.trailing_stop_activation_pct)
    active = (stored - avg) / avg >= activation or pnl_dec >= activation
    new_hwm = max(stored, price)
    if active and price <= new_hwm * (1 - _frac(p.trailing_stop_pct)):
        return ExitDecision("TRAILING_STOP", new_hwm, pnl, p)
    reason = _later_checks(pnl, rsi14, opened_at, now, p)
    return ExitDecision(reason, new_hwm, pnl, p)


def _later_checks(
    pnl: float, rsi14: float | None, opened_at: datetime | None, now: datetime, p: ExitParams
) -> str | None:
    if pnl >= p.take_profit_pct:
        return "TAKE_PROFIT"
    # A NaN or zero RSI is "not there", as in the original's truthiness test.
    rsi_ok = rsi14 is not None and not math.isnan(rsi14) and rsi14 != 0
    if rsi_ok and rsi14 > p.rsi_overbought and pnl >= p.rsi_exit_min_profit_pct:  # type: ignore[operator]
        return "RSI_OVERBOUGHT"
    if _time_limit(opened_at, now, p):
        return "TIME_LIMIT"
    return None
