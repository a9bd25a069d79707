"""Loading history for a backtest: candle CSV files or the market_data table.

CSV files are read by the shared strict reader (adapters/csvdata.py). A file may be given
as ``PATH`` or ``PATH=SYMBOL`` to trade it under another name (a USDT file as ``KRW-ETH``).
Bad files stop the run with a message naming the file and the problem; nothing is guessed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import numpy as np

from coinpilot.domain.candles import Candles


class DataError(ValueError):
    """The history cannot be used as given; the message says which file and why."""


def parse_spec(spec: str) -> tuple[Path, str | None]:
    path, sep, symbol = spec.partition("=")
    return Path(path), (symbol.strip() or None) if sep else None


def load_csv(spec: str) -> Candles:
    """One 1-minute CSV file as ``Candles``, checked row by row by the shared CSV reader."""
    from coinpilot.adapters.csvdata import CsvFormatError, load_candles

    path, rename = parse_spec(spec)
    try:
        candles = load_candles(path, rename)
    except CsvFormatError as exc:
        raise DataError(str(exc)) from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror}") from None
    if len(candles) == 0:
        raise DataError(f"{path}: no candles")
    return candles


def load_csvs(specs: Sequence[str]) -> dict[str, Candles]:
    out: dict[str, Candles] = {}
    for spec in specs:
        c = load_csv(spec)
        if c.symbol in out:
            raise DataError(f"symbol {c.symbol} given twice; rename one with PATH=SYMBOL")
        out[c.symbol] = c
    return out


def shifted(c: Candles, symbol: str, offset_s: int) -> Candles:
    """The same candles under another symbol, moved in time (benchmarks, multi-symbol tests)."""
    return Candles(symbol, c.ts + offset_s, c.open, c.high, c.low, c.close, c.volume)


def repeated(c: Candles, times: int) -> Candles:
    """``times`` copies back to back, each shifted past the previous (a long series)."""
    span = int(c.ts[-1] - c.ts[0]) + 60
    ts = np.concatenate([c.ts + k * span for k in range(times)])
    cat = [np.tile(a, times) for a in (c.open, c.high, c.low, c.close, c.volume)]
    return Candles(c.symbol, ts, *cat)


async def load_db(
    pool: object, symbols: Sequence[str], start: datetime, end: datetime
) -> dict[str, Candles]:
    """Stored candles with ``start <= ts < end`` for each symbol (empty symbols are an error)."""
    from coinpilot.adapters.marketdata import load_range

    out: dict[str, Candles] = {}
    for symbol in symbols:
        c = await load_range(pool, symbol, start, end)  # type: ignore[arg-type]
        if len(c) == 0:
            raise DataError(f"no stored candles for {symbol} between {start} and {end}")
        out[symbol] = c
    return out
