"""The backtest event loop: the live rules over history on a simulated clock.

Per symbol everything that does not depend on the book is computed once, vectorised: the
tick grid, the hourly regime as the live job sets it, the entry outcome of every candle
(on its own 200-candle window) and the RSI14 the exit check reads. The Python loop then
visits only ticks where something can happen — a candle that passed the entry rules while
the symbol is flat, or an exit candidate while a position is open — and there calls the
live functions: ``evaluate_exit``, the risk check, sizing, the AI step and the fills.
Each symbol has one queued next event, so a tick costs the symbols due at it and the run
grows linearly with the symbols. Between events the book does not change, so the equity
curve is rebuilt afterwards.
"""

from __future__ import annotations

import dataclasses
import heapq
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt

from coinpilot.backtest import rules
from coinpilot.backtest.book import Book, Day, Position
from coinpilot.backtest.model import BacktestResult, Trade
from coinpilot.backtest.signals_bt import (
    ExitTable,
    exit_candidates,
    exit_table,
    precompute,
    regime_table,
)
from coinpilot.backtest.summary import day_keys
from coinpilot.backtest.timeline import MINUTE, REGIME_CODES, Timeline, build_timeline, regimes
from coinpilot.config import AppConfig
from coinpilot.domain.ai_types import AiStep, EntryCandidate
from coinpilot.domain.candles import Candles
from coinpilot.domain.exits import evaluate_exit
from coinpilot.domain.fills import Fill, to_decimal
from coinpilot.domain.regime import UNKNOWN_CODE
from coinpilot.domain.snapshot import IndicatorParams, compute_snapshot
from coinpilot.domain.strategy import ENTRY_CODES

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Progress = Callable[[int, int], None]
CHUNK = 256  # ticks in the first exit-candidate pass of a position
NONE = np.iinfo(np.int64).max


@dataclasses.dataclass
class Series:
    """One symbol's per-tick view and per-candle precomputation."""

    candles: Candles
    index: I64  # candle index at each tick (−1 before the first candle)
    close: F64  # close of that candle at each tick (NaN before the first)
    regime: npt.NDArray[np.int8]  # regime code at each tick
    codes: npt.NDArray[np.int16]  # ENTRY_CODES index per candle
    entry_ticks: I64  # ticks whose own candle passed the entry rules
    rsi14: F64  # windowed RSI14 of the candle at each tick
    ptr: int = 0
    table: ExitTable | None = None
    next_exit: int = NONE
    scan_from: int = 0
    hwm: float = 0.0  # running HWM (float view) before scan_from


