"""Entry and exit rules (SPEC §6, §7): one evaluator for the trade decision and its status text.

Live use, once per symbol and minute::

    params = IndicatorParams.for_regime(regime, cfg.regimes)
    snap = compute_snapshot(candles, params, window=cfg.bot.candle_window)
    decision = evaluate_entry(snap, regime, cfg.regimes, min_candles=cfg.bot.min_candles)
    decision.passed, decision.reason_code, decision.status_text(regime)

``evaluate_entry`` runs SPEC §6.1's C1 checks in order and stops at the first failure:
insufficient data, regime (UNKNOWN or unconfigured), RSI14 ≤ max, RSI7 oversold within the
lookback then recovered, RSI7 bounce size, MA filter, BB floor, volume ratio, volume floor,
volume surge, SIDEWAYS BB touch-recovery. A NaN or missing input fails the check that
needs it (a NaN RSI never passes). ``reason_code`` is one of ``ENTRY_CODES``; the texts are
SPEC §6.3's, in English. ``signals.entry_signals`` reproduces this over a whole history.

``evaluate_exit`` (from ``exits``) applies SPEC §7: stop loss, trailing stop, take profit,
RSI overbought, time limit, with the regime-change rules of §7.1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from coinpilot.config import EntryParams, RegimeParams
from coinpilot.domain.exits import EXIT_REASONS, ExitDecision, effective_exit_params, evaluate_exit
from coinpilot.domain.snapshot import (
    IndicatorParams,
    IndicatorSnapshot,
    compute_snapshot,
    compute_snapshots,
)

__all__ = [
    "ENTRY_CODES",
    "EXIT_REASONS",
    "EntryDecision",
    "ExitDecision",
    "IndicatorParams",
    "IndicatorSnapshot",
    "compute_snapshot",
    "compute_snapshots",
    "effective_exit_params",
    "evaluate_entry",
    "evaluate_exit",
]

PASSED = "passed"
# Every outcome of evaluate_entry, in check order; signals.py stores the index of one of these.
ENTRY_CODES: tuple[str, ...] = (
    PASSED,
    "insufficient_data",
    "regime_unknown",
    "regime_not_configured",
    "rsi14_missing",
    "rsi14_above_max",
    "rsi7_missing",
    "rsi7_not_oversold",
    "rsi7_no_rebound",
    "rsi7_bounce_too_small",
    "ma_missing",
    "price_below_ma",
    "price_below_ma_proximity",
    "bb_missing",
    "price_below_bb_lower",
    "volume_missing",
    "volume_below_ratio",
    "volume_below_min",
    "volume_surge",
    "bb_touch_recovery_pending",
)
CODE_INDEX = {code: i for i, code in enumerate(ENTRY_CODES)}
DEFAULT_MIN_CANDLES = 40


@dataclass(frozen=True, slots=True)
class EntryDecision:
    """Outcome of the entry rules: the decision and the words shown to the operator."""

    passed: bool
    reason_code: str
    text: str
    checks_passed: tuple[str, ...]

    def status_text(self, regime: str | None) -> str:
        """The dashboard line (SPEC §5.1): '[R] reason', or the passed-check list."""
        if self.reason_code in ("insufficient_data", "regime_unknown"):
            return self.text
        if not self.passed:
            return f"[{regime}] {self.text}"
        lines = [f"✅ [{regime}] entry conditions met! waiting for AI…", *self.checks_passed]
        return "\n".join(lines)


def _missing(*values: float | None) -> bool:
    return any(v is None or math.isnan(v) for v in values)


def _fail(code: str, text: str, checks: list[str]) -> EntryDecision:
    return EntryDecision(False, code, text, tuple(checks))


def _num(value: float) -> str:
    return f"{value:g}"


def _resolve(
    regime: str | None, params: RegimeParams | EntryParams | Mapping[str, RegimeParams]
) -> EntryParams | None:
    if isinstance(params, EntryParams):
        return params
    if isinstance(params, RegimeParams):
        return params.entry
    cfg = params.get(regime) if regime is not None else None
    return cfg.entry if cfg is not None else None


def evaluate_entry(
    snap: IndicatorSnapshot,
    regime: str | None,
    params: RegimeParams | EntryParams | Mapping[str, RegimeParams],
    *,
    min_candles: int = DEFAULT_MIN_CANDLES,
    regime_hours_needed: int = 200,
) -> EntryDecision:
    """Entry rules at the snapshot's candle for ``regime`` (SPEC §6.1, C1).

    ``params`` is the regime's parameters or the whole ``AppConfig.regimes`` mapping;
    ``min_candles`` is ``bot.min_candles`` and ``regime_hours_needed`` only shapes the
    UNKNOWN text. The snapshot must have been computed with this regime's periods
    (``IndicatorParams.for_regime``).
    """
    if snap.n_candles < min_candles:
        return _fail("insufficient_data", f"data insufficient: {snap.n_candles} lines", [])
    if regime is None or regime == "UNKNOWN":
        days = regime_hours_needed / 24
        text = f"collecting data: waiting for regime (~{days:.1f} days needed)"
        return _fail("regime_unknown", text, [])
    entry = _resolve(regime, params)
    if entry is None:
        return _fail("regime_not_configured", "config load failed", [])
    checks = [f"Market Regime: {regime}"]
    for step in (_rsi14, _rsi7, _bounce, _ma, _bb_floor, _volume, _surge):
        failure = step(snap, entry, checks)
        if failure is not None:
            return failure
    if regime == "SIDEWAYS" and entry.bb_enabled:
        if not snap.bb_touch_recovery:
            text = "waiting for BB touch recovery: touch-and-return not confirmed"
            return _fail("bb_touch_recovery_pending", text, checks)
        checks.append("✓ BB touch recovery confirmed")
    checks.append("✓ all conditions passed")
    return EntryDecision(True, PASSED, "entry conditions met", tuple(checks))


def _rsi14(snap: IndicatorSnapshot, e: EntryParams, checks: list[str]) -> EntryDecision | None:
    if _missing(snap.rsi14):
        return _fail("rsi14_missing", "RSI14 data missing", checks)
    if snap.rsi14 > e.rsi_14_max:
        text = f"watching: RSI14({snap.rsi14:.1f}) > {_num(e.rsi_14_max)}"
        return _fail("rsi14_above_max", text, checks)
    checks.append(f"✓ RSI14({snap.rsi14:.1f}) ≤ {_num(e.rsi_14_max)}")
    return None


def _rsi7(snap: IndicatorSnapshot, e: EntryParams, checks: list[str]) -> EntryDecision | None:
    if _missing(snap.rsi7, snap.rsi7_prev, snap.rsi7_min_lookback):
        return _fail("rsi7_missing", "RSI7 data insufficient", checks)
    low, n = snap.rsi7_min_lookback, snap.params.rsi_7_recovery_lookback
    if not low < e.rsi_7_trigger:
        text = (
            f"waiting for oversold: last {n} candles RSI7 min({low:.1f}) ≥ {_num(e.rsi_7_trigger)}"
        )
        return _fail("rsi7_not_oversold", text, checks)
    if not snap.rsi7 >= e.rsi_7_recover:
        text = (
            f"waiting for bounce: RSI7({snap.rsi7:.1f}) needs ≥ {_num(e.rsi_7_recover)} "
            f"(recent min: {low:.1f})"
        )
        return _fail("rsi7_no_rebound", text, checks)
    checks.append(
        f"✓ RSI7 min({low:.1f}) oversold(<{_num(e.rsi_7_trigger)}) then "
        f"bounce({snap.rsi7:.1f} ≥ {_num(e.rsi_7_recover)}) confirmed"
    )
    return None


def _bounce(snap: IndicatorSnapshot, e: EntryParams, checks: list[str]) -> EntryDecision | None:
    if e.min_rsi_7_bounce_pct is None:
        return None
    bounce = snap.rsi7 - snap.rsi7_min_lookback
    if not bounce >= e.min_rsi_7_bounce_pct:
        text = f"bounce too small: RSI7 bounce {bounce:.1f} pt < {_num(e.min_rsi_7_bounce_pct)} pt"
        return _fail("rsi7_bounce_too_small", text, checks)
    checks.append(f"✓ RSI7 bounce sufficient ({bounce:.1f} pt)")
    return None


def _ma(snap: IndicatorSnapshot, e: EntryParams, checks: list[str]) -> EntryDecision | None:
    if _missing(snap.ma, snap.close):
        return _fail("ma_missing", "MA/price data insufficient", checks)
    period = snap.params.ma_period
    if e.ma_condition == "crossover":
        if not snap.close > snap.ma:
            return _fail("price_below_ma", f"waiting for trend: price ≤ MA{period}", checks)
    elif e.ma_condition in ("proximity", "proximity_or_above"):
        if not snap.close >= snap.ma * e.ma_proximity_pct:
            text = f"waiting for trend: price < MA{period}×{_num(e.ma_proximity_pct)}"
            return _fail("price_below_ma_proximity", text, checks)
    else:
        return None
    checks.append(f"✓ {e.ma_condition} filter passed")
    return None


def _bb_floor(snap: IndicatorSnapshot, e: EntryParams, checks: list[str]) -> EntryDecision | None:
    if not e.require_price_above_bb_lower:
        return None
    if _missing(snap.bb_lower):
        return _fail("bb_missing", "BB data insufficient", checks)
    if not snap.close >= snap.bb_lower:
        return _fail("price_below_bb_lower", "below BB lower: price < BB lower", checks)
    checks.append("✓ above BB lower confirmed")
    return None


def _volume(snap: IndicatorSnapshot, e: EntryParams, checks: list[str]) -> EntryDecision | None:
    bounds = (
        ("volume_below_ratio", "ratio", e.volume_ratio),
        ("volume_below_min", "min", e.volume_min_ratio),
    )
    used = False
    for code, label, bound in bounds:
        if bound is None:
            continue
        if _missing(snap.vol_ratio):
            return _fail("volume_missing", "volume data insufficient", checks)
        if not snap.vol_ratio >= bound:
            text = f"volume insufficient: {snap.vol_ratio:.2f}x < {label} {_num(bound)}x"
            return _fail(code, text, checks)
        used = True
    if used:
        checks.append(f"✓ volume condition passed ({snap.vol_ratio:.2f}x)")
    return None


def _surge(snap: IndicatorSnapshot, e: EntryParams, checks: list[str]) -> EntryDecision | None:
    if not e.volume_surge_check:
        return None
    recent = snap.recent_vol_ratios[-e.volume_surge_window :]
    if any(r >= e.volume_surge_ratio for r in recent):
        return _fail("volume_surge", "volume surge detected: possible panic selling", checks)
    checks.append("✓ no volume surge")
    return None
