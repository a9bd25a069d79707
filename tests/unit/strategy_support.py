"""Helpers for the strategy-core tests: the shared candle files and pandas reference maths.

The pandas functions restate SPEC §3 independently of coinpilot.domain.indicators, so the
two implementations check each other.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from coinpilot.config import AppConfig, load_config
from coinpilot.domain.candles import Candles


def one_minute_files(data_dir: Path) -> list[Path]:
    files = sorted(data_dir.glob("*_1m_*.csv"))
    assert files, f"no 1-minute candle files in {data_dir}"
    return files


def load_candles(path: Path) -> Candles:
    """A shared CSV (symbol,ts_utc,open,high,low,close,volume,value_krw) as Candles."""
    frame = pd.read_csv(
        path, usecols=["symbol", "ts_utc", "open", "high", "low", "close", "volume"]
    )
    ts = pd.to_datetime(frame["ts_utc"], utc=True).astype("int64") // 1_000_000_000
    return Candles(
        str(frame["symbol"].iloc[0]),
        ts.to_numpy(dtype=np.int64),
        frame["open"].to_numpy(dtype=np.float64),
        frame["high"].to_numpy(dtype=np.float64),
        frame["low"].to_numpy(dtype=np.float64),
        frame["close"].to_numpy(dtype=np.float64),
        frame["volume"].to_numpy(dtype=np.float64),
    )


def shipped_config() -> AppConfig:
    return load_config(environ={}).app


def pd_rsi(close: pd.Series, period: int) -> pd.Series:
    delta = close.diff().fillna(0.0)
    gain = delta.where(delta > 0, 0.0)
    loss = (-delta).where(delta < 0, 0.0)
    avg_gain = gain.ewm(alpha=1.0 / period, adjust=False, min_periods=period).mean()
    avg_loss = loss.ewm(alpha=1.0 / period, adjust=False, min_periods=period).mean()
    return 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)


def pd_bollinger(close: pd.Series, period: int, k: float) -> tuple[pd.Series, ...]:
    mid = close.rolling(period).mean()
    std = close.rolling(period).std(ddof=1)
    return mid - k * std, mid, mid + k * std


def pd_volume_ratios(volume: pd.Series, period: int) -> pd.Series:
    return volume / volume.rolling(period).mean().shift(1)


def pd_touch_recovery(
    close: pd.Series, lower: pd.Series, lookback: int, sustain: int, bb_period: int
) -> bool:
    """SPEC §3 C1 literally, at the last row of the given window."""
    pairs = pd.DataFrame({"close": close, "lower": lower}).iloc[bb_period - 1 :]
    if len(pairs) < max(lookback, sustain + 1):
        return False
    last = pairs.iloc[-lookback:]
    touched = bool((last["close"].iloc[:-sustain] <= last["lower"].iloc[:-sustain]).any())
    recovered = bool((last["close"].iloc[-sustain:] > last["lower"].iloc[-sustain:]).all())
    return touched and recovered