def _utc(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _series(c: Candles, tl: Timeline, regime: npt.NDArray[np.int8], app: AppConfig) -> Series:
    idx = tl.index[c.symbol]
    safe = np.maximum(idx, 0)
    close = np.where(idx >= 0, c.close[safe], np.nan)
    own_tick = (c.ts - tl.minutes[0]) // MINUTE
    # Candles before the first tick are history only: no cycle ever decides on them.
    live = own_tick >= 0
    per_candle = np.where(live, regime[np.maximum(own_tick, 0)], UNKNOWN_CODE).astype(np.int8)
    pre = precompute(c, per_candle, app)
    entry_ticks = own_tick[(pre.codes == 0) & live].astype(np.int64)
    # The exit check reads RSI14 with the periods of the regime in force at each tick.
    rsi14 = np.full(len(idx), np.nan)
    for code, values in pre.rsi14.items():
        at = (regime == code) & (idx >= 0)
        rsi14[at] = values[safe[at]]
    return Series(c, idx, close, regime, pre.codes, entry_ticks, rsi14)


def _all_series(
    candles: Mapping[str, Candles], tl: Timeline, regs: Mapping[str, Any], app: AppConfig
) -> dict[str, Series]:
    """Per-symbol precomputation; symbols are independent and numpy releases the GIL."""
    if len(candles) == 1:
        return {s: _series(c, tl, regs[s], app) for s, c in candles.items()}
    workers = min(len(candles), os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {s: pool.submit(_series, c, tl, regs[s], app) for s, c in candles.items()}
        return {s: f.result() for s, f in futures.items()}


class Engine:
    def __init__(
        self,
        candles: Mapping[str, Candles],
        app: AppConfig,
        ai: AiStep | None,
        fixed_regime: str | None = None,
        start: int | None = None,
    ) -> None:
        self.app, self.ai = app, ai
        self.tl = build_timeline(candles, int(app.bot.offset_s), start)
        regs = regimes(candles, self.tl, app, fixed_regime)
        self.series = _all_series(candles, self.tl, regs, app)
        self.order = list(candles)
        self.ticks = self.tl.minutes + MINUTE + self.tl.tick_offset
        self.days = day_keys(self.ticks, app.tz)
        self.book = Book(cash=Decimal(app.risk.initial_balance_krw))
        self.cash_events: list[tuple[int, Decimal]] = []
        self.funnel: dict[str, int] = {}
        self.trade_ticks: list[tuple[int, int]] = []  # (entry tick, exit tick or len)
        self.tables: dict[str, ExitTable] = {}

    # -- events -----------------------------------------------------------------------

    def _next_entry(self, s: Series, k: int) -> int:
        ticks = s.entry_ticks
        while s.ptr < len(ticks) and ticks[s.ptr] < k:
            s.ptr += 1
        return int(ticks[s.ptr]) if s.ptr < len(ticks) else NONE

    def _scan(self, s: Series, pos: Position) -> None:
        """Find the next exit candidate tick of an open position (NONE: holds to the end)."""
        assert s.table is not None
        n, avg = len(self.ticks), float(pos.avg_price)
        start, chunk = s.scan_from, CHUNK
        while start < n:
            # Most positions close within hours: scan short first, then in growing steps.
            stop = min(n, start + chunk)
            chunk = min(chunk * 4, 65536)
            elapsed = (self.ticks[start:stop] - pos.opened_ts).astype(np.float64)
            hits, hwm = exit_candidates(
                s.close[start:stop], self._rsi_hint(s, start, stop),
                s.regime[start:stop], elapsed, avg, s.hwm, s.table,
            )  # fmt: skip
            if len(hits):
                j = int(hits[0])
                s.next_exit, s.scan_from = start + j, start + j
                s.hwm = float(hwm[j - 1]) if j else s.hwm
                return
            s.hwm = float(hwm[-1])
            start = stop
        s.next_exit, s.scan_from = NONE, n

    def _rsi_hint(self, s: Series, start: int, stop: int) -> F64:
        return s.rsi14[start:stop]

    # -- the book ----------------------------------------------------------------------

    def _mark(self, k: int) -> None:
        for sym, pos in self.book.positions.items():
            pos.last_close = float(self.series[sym].close[k])

    def _roll_day(self, k: int) -> None:
        key = int(self.days[k])
        day = self.book.day
        if day is not None and day.key == key:
            return
        first = int(np.searchsorted(self.days, key, side="left"))
        self._mark(first)
        self.book.day = Day(key=key, opening_equity=self.book.equity())

    def _count(self, reason: str) -> None:
        self.funnel[reason] = self.funnel.get(reason, 0) + 1

    def _exit(self, sym: str, k: int) -> None:
        s, book = self.series[sym], self.book
        pos = book.positions[sym]
        regime = REGIME_CODES[int(s.regime[k])]
        rsi14 = float(s.rsi14[k])  # the windowed value, equal to compute_snapshot's
        close = float(s.close[k])
        # The stored HWM: the entry price until a close rose above it (closes are floats).
        hwm = pos.hwm if s.hwm <= float(pos.hwm) else to_decimal(s.hwm)
        decision = evaluate_exit(
            avg_price=pos.avg_price,
            opened_at=_utc(pos.opened_ts),
            entry_regime=pos.regime,
            hwm=hwm,
            close=close,
            rsi14=rsi14,
            current_regime=regime,
            regimes=regime_table(self.app),
            now=_utc(int(self.ticks[k])),
        )
        if not decision.should_exit:
            s.hwm = max(s.hwm, close)
            s.scan_from = k + 1
            self._scan(s, pos)
            return
        self._sell(sym, k, close, decision.reason or "")

    def _sell(self, sym: str, k: int, close: float, reason: str) -> None:
        book = self.book
        pos = book.positions.pop(sym)
        fill = rules.sell_fill(to_decimal(close), pos.quantity, self.app.fills)
        book.cash += fill.notional - fill.fee
        now = int(self.ticks[k])
        trade = dataclasses.replace(
            book.trades[pos.trade_index], exit_ts=now, exit_price=fill.price,
            exit_fee=fill.fee, exit_reason=reason,
        )  # fmt: skip
        book.trades[pos.trade_index] = trade
        self.trade_ticks[pos.trade_index] = (self.trade_ticks[pos.trade_index][0], k)
        rules.after_sell(book, trade.pnl, now, self.app)
        self.cash_events.append((k, book.cash))
        self.series[sym].next_exit = NONE

    async def _entry(self, sym: str, k: int) -> None:
        s, book, app = self.series[sym], self.book, self.app
        i = int(s.index[k])
        if book.last_buy_candle.get(sym) == i:
            return
        now = int(self.ticks[k])
        reason = rules.check_entry(book, sym, now, app)
        if reason is not None:
            self._count(f"risk:{reason}")
            return
        regime = REGIME_CODES[int(s.regime[k])]
        ratio = app.regimes[regime].position_size_ratio  # type: ignore[index]
        amount = rules.order_amount(book, ratio, 1.0, app)
        if amount < app.fills.min_order_krw:  # as the bot: refused before asking the AI
            self._count("risk:below_min_order")
            return
        close = float(s.close[k])
        if self.ai is not None and not await self._ai_ok(sym, k, regime, close, amount):
            return
        fill = rules.buy_fill(to_decimal(close), amount, app.fills)
        # The ledger places nothing when rounding leaves too little or cash cannot pay.
        if fill is None or book.cash < fill.notional + fill.fee:
            self._count("not_filled")
            return
        self._open(sym, k, i, regime, close, fill)

    def _open(self, sym: str, k: int, i: int, regime: str, close: float, fill: Fill) -> None:
        s, book, app = self.series[sym], self.book, self.app
        now = int(self.ticks[k])
        book.cash -= fill.notional + fill.fee
        book.last_buy_candle[sym] = i
        assert book.day is not None
        book.day.buy_count += 1
        trade = Trade(sym, regime, now, fill.price, fill.quantity, fill.fee)
        book.trades.append(trade)
        self.trade_ticks.append((k, len(self.ticks)))
        pos = Position(sym, fill.quantity, fill.price, now, regime, fill.price,
                       len(book.trades) - 1, close)  # fmt: skip
        book.positions[sym] = pos
        self.cash_events.append((k, book.cash))
        self._count("bought")
        if regime not in self.tables:
            self.tables[regime] = exit_table(regime, app)
        s.table, s.hwm, s.scan_from = self.tables[regime], float(fill.price), k + 1
        self._scan(s, pos)

    async def _ai_ok(self, sym: str, k: int, regime: str, close: float, amount: Decimal) -> bool:
        s, app = self.series[sym], self.app
        i = int(s.index[k])
        params = IndicatorParams.for_regime(regime, regime_table(app))
        window = s.candles.slice(max(0, i + 1 - app.bot.candle_window), i + 1)
        snap = compute_snapshot(window, params, app.bot.candle_window)
        candidate = EntryCandidate(
            symbol=sym, regime=regime, candle_ts=_utc(int(s.candles.ts[i])), price=close,
            indicators=snap.as_dict(), entry_config=app.regimes[regime].entry.model_dump(),  # type: ignore[index]
            order_krw=float(amount),
        )  # fmt: skip
        assert self.ai is not None
        verdict = await self.ai.review(candidate)
        if not verdict.approved:
            self._count(f"ai:{verdict.reason_code}")
        return verdict.approved

    # -- the loop ----------------------------------------------------------------------

    def _due(self, i: int, k: int) -> int:
        """Symbol ``order[i]``'s next event at or after tick k: its exit candidate while a
        position is open, else its next candle that passed the entry rules."""
        sym = self.order[i]
        s = self.series[sym]
        return s.next_exit if sym in self.book.positions else self._next_entry(s, k)

    async def run(self, progress: Progress | None = None) -> BacktestResult:
        # One queued event per symbol, keyed (tick, symbol order): a symbol's next event
        # changes only when its own event is handled, so the queue holds no stale entries
        # and each tick costs only the symbols due at it, not a pass over every symbol.
        n = len(self.ticks)
        queue = [(t, i) for i in range(len(self.order)) if (t := self._due(i, 0)) != NONE]
        heapq.heapify(queue)
        while queue:
            k = queue[0][0]
            due: list[int] = []
            while queue and queue[0][0] == k:
                due.append(heapq.heappop(queue)[1])
            due.sort()
            self._roll_day(k)
            self._mark(k)
            for i in due:
                sym = self.order[i]
                if sym in self.book.positions and self.series[sym].next_exit == k:
                    self._exit(sym, k)
            for i in due:
                sym = self.order[i]
                s = self.series[sym]
                flat = sym not in self.book.positions
                if flat and s.ptr < len(s.entry_ticks) and self._next_entry(s, k) == k:
                    await self._entry(sym, k)
            if progress is not None:
                progress(k, n)
            for i in due:
                t = self._due(i, k + 1)
                if t != NONE:
                    heapq.heappush(queue, (t, i))
        if progress is not None:
            progress(n, n)
        return self._result()

    # -- output ------------------------------------------------------------------------

    def _equity(self) -> tuple[F64, npt.NDArray[np.bool_]]:
        n = len(self.ticks)
        at = np.array([k for k, _ in self.cash_events], dtype=np.int64)
        values = np.array([float(self.book_start)] + [float(v) for _, v in self.cash_events])
        # Several events can share a tick: the last one of the tick is the tick's cash.
        cash = values[np.searchsorted(at, np.arange(n), side="right")]
        held = np.zeros(n, dtype=np.int32)
        for t, (a, b) in zip(self.book.trades, self.trade_ticks, strict=True):
            closes = np.nan_to_num(self.series[t.symbol].close[a:b])
            cash[a:b] += float(t.quantity) * closes
            held[a:b] += 1
        return cash, held > 0

    def _funnel(self) -> dict[str, int]:
        out: dict[str, int] = {}
        held: dict[str, list[tuple[int, int]]] = {}
        for t, span in zip(self.book.trades, self.trade_ticks, strict=True):
            held.setdefault(t.symbol, []).append(span)
        for sym in self.order:
            s = self.series[sym]
            flat = np.ones(len(self.ticks), dtype=bool)
            for a, b in held.get(sym, ()):
                flat[a + 1 : b + 1] = False
            own = (s.candles.ts - self.tl.minutes[0]) // MINUTE
            live = own >= 0
            codes = s.codes[live][flat[own[live]]]
            counts = np.bincount(codes, minlength=len(ENTRY_CODES))
            for code, count in zip(ENTRY_CODES, counts.tolist(), strict=True):
                if count:
                    out[code] = out.get(code, 0) + count
        return {**out, **dict(sorted(self.funnel.items()))}

    @property
    def book_start(self) -> Decimal:
        return Decimal(self.app.risk.initial_balance_krw)

    def _result(self) -> BacktestResult:
        equity, in_market = self._equity()
        held = self.book.positions.values()
        return BacktestResult(
            initial_equity=self.book_start, final_cash=self.book.cash,
            trades=list(self.book.trades), equity_ts=self.ticks.copy(), equity=equity,
            in_market=in_market, funnel=self._funnel(),
            candle_steps=sum(len(s.candles) for s in self.series.values()),
            symbols=tuple(self.order),
            open_positions={p.symbol: (p.quantity, p.avg_price) for p in held},
        )  # fmt: skip


async def run_backtest(
    candles: Mapping[str, Candles],
    app: AppConfig,
    *,
    ai: AiStep | None = None,
    progress: Progress | None = None,
    fixed_regime: str | None = None,
    start: datetime | None = None,
) -> BacktestResult:
    """Run the live rules over ``candles`` (symbol → 1-minute history), in the given order.

    ``fixed_regime`` pins every symbol's regime instead of deriving it hourly from the data
    (short histories in tests, or a replay that pins the regime the same way). ``start``
    is when the simulated daemon starts: candles before it are history only.
    """
    usable = {s: c for s, c in candles.items() if len(c)}
    if not usable:
        raise ValueError("no candles to backtest")
    begin = None if start is None else int(start.timestamp())
    return await Engine(usable, app, ai, fixed_regime, begin).run(progress)
