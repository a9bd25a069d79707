"""The indicator snapshot the live loop evaluates: one symbol, its last ``window`` candles.

``compute_snapshot(candles, params, window)`` takes the last ``window`` (``bot.candle_window``,
200) closed 1-minute candles and returns the values at the newest one. The RSI recursion
starts afresh at the window's first candle (DECISIONS "Indicator window"), so the result
depends only on those candles. ``compute_snapshots`` does the same for many symbols at once
by stacking them into ``(symbols, candles)`` arrays; the answer is identical per symbol.

Some periods come from the current regime's entry parameters (C1): ``ma_period``, the RSI(7)
recovery lookback, the BB touch lookback and sustain. ``IndicatorParams.for_regime`` picks
them, with the defaults (20 / 5 / 30 / 1) for UNKNOWN or an unconfigured regime.

Missing values are NaN (too few candles for that indicator); ``strategy.evaluate_entry``
fails the check that needs a NaN value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from coinpilot.config import EntryParams, RegimeParams
from coinpilot.domain import indicators as ind
from coinpilot.domain.candles import F64, Candles

RECENT_VOL_RATIOS = 5  # how many recent volume ratios a snapshot carries (SPEC §3)
NAN = float("nan")


@dataclass(frozen=True, slots=True)
class IndicatorParams:
    """The periods an indicator snapshot needs; hashable so batches can be grouped by it."""

    rsi_period: int = 14
    rsi_short_period: int = 7
    rsi_7_recovery_lookback: int = 5
    ma_period: int = 20
    bb_period: int = 20
    bb_std: float = 2.0
    bb_touch_lookback: int = 30
    bb_recovery_sustain_candles: int = 1
    volume_period: int = 20
    volume_surge_window: int = 3

    @classmethod
    def from_entry(cls, entry: EntryParams) -> IndicatorParams:
        return cls(
            rsi_period=entry.rsi_period,
            rsi_short_period=entry.rsi_short_period,
            rsi_7_recovery_lookback=max(2, entry.rsi_7_recovery_lookback),
            ma_period=entry.ma_period,
            bb_period=entry.bb_period,
            bb_std=entry.bb_std,
            bb_touch_lookback=entry.bb_touch_lookback,
            bb_recovery_sustain_candles=entry.bb_recovery_sustain_candles,
            volume_period=entry.volume_period,
            volume_surge_window=entry.volume_surge_window,
        )

    @classmethod
    def for_regime(cls, regime: str | None, regimes: Mapping[str, RegimeParams]) -> IndicatorParams:
        """Periods of the regime's entry config; the defaults for UNKNOWN or unconfigured."""
        cfg = regimes.get(regime) if regime is not None else None
        return cls.from_entry(cfg.entry) if cfg is not None else cls()

    @property
    def recent_count(self) -> int:
        return max(RECENT_VOL_RATIOS, self.volume_surge_window)


@dataclass(frozen=True, slots=True)
class IndicatorSnapshot:
    """Indicator values at the newest candle of a window. NaN = not enough candles.

    Prices in the candles' quote currency, RSI in points, volume ratios as multiples.
    ``recent_vol_ratios`` are the newest ratios, oldest first, the current candle last (a
    warm-up NaN reads 0.0, a zero average stays +inf, as the original did).
    """

    symbol: str
    ts: int  # start of the newest candle, epoch seconds UTC
    n_candles: int
    close: float
    volume: float
    rsi14: float
    rsi7: float
    rsi7_prev: float
    rsi7_min_lookback: float
    ma: float
    bb_lower: float
    bb_mid: float
    bb_upper: float
    vol_ratio: float
    recent_vol_ratios: tuple[float, ...]
    bb_touch_recovery: bool
    params: IndicatorParams

    def as_dict(self) -> dict[str, object]:
        """Plain values for status payloads and the AI context (NaN → None)."""
        out: dict[str, object] = {}
        for key, value in asdict(self).items():
            if isinstance(value, float) and value != value:
                value = None
            out[key] = value
        out["recent_vol_ratios"] = list(self.recent_vol_ratios)
        return out


def _tail(arr: F64, count: int) -> F64:
    return arr[:, max(0, arr.shape[1] - count) :]


def _rsi_tail(close: F64, period: int, count: int) -> F64:
    """RSI of the whole window at its last ``count`` candles (NaN during the warm-up)."""
    gains, losses = ind.price_changes(close)
    rows = close.shape[0]
    # One recursion over the gains and losses of every symbol at once.
    both = ind.ewm_recursive(np.concatenate([gains, losses]), 1.0 / period)
    out = ind.rsi_from_averages(_tail(both[:rows], count), _tail(both[rows:], count))
    n = close.shape[1]
    first = n - out.shape[1]
    warm = np.arange(first, n) < period - 1
    out[:, warm] = np.nan
    return out


def _volume_tail(volume: F64, p: IndicatorParams) -> tuple[F64, F64]:
    """(vol_ratio at the newest candle, recent ratios) with SPEC §3's zero-average rules."""
    count = p.recent_count
    ratios = ind.volume_ratios(_tail(volume, count + p.volume_period), p.volume_period)
    ratios = _tail(ratios, count)
    current = ratios[:, -1].copy()
    n = volume.shape[1]
    if n > p.volume_period:
        current[~np.isfinite(current)] = 0.0  # zero previous average → 0.0, not inf
    recent = np.where(np.isnan(ratios), 0.0, ratios)
    return current, recent


