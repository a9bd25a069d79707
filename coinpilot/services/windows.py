"""The bot's candle windows, kept in memory and topped up each cycle.

Reading 200 symbols × 200 candles from PostgreSQL every minute costs most of a cycle, while
only one new minute per symbol arrives. So the first cycle (and every `full_every`-th one)
reads the whole windows; the others read only what is newer than each symbol's newest
cached candle minus an overlap of `overlap` minutes, which also picks up the collector's
late corrections of recent minutes. The periodic full read heals anything older that
changed underneath (an import, a manual fix). The result equals a full read.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg
import numpy as np

from coinpilot.adapters import marketdata as md
from coinpilot.domain.candles import Candles


def _concat(old: Candles, new: Candles) -> Candles:
    return Candles(
        old.symbol,
        np.concatenate([old.ts, new.ts]),
        np.concatenate([old.open, new.open]),
        np.concatenate([old.high, new.high]),
        np.concatenate([old.low, new.low]),
        np.concatenate([old.close, new.close]),
        np.concatenate([old.volume, new.volume]),
    )


class CandleWindows:
    def __init__(self, window: int, overlap: int = 5, full_every: int = 60) -> None:
        self.window, self.overlap, self.full_every = window, overlap, full_every
        self._cache: dict[str, Candles] = {}
        self._reads = 0

    async def load(
        self, pool: asyncpg.Pool, symbols: Sequence[str], now: datetime
    ) -> dict[str, Candles]:
        full = self._reads % self.full_every == 0
        self._reads += 1
        missing = [s for s in symbols if full or s not in self._cache or not len(self._cache[s])]
        if missing:
            self._cache.update(await md.load_closed_candles(pool, missing, self.window, now))
        cursors = {}
        for s in symbols:
            cached = self._cache[s]
            if s not in missing:
                cursors[s] = int(cached.ts[-1]) - self.overlap * 60
        if cursors:
            since = {s: datetime.fromtimestamp(t, UTC) for s, t in cursors.items()}
            fresh = await md.load_closed_since(pool, since, now)
            for s, new in fresh.items():
                old = self._cache[s]
                keep = old.slice(0, int(np.searchsorted(old.ts, cursors[s], side="right")))
                self._cache[s] = _concat(keep, new).tail(self.window)
        return {s: self._cache[s] for s in symbols}
