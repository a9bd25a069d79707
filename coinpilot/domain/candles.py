"""Candles as columns: the one in-memory shape the collector, strategy and backtester share.

``ts`` is the candle *start* in UTC as int64 epoch seconds, strictly ascending; prices and
volume are float64 (the ledger converts fill prices to Decimal). Only closed candles are
ever put in a ``Candles``: a minute is closed once the clock has passed ts + 60 s.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Candles:
    symbol: str
    ts: I64
    open: F64
    high: F64
    low: F64
    close: F64
    volume: F64

    def __post_init__(self) -> None:
        n = len(self.ts)
        for name in ("open", "high", "low", "close", "volume"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"Candles.{name} has a different length from ts")

    def __len__(self) -> int:
        return len(self.ts)

    def tail(self, n: int) -> Candles:
        return self.slice(max(0, len(self) - n), len(self))

    def slice(self, start: int, stop: int) -> Candles:
        return Candles(
            self.symbol,
            self.ts[start:stop],
            self.open[start:stop],
            self.high[start:stop],
            self.low[start:stop],
            self.close[start:stop],
            self.volume[start:stop],
        )

    def upto(self, ts_inclusive: int) -> Candles:
        """Candles whose start is at or before ``ts_inclusive`` (for no-lookahead cuts)."""
        stop = int(np.searchsorted(self.ts, ts_inclusive, side="right"))
        return self.slice(0, stop)

    @property
    def last_ts(self) -> datetime | None:
        return None if len(self) == 0 else datetime.fromtimestamp(int(self.ts[-1]), UTC)

    @classmethod
    def empty(cls, symbol: str) -> Candles:
        f = np.empty(0, dtype=np.float64)
        return cls(symbol, np.empty(0, dtype=np.int64), f, f, f, f, f)

    @classmethod
    def from_rows(
        cls, symbol: str, rows: list[tuple[int, float, float, float, float, float]]
    ) -> Candles:
        if not rows:
            return cls.empty(symbol)
        arr = np.asarray(rows, dtype=np.float64)
        return cls(
            symbol,
            arr[:, 0].astype(np.int64),
            arr[:, 1].copy(),
            arr[:, 2].copy(),
            arr[:, 3].copy(),
            arr[:, 4].copy(),
            arr[:, 5].copy(),
        )
