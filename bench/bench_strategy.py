"""Strategy-core figures: the live loop's batched indicators + entry rules, the whole-history
signal pass, and the indicator maths against TA-Lib on the same arrays.

Inputs are real candles (the BTCUSDT 1-minute month of the shared data) cut into 200
symbols × 200 candles, or repeated into a year of 525,600 minutes. Each figure is the best
of several runs on a warm process; loading the data is not timed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from coinpilot.config import AppConfig, load_config
from coinpilot.domain import indicators as ind
from coinpilot.domain.candles import Candles
from coinpilot.domain.regime import regime_over_history
from coinpilot.domain.signals import entry_signals
from coinpilot.domain.snapshot import (
    IndicatorParams,
    IndicatorSnapshot,
    compute_snapshot,
    compute_snapshots,
)
from coinpilot.domain.strategy import evaluate_entry

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("COINPILOT_DATA_DIR", ROOT.parent / "shared" / "data"))
SOURCE = "binance_BTCUSDT_1m_2024-02-01_2024-02-29.csv"
SYMBOLS, WINDOW, YEAR = 200, 200, 525_600
CYCLE = ("BULL", "SIDEWAYS", "BEAR")


def _best_ms(func: Callable[[], object], runs: int) -> float:
    func()
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - started)
    return best * 1000.0


def _load() -> tuple[Candles, str]:
    path = DATA / SOURCE
    if not path.is_file():
        rng = np.random.default_rng(0)
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, 41_760)))
        ts = np.arange(len(close), dtype=np.int64) * 60
        return Candles("SYN", ts, close, close, close, close, rng.gamma(2.0, 5.0, len(close))), (
            "synthetic random walk (shared data absent)"
        )
    frame = pd.read_csv(path, usecols=["ts_utc", "open", "high", "low", "close", "volume"])
    ts = pd.to_datetime(frame["ts_utc"], utc=True).astype("int64").to_numpy() // 10**9
    cols = [frame[k].to_numpy(dtype=np.float64) for k in ("open", "high", "low", "close")]
    return Candles("KRW-BTC", ts, *cols, frame["volume"].to_numpy(np.float64)), SOURCE


def _batch(base: Candles) -> list[Candles]:
    step = (len(base) - WINDOW) // SYMBOLS
    return [base.slice(i * step, i * step + WINDOW) for i in range(SYMBOLS)]


def _year(base: Candles) -> Candles:
    times = -(-YEAR // len(base))
    span = int(base.ts[-1] - base.ts[0]) + 60
    ts = np.concatenate([base.ts + k * span for k in range(times)])
    cols = [np.tile(a, times)[:YEAR] for a in (base.open, base.high, base.low, base.close)]
    return Candles(base.symbol, ts[:YEAR], *cols, np.tile(base.volume, times)[:YEAR])


def _live_fast(batch: list[Candles], app: AppConfig) -> None:
    regimes = [CYCLE[i % 3] for i in range(len(batch))]
    params = [IndicatorParams.for_regime(r, app.regimes) for r in regimes]
    snaps = compute_snapshots(batch, params, WINDOW)
    for snap, regime in zip(snaps, regimes, strict=True):
        evaluate_entry(snap, regime, app.regimes)


def _live_unbatched(batch: list[Candles], app: AppConfig) -> None:
    for i, c in enumerate(batch):
        regime = CYCLE[i % 3]
        snap = compute_snapshot(c, IndicatorParams.for_regime(regime, app.regimes), WINDOW)
        evaluate_entry(snap, regime, app.regimes)


def _pandas_rsi(close: pd.Series, n: int) -> pd.Series:
    delta = close.diff().fillna(0.0)
    gain = delta.clip(lower=0.0).ewm(alpha=1 / n, adjust=False, min_periods=n).mean()
    loss = (-delta).clip(lower=0.0).ewm(alpha=1 / n, adjust=False, min_periods=n).mean()
    return 100 - 100 / (1 + gain / loss)


def _pandas_snapshot(c: Candles, p: IndicatorParams) -> IndicatorSnapshot:
    """The original's shape: one DataFrame per symbol, pandas rolling/ewm per indicator."""
    df = pd.DataFrame({"close": c.close, "volume": c.volume})
    rsi7 = _pandas_rsi(df["close"], p.rsi_short_period)
    mid = df["close"].rolling(p.bb_period).mean()
    lower = mid - p.bb_std * df["close"].rolling(p.bb_period).std()
    avg_vol = df["volume"].rolling(p.volume_period).mean().shift(1)
    ratios = (df["volume"] / avg_vol).fillna(0.0)
    pairs = (
        pd.DataFrame({"close": df["close"], "lower": lower}).dropna().iloc[-p.bb_touch_lookback :]
    )
    s = p.bb_recovery_sustain_candles
    touch = bool((pairs["close"].iloc[:-s] <= pairs["lower"].iloc[:-s]).any()) and bool(
        (pairs["close"].iloc[-s:] > pairs["lower"].iloc[-s:]).all()
    )
    return IndicatorSnapshot(
        c.symbol, int(c.ts[-1]), len(c), float(c.close[-1]), float(c.volume[-1]),
        float(_pandas_rsi(df["close"], p.rsi_period).iloc[-1]), float(rsi7.iloc[-1]),
        float(rsi7.iloc[-2]), float(rsi7.iloc[-p.rsi_7_recovery_lookback :].min()),
        float(df["close"].rolling(p.ma_period).mean().iloc[-1]), float(lower.iloc[-1]),
        float(mid.iloc[-1]), float(2 * mid.iloc[-1] - lower.iloc[-1]),
        float(ratios.iloc[-1]), tuple(ratios.iloc[-5:]), touch, p,
    )  # fmt: skip


