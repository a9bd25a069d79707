"""The bot's incremental candle windows equal a full read, minute after minute."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import numpy as np

from coinpilot.adapters import marketdata as md
from coinpilot.services.windows import CandleWindows

T0 = datetime(2026, 1, 5, tzinfo=UTC)
SYMBOLS = ["KRW-AAA", "KRW-BBB", "KRW-CCC"]


def _row(sym: str, minute: int, price: float) -> md.CandleRow:
    p = Decimal(str(round(price, 2)))
    return md.CandleRow(sym, "1m", T0 + timedelta(minutes=minute), p, p + 1, p - 1, p,
                        Decimal("2.5"), None)  # fmt: skip


async def test_incremental_windows_match_full_reads(pool: asyncpg.Pool) -> None:
    """New minutes, gaps without trades and revisions inside the overlap all come through."""
    rng = random.Random(7)
    history = [_row(s, m, 100 + rng.random()) for s in SYMBOLS for m in range(260)
               if rng.random() > 0.1]  # fmt: skip
    await md.upsert_candles(pool, history)
    windows = CandleWindows(window=50, overlap=5, full_every=1000)
    for minute in range(261, 330):
        new = [_row(s, minute - 1, 100 + rng.random()) for s in SYMBOLS if rng.random() > 0.2]
        if minute % 7 == 0:  # the exchange corrects a recent closed minute
            new.append(_row("KRW-BBB", minute - 3, 500.0))
        await md.upsert_candles(pool, new)
        now = T0 + timedelta(minutes=minute, seconds=6)
        got = await windows.load(pool, SYMBOLS, now)
        want = await md.load_closed_candles(pool, SYMBOLS, 50, now)
        for s in SYMBOLS:
            assert np.array_equal(got[s].ts, want[s].ts), (minute, s)
            assert np.array_equal(got[s].close, want[s].close), (minute, s)
            assert np.array_equal(got[s].volume, want[s].volume), (minute, s)


async def test_a_periodic_full_read_heals_an_old_change(pool: asyncpg.Pool) -> None:
    """A row changed far behind the overlap shows up at the next full read."""
    await md.upsert_candles(pool, [_row("KRW-AAA", m, 100.0) for m in range(100)])
    windows = CandleWindows(window=50, overlap=5, full_every=3)
    now = T0 + timedelta(minutes=100, seconds=6)
    await windows.load(pool, ["KRW-AAA"], now)
    await md.upsert_candles(pool, [_row("KRW-AAA", 60, 300.0)])
    stale = await windows.load(pool, ["KRW-AAA"], now)
    assert 300.0 not in stale["KRW-AAA"].close
    await windows.load(pool, ["KRW-AAA"], now)
    healed = await windows.load(pool, ["KRW-AAA"], now)
    assert 300.0 in healed["KRW-AAA"].close


async def test_full_reads_are_spread_over_the_cycles(pool: asyncpg.Pool) -> None:
    """With six symbols and a full read every 3 cycles, each cycle re-reads two of them
    whole: an old change shows in symbols 1 and 4 first, then 2 and 5, then 0 and 3."""
    symbols = [f"KRW-S{i}" for i in range(6)]
    await md.upsert_candles(pool, [_row(s, m, 100.0) for s in symbols for m in range(100)])
    windows = CandleWindows(window=50, overlap=5, full_every=3)
    now = T0 + timedelta(minutes=100, seconds=6)
    await windows.load(pool, symbols, now)  # cycle 0: every window read whole (first read)
    await md.upsert_candles(pool, [_row(s, 60, 300.0) for s in symbols])
    healed = []
    for _ in range(3):
        got = await windows.load(pool, symbols, now)
        healed.append([i for i, s in enumerate(symbols) if 300.0 in got[s].close])
    assert healed == [[1, 4], [1, 2, 4, 5], [0, 1, 2, 3, 4, 5]]
