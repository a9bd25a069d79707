"""What the AI sees: closed hourly candles built from 1-minute data, plus derived features.

Only hours that have fully closed are used, so the last hourly volume is a whole hour's
volume (the original fed a partial hour, biasing the volume-recovery ratio low early in
each hour). All feature values are rounded to 4 decimals so the input hash is stable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from coinpilot.domain.candles import Candles

HOUR_S = 3600
PATTERN_WINDOW = 6

Bar = Mapping[str, Any]


@dataclass(frozen=True)
class AiContext:
    bars: list[dict[str, Any]]  # oldest first: timestamp ISO, open, high, low, close, volume
    patterns: dict[str, Any]
    bear: dict[str, float] | None = None
    ma_gap_pct: float | None = None

    @property
    def n_candles(self) -> int:
        return len(self.bars)


def hourly_bars(candles: Candles, now_ts: int, hours: int) -> list[dict[str, Any]]:
    """The last ``hours`` closed hourly buckets (start + 1 h ≤ now) from 1-minute candles."""
    if len(candles) == 0:
        return []
    bucket = candles.ts // HOUR_S * HOUR_S
    keep = bucket + HOUR_S <= now_ts
    if not keep.any():
        return []
    bucket = bucket[keep]
    o, h, lo, c, v = (
        arr[keep]
        for arr in (candles.open, candles.high, candles.low, candles.close, candles.volume)
    )
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    ends = np.r_[starts[1:], len(bucket)] - 1
    bars = [
        {
            "timestamp": datetime.fromtimestamp(int(bucket[s]), UTC).isoformat(),
            "open": float(o[s]),
            "high": float(np.max(h[s : e + 1])),
            "low": float(np.min(lo[s : e + 1])),
            "close": float(c[e]),
            "volume": round(float(np.sum(v[s : e + 1])), 8),
        }
        for s, e in zip(starts, ends, strict=True)
    ]
    return bars[-hours:]


def bear_features(bars: Sequence[Bar], window: int) -> dict[str, float]:
    """Falling-knife and volume-recovery features over the last ``window`` hourly candles."""
    tail = list(bars)[-max(2, window) :]
    if len(tail) < 2:
        return {
            "bear_downtrend_ratio_8h": 0.0,
            "bear_rebound_from_recent_low_pct_8h": 0.0,
            "bear_volume_recovery_ratio_8h": 1.0,
        }
    closes = np.array([float(b["close"]) for b in tail])
    vols = np.array([float(b["volume"]) for b in tail])
    downtrend = float(np.mean(np.diff(closes) < 0))  # two closes or more: one change at least
    low = float(closes.min())
    rebound = (closes[-1] - low) / low * 100 if low > 0 else 0.0
    prev_mean = float(vols[:-1].mean())
    recovery = vols[-1] / prev_mean if prev_mean > 0 else 1.0
    return {
        "bear_downtrend_ratio_8h": round(downtrend, 4),
        "bear_rebound_from_recent_low_pct_8h": round(float(rebound), 4),
        "bear_volume_recovery_ratio_8h": round(float(recovery), 4),
    }


def _streaks(bars: Sequence[Bar]) -> tuple[int, int]:
    """Walk back from the newest candle; stop on a doji or right after a colour change."""
    bear = bull = 0
    for bar in reversed(bars):
        op, cl = float(bar["open"]), float(bar["close"])
        if cl < op:
            bear += 1
            if bull:
                break
        elif cl > op:
            bull += 1
            if bear:
                break
        else:
            break
    return bear, bull


def _numeric(bar: Bar) -> bool:
    try:
        return all(np.isfinite(float(bar[k])) for k in ("open", "high", "low", "close"))
    except (KeyError, TypeError, ValueError):
        return False


def pattern_features(bars: Sequence[Bar]) -> dict[str, Any]:
    """Shape of the last six hourly candles: direction, streaks, last candle's anatomy."""
    tail = [b for b in list(bars)[-PATTERN_WINDOW:] if _numeric(b)]
    if len(tail) < 2:
        return {
            "pattern_direction": "FLAT",
            "net_change_pct_6h": 0.0,
            "bearish_streak_6h": 0,
            "bullish_streak_6h": 0,
            "last_body_to_range": 0.0,
            "last_upper_wick_to_range": 0.0,
            "last_lower_wick_to_range": 0.0,
            "range_expansion_ratio_6h": 1.0,
        }
    first, last = float(tail[0]["close"]), tail[-1]
    net = (float(last["close"]) - first) / first * 100 if first else 0.0
    direction = "UP" if net > 0.2 else "DOWN" if net < -0.2 else "FLAT"
    bear, bull = _streaks(tail)
    ranges = [max(float(b["high"]) - float(b["low"]), 1e-9) for b in tail]
    op, hi, lo, cl = (float(last[k]) for k in ("open", "high", "low", "close"))
    rng = ranges[-1]
    earlier = float(np.mean(ranges[:-1]))  # > 0: every range is at least 1e-9
    return {
        "pattern_direction": direction,
        "net_change_pct_6h": round(net, 4),
        "bearish_streak_6h": bear,
        "bullish_streak_6h": bull,
        "last_body_to_range": round(abs(cl - op) / rng, 4),
        "last_upper_wick_to_range": round((hi - max(op, cl)) / rng, 4),
        "last_lower_wick_to_range": round((min(op, cl) - lo) / rng, 4),
        "range_expansion_ratio_6h": round(rng / earlier, 4),
    }


def build_context(
    candles: Candles,
    now_ts: int,
    regime: str,
    *,
    hours: int = 24,
    bear_window: int = 8,
    ma_gap_pct: float | None = None,
) -> AiContext:
    """The complete AI context for one entry candidate (BEAR features only in BEAR)."""
    bars = hourly_bars(candles, now_ts, hours)
    return AiContext(
        bars=bars,
        patterns=pattern_features(bars),
        bear=bear_features(bars, bear_window) if regime == "BEAR" else None,
        ma_gap_pct=None if ma_gap_pct is None else round(float(ma_gap_pct), 4),
    )
