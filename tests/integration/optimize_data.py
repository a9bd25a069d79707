"""Synthetic histories and configs for the parameter-search tests.

``planted``: a repeating four-hour cycle. A sharp dip pushes RSI7 under the entry trigger,
the next candles recover it (an entry), then the price rises 4 % above the recovery's last
close and falls 10 % from that peak before climbing back to its base (a second dip and
recovery: another entry, which any take-profit under about 7 % closes in profit). The first
trade of a cycle buys a little above that close (the next candle, plus slippage), so it
reaches its take-profit only below about 3.8 %; above, its stop loss (5 %) closes it at a
loss. Per cycle a take-profit p under 3.8 % makes about 2p, one above it about p − 5 %, at
most 3 % at the top of the searched range (8 %). So every p in [2 %, 3.8 %) is truly
better than every p outside it, in and out of sample, and the best is just under 3.8 %.

``noise``: a driftless Gaussian random walk, with fees and slippage set to zero in its
config: no parameter can have an edge there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[2]
START = 1_704_067_200  # 2024-01-01 00:00 UTC
CYCLE = 240  # minutes
PEAK = 0.04  # rise after the entry candle's close, as a fraction of it
EDGE = (0.02, 0.038)  # the take-profits that beat every other in the searched range


def _cycle(base: float) -> np.ndarray:
    flat = np.full(20, base)
    dip = base * (1.0 - 0.02 * np.arange(1, 9) / 8)  # 2 % down in 8 minutes
    low = dip[-1]
    # the recovery candles: RSI7 back over the trigger, the entry comes on one of these
    rec = low * np.array([1.001, 1.002, 1.003])
    entry = rec[-1]
    up = np.linspace(entry, entry * (1 + PEAK), 61)[1:]
    down = np.linspace(up[-1], up[-1] * 0.90, 61)[1:]
    back = np.linspace(down[-1], base, CYCLE - 20 - 8 - 3 - 120 + 1)[1:]
    out = np.concatenate([flat, dip, rec, up, down, back])
    assert len(out) == CYCLE
    return out


def planted_closes(days: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cycles = int(days * 1440 / CYCLE)
    closes = np.concatenate([_cycle(100_000.0) for _ in range(cycles)])
    # a little noise so indicators are never exactly flat; far below the planted moves
    return closes * (1.0 + rng.normal(0.0, 2e-5, len(closes)))


def noise_closes(days: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(days * 1440)
    return 100_000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.0015, n)))


def write_csv(path: Path, closes: np.ndarray, symbol: str = "KRW-SYN") -> Path:
    """Candles in the shared CSV format, one a minute from START."""
    lines = ["symbol,ts_utc,open,high,low,close,volume,value_krw"]
    prev = closes[0]
    for i, c in enumerate(closes):
        ts = np.datetime64(START + 60 * i, "s").astype(str) + "Z"
        hi, lo = max(prev, c) * 1.0001, min(prev, c) * 0.9999
        lines.append(f"{symbol},{ts},{prev:.4f},{hi:.4f},{lo:.4f},{c:.4f},1.0,")
        prev = c
    path.write_text("\n".join(lines) + "\n")
    return path


def shipped() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "config" / "coinpilot.yaml").read_text())


def simple_entry_config(path: Path, **fills: str) -> Path:
    """The shipped config with a SIDEWAYS entry on the RSI7 dip-and-recover alone and exits
    only by take-profit, stop loss or time (trailing stop and RSI exit out of reach)."""
    data = shipped()
    side = data["regimes"]["SIDEWAYS"]
    side["entry"] = {
        "rsi_14_max": 100, "rsi_7_trigger": 30, "rsi_7_recover": 30,
        "rsi_7_recovery_lookback": 5, "ma_condition": "none", "bb_enabled": False,
    }  # fmt: skip
    side["exit"] = {
        "take_profit_pct": 0.03, "stop_loss_pct": 0.05, "trailing_stop_pct": 0.5,
        "trailing_stop_activation_pct": 1.0, "rsi_overbought": 100,
        "rsi_exit_min_profit_pct": 1.0, "time_limit_hours": 100,
    }  # fmt: skip
    data["risk"]["max_daily_trades"] = 50
    data["fills"].update(fills)
    path.write_text(yaml.safe_dump(data))
    return path


def space_file(path: Path, parameters: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump({"parameters": parameters}))
    return path
