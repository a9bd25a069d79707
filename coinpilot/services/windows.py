"""The bot's candle windows, kept in memory and topped up each cycle.

Reading 200 symbols × 200 candles from PostgreSQL every minute costs most of a cycle, while
only one new minute per symbol arrives. So a symbol's window is read whole once (the bot
does that at start-up, before its first cycle) and then only what is newer than its
newest cached candle minus an overlap of `overlap` minutes, which also picks up the
collector's late corrections of recent minutes. Each symbol is also read whole again once
every `full_every` cycles, which heals anything older that changed underneath (an import,
a manual fix); those re-reads are spread over the cycles, a few symbols each, so no cycle
pays for all of them at once. The result equals a full read."""

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
        turn = self._reads % self.full_every
        self._reads += 1
        missing = [
            s
            for i, s in enumerate(symbols)
            if i % self.full_every == turn or s not in self._cache or not len(self._cache[s])
        ]
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
