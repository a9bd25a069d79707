"""Real candle files aligned to one start, mapped to KRW symbols, for replays."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from coinpilot.adapters.csvdata import read_csv
from coinpilot.adapters.marketdata import CandleRow

BASE = datetime(2025, 1, 1, tzinfo=UTC)
FILES = {
    "KRW-AVAX": "binance_AVAXUSDT_1m_2025-02-01_2025-02-28.csv",  # downtrend
    "KRW-BTC": "binance_BTCUSDT_1m_2024-02-01_2024-02-29.csv",  # uptrend
    "KRW-ETH": "binance_ETHUSDT_1m_2025-12-18_2025-12-29.csv",  # range
}


def aligned_rows(data_dir: Path, symbols: list[str]) -> dict[str, list[CandleRow]]:
    """Each file shifted so its first candle starts at BASE (the files cover other months)."""
    out = {}
    for sym in symbols:
        rows = read_csv(data_dir / FILES[sym], sym)
        shift = BASE - rows[0].ts
        out[sym] = [r._replace(ts=r.ts + shift) for r in rows]
    return out