def _bands_tail(close: F64, p: IndicatorParams) -> tuple[F64, F64, F64, np.ndarray]:
    # touch_recovery itself needs max(lookback, sustain + 1) band values, so a window with
    # fewer than that (n − bb_period + 1) never shows a touch.
    span = p.bb_touch_lookback + p.bb_period - 1
    tail = _tail(close, span)
    lower, mid, upper = ind.bollinger(tail, p.bb_period, p.bb_std)
    touch = ind.touch_recovery(tail, lower, p.bb_touch_lookback, p.bb_recovery_sustain_candles)[
        :, -1
    ]
    return lower[:, -1], mid[:, -1], upper[:, -1], touch


def snapshot_columns(close: F64, volume: F64, p: IndicatorParams) -> dict[str, np.ndarray]:
    """Snapshot values for a ``(symbols, candles)`` stack: one entry per symbol."""
    lookback = p.rsi_7_recovery_lookback
    rsi7 = _rsi_tail(close, p.rsi_short_period, lookback)
    with np.errstate(invalid="ignore"):
        rsi7_min = np.fmin.reduce(rsi7, axis=1)
    lower, mid, upper, touch = _bands_tail(close, p)
    vol_ratio, recent = _volume_tail(volume, p)
    ma = ind.sma(_tail(close, p.ma_period), p.ma_period)
    return {
        "rsi14": _rsi_tail(close, p.rsi_period, 1)[:, -1],
        "rsi7": rsi7[:, -1],
        "rsi7_prev": rsi7[:, -2] if rsi7.shape[1] >= 2 else np.full(close.shape[0], np.nan),
        "rsi7_min_lookback": rsi7_min,
        "ma": ma[:, -1],  # NaN with fewer than ma_period candles
        "bb_lower": lower,
        "bb_mid": mid,
        "bb_upper": upper,
        "vol_ratio": vol_ratio,
        "recent": recent,
        "touch": touch,
    }


SCALARS = (
    "rsi14", "rsi7", "rsi7_prev", "rsi7_min_lookback", "ma",
    "bb_lower", "bb_mid", "bb_upper", "vol_ratio",
)  # fmt: skip


def _build_all(
    tails: Sequence[Candles], cols: dict[str, np.ndarray], p: IndicatorParams
) -> list[IndicatorSnapshot]:
    """One snapshot per row of ``cols``; values leave numpy as Python floats in bulk."""
    values = [cols[name].tolist() for name in SCALARS]
    recent = cols["recent"].tolist()
    touch = cols["touch"].tolist()
    out = []
    for row, c in enumerate(tails):
        scalars: dict[str, Any] = {
            name: column[row] for name, column in zip(SCALARS, values, strict=True)
        }
        out.append(
            IndicatorSnapshot(
                symbol=c.symbol,
                ts=int(c.ts[-1]),
                n_candles=len(c),
                close=float(c.close[-1]),
                volume=float(c.volume[-1]),
                recent_vol_ratios=tuple(recent[row]),
                bb_touch_recovery=touch[row],
                params=p,
                **scalars,
            )
        )
    return out


def _params(params: IndicatorParams | EntryParams | None) -> IndicatorParams:
    if params is None:
        return IndicatorParams()
    if isinstance(params, EntryParams):
        return IndicatorParams.from_entry(params)
    return params


def compute_snapshot(
    candles: Candles, params: IndicatorParams | EntryParams | None = None, window: int = 200
) -> IndicatorSnapshot:
    """Indicators at the newest candle from the last ``window`` candles (at least one)."""
    if len(candles) == 0:
        raise ValueError(f"no candles for {candles.symbol}")
    tail = candles.tail(window)
    p = _params(params)
    cols = snapshot_columns(tail.close[None, :], tail.volume[None, :], p)
    return _build_all([tail], cols, p)[0]


def compute_snapshots(
    batch: Sequence[Candles],
    params: IndicatorParams | EntryParams | Sequence[IndicatorParams | None] | None = None,
    window: int = 200,
) -> list[IndicatorSnapshot]:
    """``compute_snapshot`` for many symbols at once, in input order.

    ``params`` is one set for all symbols or one per symbol (their regimes may differ).
    Symbols sharing parameters and window length are computed as one 2-D stack.
    """
    if isinstance(params, Sequence):
        per = [_params(p) for p in params]
        if len(per) != len(batch):
            raise ValueError("params must have one entry per symbol")
    else:
        per = [_params(params)] * len(batch)
    tails = [c if len(c) <= window else c.tail(window) for c in batch]
    groups: dict[tuple[IndicatorParams, int], list[int]] = {}
    for i, (tail, p) in enumerate(zip(tails, per, strict=True)):
        if len(tail) == 0:
            raise ValueError(f"no candles for {tail.symbol}")
        groups.setdefault((p, len(tail)), []).append(i)
    out: list[IndicatorSnapshot | None] = [None] * len(batch)
    for (p, _n), members in groups.items():
        close = np.stack([tails[i].close for i in members])
        volume = np.stack([tails[i].volume for i in members])
        cols = snapshot_columns(close, volume, p)
        built = _build_all([tails[i] for i in members], cols, p)
        for i, snap in zip(members, built, strict=True):
            out[i] = snap
    return [s for s in out if s is not None]