def _live_pandas(batch: list[Candles], app: AppConfig) -> None:
    for i, c in enumerate(batch):
        regime = CYCLE[i % 3]
        snap = _pandas_snapshot(c, IndicatorParams.for_regime(regime, app.regimes))
        evaluate_entry(snap, regime, app.regimes)


def _talib_figures(year: Candles, batch: list[Candles]) -> list[dict[str, object]]:
    try:
        import talib  # type: ignore[import-not-found]
    except Exception as exc:  # any import failure makes the figure unavailable, not the run
        note = f"TA-Lib unavailable: {type(exc).__name__}: {exc}"
        return [{"figure": "TA-Lib comparison", "value": 0, "unit": "unavailable", "note": note}]
    close = np.ascontiguousarray(year.close)
    stack = np.stack([c.close for c in batch])
    pairs = [
        ("RSI(14) 525,600", lambda: ind.rsi(close, 14), lambda: talib.RSI(close, 14)),
        ("BBANDS(20, 2) 525,600", lambda: ind.bollinger(close, 20, 2.0),
         lambda: talib.BBANDS(close, 20, 2.0, 2.0)),
        ("RSI(14) 200x200", lambda: ind.rsi(stack, 14),
         lambda: [talib.RSI(row, 14) for row in stack]),
        ("BBANDS(20, 2) 200x200", lambda: ind.bollinger(stack, 20, 2.0),
         lambda: [talib.BBANDS(row, 20, 2.0, 2.0) for row in stack]),
    ]  # fmt: skip
    out: list[dict[str, object]] = []
    for name, ours, theirs in pairs:
        mine, ref = _best_ms(ours, 7), _best_ms(theirs, 7)
        out.append({"figure": f"{name}: coinpilot", "value": round(mine, 3), "unit": "ms"})
        out.append({"figure": f"{name}: TA-Lib", "value": round(ref, 3), "unit": "ms"})
        out.append({
            "figure": f"{name}: coinpilot / TA-Lib", "value": round(mine / ref, 2), "unit": "x",
            "note": "TA-Lib's RSI seeds with an SMA and its BBANDS uses population std, so "
                    "only the cost is compared, not the values",
        })  # fmt: skip
    return out


def run() -> list[dict[str, object]]:
    app = load_config(environ={}).app
    base, source = _load()
    batch, year = _batch(base), _year(base)
    fast = _best_ms(lambda: _live_fast(batch, app), 30)
    slow = _best_ms(lambda: _live_pandas(batch, app), 3)
    single = _best_ms(lambda: _live_unbatched(batch, app), 5)
    det = app.regime_detection
    regimes = regime_over_history(year, det, app.schedules.regime_minute)
    history = _best_ms(lambda: entry_signals(year, regimes, app.regimes), 3)
    one = _best_ms(lambda: entry_signals(year, "SIDEWAYS", app.regimes), 3)
    regime_ms = _best_ms(lambda: regime_over_history(year, det, app.schedules.regime_minute), 3)
    figures: list[dict[str, object]] = [
        {"figure": "indicators+entry 200 symbols x 200 candles", "value": round(fast, 2),
         "unit": "ms", "target": "<= 10", "note": f"batched numpy; data: {source}"},
        {"figure": "indicators+entry 200x200, one compute_snapshot per symbol",
         "value": round(single, 1), "unit": "ms", "note": "unbatched numpy, for comparison"},
        {"figure": "indicators+entry 200x200, per-symbol pandas", "value": round(slow, 1),
         "unit": "ms", "note": "the original's shape, same rules"},
        {"figure": "indicators+entry 200x200 speed-up vs pandas", "value": round(slow / fast, 1),
         "unit": "x", "target": ">= 50"},
        {"figure": "whole-history signal pass 525,600 candles", "value": round(history, 1),
         "unit": "ms", "target": "<= 1000",
         "note": "hourly regimes: all three regimes' rules evaluated"},
        {"figure": "whole-history signal pass 525,600, one regime", "value": round(one, 1),
         "unit": "ms", "target": "<= 1000"},
        {"figure": "regime over history 525,600 candles", "value": round(regime_ms, 1),
         "unit": "ms"},
    ]  # fmt: skip
    return figures + _talib_figures(year, batch)


if __name__ == "__main__":
    for fig in run():
        print(fig)
