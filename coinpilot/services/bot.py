"""The bot loop: every minute, exits first, then entries → risk → sizing → AI → ledger.

One cycle:
1. load the last `bot.candle_window` closed candles of every symbol in one query;
2. read regimes and volatility flags from Redis (regime falls back to regime_history when
   Redis is down: trading goes on, the service reports itself degraded);
3. load the ledger state (account, positions, today's risk row) and mark positions;
4. exits for every open position, on the freshest stored price, never waiting on the AI;
5. entries for every flat symbol with a fresh candle: rules → risk → sizing → AI step →
   one ledger transaction, idempotent per candle;
6. publish `bot:status:{symbol}`, one log line and one counter increment per symbol.
A symbol's exception is logged and counted and never stops or rolls back another symbol.

With the AI off the verdict is immediate and the BUY happens in the same cycle. With the
AI on, each review runs as a background task (one in flight per symbol) so a slow model
never delays other symbols' exits or the next cycle; an approved BUY is executed when the
verdict arrives, after the risk check is repeated on the then-current ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import redis.asyncio as aioredis
import structlog

from coinpilot.adapters import ledger
from coinpilot.adapters import marketdata as md
from coinpilot.adapters.cache import REDIS_ERRORS, Keys
from coinpilot.adapters.db import DaemonLock
from coinpilot.clock import Clock, floor_minute
from coinpilot.config import Settings
from coinpilot.domain import risk
from coinpilot.domain.ai_types import AiOff, AiStep, EntryCandidate
from coinpilot.domain.candles import Candles
from coinpilot.domain.fills import to_decimal
from coinpilot.domain.sizing import order_amount, volatility_factor
from coinpilot.domain.strategy import (
    IndicatorParams,
    IndicatorSnapshot,
    compute_snapshots,
    evaluate_entry,
    evaluate_exit,
)
from coinpilot.errors import TransientError
from coinpilot.observability import Health, Metrics
from coinpilot.services import control
from coinpilot.services.base import PeriodicService
from coinpilot.services.minute_events import MinuteEvents, MinuteStored
from coinpilot.services.windows import CandleWindows

log = structlog.get_logger(__name__)
MINUTE = timedelta(minutes=1)


@dataclass
class Outcome:
    """What happened to one symbol in one cycle: the "why didn't it trade?" record."""

    symbol: str
    action: str  # WAITING, HOLD, HOLD (POS), SELL, BUY, SKIP, ERROR
    reason_code: str
    reason: str
    regime: str = "UNKNOWN"
    price: float | None = None
    candle_ts: datetime | None = None
    indicators: dict[str, Any] = field(default_factory=dict)
    position: dict[str, Any] = field(default_factory=dict)
    minute: datetime | None = None  # the closed minute this outcome decided


@dataclass
class Inputs:
    """Everything one cycle reads, loaded once for all symbols."""

    now: datetime
    candles: dict[str, Candles]
    regimes: dict[str, str]
    high_vol: dict[str, bool]
    snapshots: dict[str, IndicatorSnapshot]
    mark_prices: dict[str, float] | None = None  # instead of the candles' newest closes

    @property
    def marks(self) -> dict[str, float]:
        if self.mark_prices is not None:
            return self.mark_prices
        return {s: float(c.close[-1]) for s, c in self.candles.items() if len(c)}


class BotService(PeriodicService):
    name = "bot"

    def __init__(
        self,
        *,
        settings: Settings,
        pool: asyncpg.Pool,
        redis: aioredis.Redis,
        keys: Keys,
        clock: Clock,
        health: Health,
        metrics: Metrics,
        ai: AiStep | None = None,
        symbols: list[str] | None = None,
        events: MinuteEvents | None = None,
        collector: Any = None,
        jobs: Any = None,
        lock: DaemonLock | None = None,
    ) -> None:
        app = settings.app
        super().__init__(
            clock=clock,
            health=health,
            metrics=metrics,
            interval_s=app.bot.interval_s,
            offset_s=app.bot.offset_s,
        )
        self.settings, self.app = settings, app
        self.pool, self.redis, self.keys = pool, redis, keys
        self.ai: AiStep = ai or AiOff()
        self.symbols = list(symbols or app.symbols)
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._ledger_lock = asyncio.Lock()
        self.last_outcomes: dict[str, Outcome] = {}
        self.windows = CandleWindows(app.bot.candle_window, overlap=app.collector.recent_candles)
        self._marks: dict[str, float] = {}  # the last cycle's prices, for late AI verdicts
        # Minute-driven decisions: with an event source the bot decides each symbol's minute
        # when the collector says it is stored, instead of on a clock tick.
        # Subscribed before anything is read, so no minute stored meanwhile slips through.
        self.minute_events = events
        self._events = events.subscribe() if events is not None else None
        self.collector, self.jobs = collector, jobs
        self.stored: dict[str, datetime] = {}  # per symbol: the newest minute stored
        self.caught_up_to: dict[str, datetime] = {}  # per symbol: stored before we started
        self.published: dict[str, set[datetime]] = {}  # per symbol: announced, not decided
        self.decided: dict[str, datetime] = {}  # per symbol: the newest minute decided
        self._held: set[str] = set()  # symbols with a position, as of the last ledger read
        self.lock = lock  # the one-daemon lock: no fill unless it is held

    @property
    def ai_is_inline(self) -> bool:
        return isinstance(self.ai, AiOff) or getattr(self.ai, "inline", False)

    # -- start-up ----------------------------------------------------------------------

    async def startup(self) -> None:
        """Reconcile, then (minute-driven) wait for the catch-up and the start-up jobs.

        Decisions start only after the collector's catch-up backfill and the regime and
        volatility jobs computed on that complete data; they resume at the minute after the
        last one decided, but never on a minute that closed more than ``max_candle_age_s``
        ago (the daemon was down then: no fill at a stale price).
        """
        await self.reconcile()
        if self.minute_events is None:
            await self._read_windows()
            return
        log.info("bot_waiting_for_backfill")
        await self.minute_events.caught_up.wait()
        if self.collector is not None and self.collector.symbols_checked:
            self.symbols = [s for s in self.symbols if s in self.collector.active_symbols]
        if self.jobs is not None:
            await self.jobs.startup_jobs()
        self._held = set((await ledger.positions(self.pool)).keys())
        newest = await md.newest_closed_ts_many(self.pool, self.watched_symbols())
        for sym, ts in newest.items():
            if ts is not None:
                self.caught_up_to[sym] = ts
                self.stored[sym] = max(ts, self.stored.get(sym, ts))
        await self._resume_point(self.clock.now())
        await self._explain_waiting_exits()
        await self._read_windows()

    async def _read_windows(self) -> None:
        """Every candle window read whole now, so the first cycle only tops them up."""
        await self.windows.load(self.pool, self.watched_symbols(), self.clock.now())

    async def reconcile(self) -> None:
        """Crash-only recovery: the database is the truth; Redis caches are rebuilt from it."""
        await ledger.ensure_account(self.pool, self.app.risk.initial_balance_krw)
        held = await ledger.positions(self.pool)
        self._held = set(held)
        orphans = sorted(self._held - set(self.symbols))
        if orphans:
            log.warning("held_symbols_not_configured", symbols=orphans,
                        action="exits only, still read and collected until closed")  # fmt: skip
        with contextlib.suppress(*REDIS_ERRORS):
            for p in held.values():
                await self.redis.set(self.keys.hwm(p.symbol), str(p.high_water_mark))
        check = await ledger.verify(self.pool)
        self.metrics.ledger_violation.set(0 if check.ok else 1)
        log.info(
            "bot_reconciled",
            positions=sorted(held),
            ledger_ok=check.ok,
            difference=str(check.difference),
        )

    async def _check_ledger(self) -> None:
        """The invariant after every fill, for the ledger alert (a few sums, fills are rare)."""
        check = await ledger.verify(self.pool)
        self.metrics.ledger_violation.set(0 if check.ok else 1)
        if not check.ok:
            log.error("ledger_invariant_violated", difference=str(check.difference),
                      history_ok=check.history_ok)  # fmt: skip

    # -- inputs ------------------------------------------------------------------------

    def _redis_failed(self, exc: BaseException) -> None:
        self.metrics.dependency_error("redis", type(exc).__name__)
        if self.state.degraded_reason is None:
            log.warning(
                "redis_unavailable",
                error=type(exc).__name__,
                fallback="regime_history and positions",
            )
        self.state.degraded_reason = "redis unavailable: using database fallbacks"

    async def _regimes(self, now: datetime, symbols: list[str]) -> dict[str, str]:
        """Redis first; a missing key, like a Redis outage, is answered from regime_history."""
        found: dict[str, str] = {}
        try:
            values = await self.redis.mget([self.keys.regime(s) for s in symbols])
            self.state.degraded_reason = None
            found = {s: v for s, v in zip(symbols, values, strict=True) if v}
        except REDIS_ERRORS as exc:
            self._redis_failed(exc)
        missing = [s for s in symbols if s not in found]
        if missing:
            oldest = now - timedelta(seconds=self.app.regime_detection.redis_ttl_s)
            rows = await self.pool.fetch(
                """SELECT DISTINCT ON (symbol) symbol, regime FROM regime_history
                   WHERE symbol = ANY($1::text[]) AND detected_at > $2
                   ORDER BY symbol, detected_at DESC""",
                missing, oldest,
            )  # fmt: skip
            found.update({r["symbol"]: r["regime"] for r in rows})
        return {s: found.get(s, "UNKNOWN") for s in symbols}

    async def _volatility(self, symbols: list[str]) -> dict[str, bool]:
        """Redis first; a missing key, like a Redis outage, is answered from volatility_state."""
        flags: dict[str, bool] = {}
        try:
            values = await self.redis.mget([self.keys.volatility(s) for s in symbols])
            for sym, raw in zip(symbols, values, strict=True):
                with contextlib.suppress(ValueError, TypeError, AttributeError):
                    if raw:
                        flags[sym] = bool(json.loads(raw).get("is_high"))
        except REDIS_ERRORS as exc:
            self._redis_failed(exc)
        missing = [s for s in symbols if s not in flags]
        if missing:
            rows = await self.pool.fetch(
                "SELECT symbol, is_high FROM volatility_state WHERE symbol = ANY($1::text[])",
                missing,
            )
            flags.update({r["symbol"]: r["is_high"] for r in rows})
        return flags

    def watched_symbols(self) -> list[str]:
        """The configured symbols, then any held one the config no longer lists.

        A held symbol is read and exited until its position is closed, so it never keeps a
        slot and exposure unwatched; the collector asks here what to keep collecting.
        """
        return self.symbols + sorted(self._held.difference(self.symbols))

    async def load_inputs(
        self, at: datetime | None = None, symbols: list[str] | None = None
    ) -> Inputs:
        now = at or self.clock.now()
        started = time.perf_counter()
        watched = symbols or self.watched_symbols()
        candles = await self.windows.load(self.pool, watched, now)
        self.metrics.db_query_duration.observe(time.perf_counter() - started)
        regimes = await self._regimes(now, watched)
        high_vol = await self._volatility(watched)
        with_data = [s for s in watched if len(candles.get(s, ()))]
        params = [IndicatorParams.for_regime(regimes[s], self.app.regimes) for s in with_data]
        snaps = compute_snapshots([candles[s] for s in with_data], params,
                                  self.app.bot.candle_window)  # fmt: skip
        inputs = Inputs(now, candles, regimes, high_vol, dict(zip(with_data, snaps, strict=True)))
        if len(watched) < len(self.watched_symbols()):  # a late symbol alone: others keep marks
            inputs.mark_prices = {**self._marks, **inputs.marks}
        return inputs

    # -- the cycle ---------------------------------------------------------------------

    async def run_once(
        self, at: datetime | None = None, symbols: list[str] | None = None
    ) -> dict[str, Outcome]:
        """Decide the newest closed minute at ``at`` (default: now) for ``symbols`` (all)."""
        if self.lock is not None and not await self.lock.check():
            self.state.degraded_reason = self.lock.lost_reason
            log.error("bot_not_trading", reason=self.lock.lost_reason)
            return {}
        symbols = symbols or self.watched_symbols()
        inputs = await self.load_inputs(at, symbols)
        self._marks = inputs.marks
        state = await ledger.load_state(self.pool, self.app, inputs.now, inputs.marks)
        self._held = set(state.positions)
        outcomes: dict[str, Outcome] = {}
        for sym in [s for s in symbols if s in state.positions]:
            outcomes[sym] = await self._isolated(sym, self._exit(sym, inputs, state))
        if any(o.action != "HOLD (POS)" for o in outcomes.values()):  # a fill, or maybe one
            state = await ledger.load_state(self.pool, self.app, inputs.now, inputs.marks)
        paused = await control.entries_paused(self.pool)  # the operator's pause; exits go on
        # A symbol that just exited may enter again on this candle, as in the backtest; this
        # also makes re-running an interrupted cycle give the same result.
        for sym in [s for s in symbols if s in self.symbols and s not in state.positions]:
            if paused:
                outcomes.setdefault(sym, Outcome(sym, "SKIP", "entries_paused",
                                                 "new entries paused by the operator",
                                                 inputs.regimes.get(sym, "UNKNOWN")))  # fmt: skip
                continue
            outcome = await self._isolated(sym, self._entry(sym, inputs, state))
            if outcome.action == "BUY":
                state = await ledger.load_state(self.pool, self.app, inputs.now, inputs.marks)
            if sym not in outcomes or outcome.action == "BUY":
                outcomes[sym] = outcome
        minute = floor_minute(inputs.now) - MINUTE
        for o in outcomes.values():
            o.minute = minute
        await self._publish(outcomes, inputs, state)
        self.last_outcomes = outcomes
        return outcomes

    async def _isolated(self, symbol: str, work: Any) -> Outcome:
        budget = self.app.bot.symbol_timeout_s
        try:
            result: Outcome = await asyncio.wait_for(work, budget)
            return result
        except TimeoutError:  # a stuck symbol (a row lock, a hung query) must not stop the rest
            self.metrics.symbol_errors.labels(symbol=symbol).inc()
            log.error("symbol_timed_out", symbol=symbol, budget_s=budget)
            return Outcome(symbol, "ERROR", "timeout",
                           f"gave up after {budget:g} s (bot.symbol_timeout_s)")  # fmt: skip
        except (asyncpg.PostgresError, OSError) as exc:
            self.metrics.dependency_error("database", type(exc).__name__)
            self.metrics.symbol_errors.labels(symbol=symbol).inc()
            log.error("symbol_failed", symbol=symbol, error=repr(exc)[:300])
            return Outcome(symbol, "ERROR", "error", f"{type(exc).__name__}: {exc}"[:200])
        except Exception as exc:  # one symbol's bug must not stop the others
            self.metrics.symbol_errors.labels(symbol=symbol).inc()
            log.exception("symbol_failed", symbol=symbol)
            return Outcome(symbol, "ERROR", "error", f"{type(exc).__name__}: {exc}"[:200])

    async def _exit(self, sym: str, inputs: Inputs, state: ledger.LedgerState) -> Outcome:
        pos = state.positions[sym]
        candles, snap = inputs.candles.get(sym), inputs.snapshots.get(sym)
        close = float(candles.close[-1]) if candles is not None and len(candles) else None
        regime = inputs.regimes.get(sym, "UNKNOWN")
        decision = evaluate_exit(
            avg_price=pos.avg_price, opened_at=pos.opened_at, entry_regime=pos.regime,
            hwm=pos.high_water_mark, close=close, rsi14=snap.rsi14 if snap else None,
            current_regime=regime, regimes=self.app.regimes, now=inputs.now,
        )  # fmt: skip
        candle_ts = candles.last_ts if candles is not None and len(candles) else None
        info = {"regime": regime, "entry_regime": pos.regime, "entry_avg_price": str(pos.avg_price),
                **(snap.as_dict() if snap else {})}  # fmt: skip
        if candle_ts is not None and not self._fresh(candles, inputs.now):
            # After downtime (or a symbol without trades) never a fill at an old price.
            due = f"{decision.reason} due, " if decision.should_exit else ""
            age = (inputs.now - candle_ts).total_seconds()
            return Outcome(sym, "HOLD (POS)", "stale_data",
                           f"[{pos.regime}] {due}waiting for a candle no older than "
                           f"{self.app.bot.max_candle_age_s:.0f} s (newest: {age:.0f} s old)",
                           regime, close, candle_ts, info)  # fmt: skip
        if decision.should_exit and (close is None or candle_ts is None):
            # No stored candle to fill at: never a made-up price, the exit waits for one.
            return Outcome(sym, "HOLD (POS)", "exit_no_price",
                           f"[{pos.regime}] {decision.reason} due, waiting for a price to fill at",
                           regime, None, None, info)  # fmt: skip
        if decision.should_exit and close is not None and candle_ts is not None:
            reason = decision.reason or ""
            sold = await ledger.sell(
                self.pool, sym, candle_ts, to_decimal(close), reason, decision.new_hwm,
                self.app, inputs.now, {**info, "exit_reason": reason}, inputs.marks,
            )  # fmt: skip
            if sold is not None:
                self._held.discard(sym)
                await self._check_ledger()
                self.metrics.trades.labels(side="SELL").inc()
                self.metrics.exits.labels(reason=reason).inc()
                with contextlib.suppress(*REDIS_ERRORS):
                    await self.redis.delete(self.keys.hwm(sym))
                return Outcome(sym, "SELL", f"exit_{reason.lower()}",
                               f"[{pos.regime}] position closed: {reason}", regime, close,
                               candle_ts, info)  # fmt: skip
        if decision.new_hwm is not None and decision.new_hwm > pos.high_water_mark:
            await ledger.raise_hwm(self.pool, sym, decision.new_hwm, inputs.now)
            with contextlib.suppress(*REDIS_ERRORS):
                await self.redis.set(self.keys.hwm(sym), str(decision.new_hwm))
        hwm = max(pos.high_water_mark, decision.new_hwm or pos.high_water_mark)
        pnl = (decision.pnl_pct or 0.0) * 100
        vs_hwm = float((to_decimal(close) - hwm) / hwm * 100) if close is not None else 0.0
        text = f"[{pos.regime}] holding position (PnL {pnl:.2f}%, vs HWM {vs_hwm:.2f}%)"
        return Outcome(sym, "HOLD (POS)", "holding", text, regime, close, candle_ts, info)

    def _fresh(self, candles: Candles | None, now: datetime) -> bool:
        if candles is None or not len(candles) or candles.last_ts is None:
            return False
        return (now - candles.last_ts).total_seconds() <= self.app.bot.max_candle_age_s

    async def _entry(self, sym: str, inputs: Inputs, state: ledger.LedgerState) -> Outcome:
        candles, snap = inputs.candles.get(sym), inputs.snapshots.get(sym)
        regime = inputs.regimes.get(sym, "UNKNOWN")
        if candles is None or snap is None or len(candles) < self.app.bot.min_candles:
            n = 0 if candles is None else len(candles)
            return Outcome(sym, "WAITING", "insufficient_data", f"data insufficient: {n} lines",
                           regime)  # fmt: skip
        close, candle_ts = float(candles.close[-1]), candles.last_ts
        info = _status_indicators(snap)
        if not self._fresh(candles, inputs.now):
            return Outcome(sym, "SKIP", "stale_data", "newest candle is too old for an entry",
                           regime, close, candle_ts, info)  # fmt: skip
        if sym in self._inflight:
            return Outcome(sym, "SKIP", "ai_pending", "waiting for the AI second opinion",
                           regime, close, candle_ts, info)  # fmt: skip
        decision = evaluate_entry(
            snap,
            regime,
            self.app.regimes,
            min_candles=self.app.bot.min_candles,
            regime_hours_needed=self.app.regime_detection.min_hourly_candles,
        )
        if not decision.passed:
            return Outcome(sym, "HOLD", decision.reason_code, decision.status_text(regime),
                           regime, close, candle_ts, info)  # fmt: skip
        assert candle_ts is not None
        info = snap.as_dict()  # the full view only for candidates: the AI input and history
        sized = await self._risk_and_size(sym, regime, inputs, state)
        if isinstance(sized, Outcome):
            sized.price, sized.candle_ts, sized.indicators = close, candle_ts, info
            return sized
        candidate = EntryCandidate(
            symbol=sym, regime=regime, candle_ts=candle_ts, price=close, indicators=info,
            entry_config=self.app.regimes[regime].entry.model_dump(),  # type: ignore[index]
            order_krw=float(sized),
        )  # fmt: skip
        if not self.ai_is_inline:
            self._inflight[sym] = asyncio.create_task(self._review_later(candidate),
                                                      name=f"ai-{sym}")  # fmt: skip
            return Outcome(sym, "SKIP", "ai_pending", "entry conditions met, asking the AI",
                           regime, close, candle_ts, info)  # fmt: skip
        verdict = await self.ai.review(candidate)
        if not verdict.approved:
            return Outcome(sym, "SKIP", f"ai_{verdict.reason_code}",
                           f"AI rejected: {verdict.reasoning}"[:300], regime, close, candle_ts,
                           info)  # fmt: skip
        return await self._execute(candidate, inputs.now, inputs.marks, inputs.high_vol, info)

    async def _risk_and_size(
        self, sym: str, regime: str, inputs: Inputs, state: ledger.LedgerState
    ) -> Decimal | Outcome:
        marks = inputs.marks
        verdict = risk.check_entry(state.risk_state(marks), sym, self.app.risk, inputs.now)
        if not verdict.ok:
            self.metrics.risk_rejections.labels(reason=verdict.reason_code).inc()
            await ledger.record_rejection(self.pool, sym, verdict, inputs.now, self.app,
                                          {"regime": regime})  # fmt: skip
            if verdict.halt:
                self.metrics.trading_halted.set(1)
                log.error("trading_halted", reason=verdict.text)
            return Outcome(sym, "SKIP", f"risk_{verdict.reason_code}",
                           f"Risk rejected: {verdict.text}", regime)  # fmt: skip
        ratio = self.app.regimes[regime].position_size_ratio  # type: ignore[index]
        factor = volatility_factor(inputs.high_vol.get(sym, False), self.app.risk)
        amount = order_amount(
            equity=state.equity(marks), cash=state.account.cash,
            exposure=state.exposure(marks), regime_ratio=ratio, vol_factor=factor,
            limits=self.app.risk,
        )  # fmt: skip
        if amount < self.app.fills.min_order_krw:
            self.metrics.risk_rejections.labels(reason="below_min_order").inc()
            return Outcome(sym, "SKIP", "risk_below_min_order",
                           f"order of {amount:.0f} KRW is below the minimum", regime)  # fmt: skip
        return amount

    async def _execute(
        self,
        c: EntryCandidate,
        now: datetime,
        marks: dict[str, float],
        high_vol: dict[str, bool],
        info: dict[str, Any],
        cap: Decimal | None = None,
    ) -> Outcome:
        """The one executor of entries: risk check, sizing and the ledger write together.

        Inline and late AI verdicts both come here; under ``_ledger_lock`` a second approval
        sees the first one's BUY. ``now`` is the decision's one clock reading: it picks the
        trading day of the risk row and of the fill. The ledger re-checks the limits in its
        transaction, so even a writer outside this process cannot push past them.
        """
        if self.lock is not None and not self.lock.held:
            return Outcome(c.symbol, "SKIP", "daemon_lock_lost", str(self.lock.lost_reason),
                           c.regime, c.price, c.candle_ts, info)  # fmt: skip
        if await control.entries_paused(self.pool):  # paused while the AI was deciding
            return Outcome(c.symbol, "SKIP", "entries_paused", "new entries paused by the "
                           "operator", c.regime, c.price, c.candle_ts, info)  # fmt: skip
        async with self._ledger_lock:
            state = await ledger.load_state(self.pool, self.app, now, marks)
            inputs = Inputs(now, {}, {c.symbol: c.regime}, high_vol, {}, mark_prices=marks)
            sized = await self._risk_and_size(c.symbol, c.regime, inputs, state)
            if isinstance(sized, Outcome):
                sized.price, sized.candle_ts, sized.indicators = c.price, c.candle_ts, info
                return sized
            amount = sized if cap is None else min(sized, cap)
            order = ledger.BuyOrder(
                c.symbol, c.candle_ts, to_decimal(c.price), amount, c.regime,
                {**info, "regime": c.regime, "entry_config": dict(c.entry_config)},
            )  # fmt: skip
            fill = await ledger.buy(self.pool, order, self.app, now, marks)
        if isinstance(fill, ledger.Refused):
            self.metrics.risk_rejections.labels(reason=fill.verdict.reason_code).inc()
            return Outcome(c.symbol, "SKIP", f"risk_{fill.verdict.reason_code}",
                           f"Risk rejected: {fill.verdict.text}", c.regime, c.price,
                           c.candle_ts, info)  # fmt: skip
        if fill is None:
            return Outcome(c.symbol, "SKIP", "already_executed",
                           "this candle's entry was already executed", c.regime, c.price,
                           c.candle_ts, info)  # fmt: skip
        self._held.add(c.symbol)
        await self._check_ledger()
        self.metrics.trades.labels(side="BUY").inc()
        with contextlib.suppress(*REDIS_ERRORS):
            await self.redis.set(self.keys.hwm(c.symbol), str(fill.price))
        return Outcome(c.symbol, "BUY", "bought",
                       f"[{c.regime}] bought {fill.quantity} at {fill.price}", c.regime, c.price,
                       c.candle_ts, info)  # fmt: skip

    async def _review_later(self, c: EntryCandidate) -> None:
        """Background AI review; an approval goes through the executor like an inline one."""
        try:
            verdict = await self.ai.review(c)
            if not verdict.approved:
                log.info(
                    "bot_decision",
                    symbol=c.symbol,
                    regime=c.regime,
                    action="SKIP",
                    reason_code=f"ai_{verdict.reason_code}",
                    reason=verdict.reasoning[:200],
                )
                self.metrics.entry_decisions.labels(reason=f"ai_{verdict.reason_code}").inc()
                return
            now = self.clock.now()
            if (now - c.candle_ts).total_seconds() > self.app.bot.max_candle_age_s + 60:
                log.warning("ai_verdict_too_late", symbol=c.symbol)
                return
            marks = {**self._marks, c.symbol: c.price}
            cap = Decimal(repr(c.order_krw))
            self._log(await self._execute(c, now, marks, {}, dict(c.indicators), cap))
        except Exception:
            log.exception("ai_review_task_failed", symbol=c.symbol)
        finally:
            self._inflight.pop(c.symbol, None)

    # -- minute-driven decisions -------------------------------------------------------

    def _horizon(self, now: datetime) -> datetime:
        """The oldest minute whose candle closed at most max_candle_age_s ago."""
        return floor_minute(now - timedelta(seconds=self.app.bot.max_candle_age_s))

    async def _resume_point(self, now: datetime) -> None:
        """Each symbol continues after its last decided minute, but not before the horizon."""
        rows = await self.pool.fetch(
            "SELECT symbol, minute FROM bot_decided_minutes WHERE symbol = ANY($1::text[])",
            self.watched_symbols(),
        )
        done = {r["symbol"]: r["minute"] for r in rows}
        horizon = self._horizon(now)
        skipped = {}
        for sym in self.watched_symbols():
            last = done.get(sym)
            self.decided[sym] = max(last, horizon - MINUTE) if last else horizon - MINUTE
            if last is not None and last < horizon - MINUTE:
                skipped[sym] = int((horizon - MINUTE - last) / MINUTE)
        if skipped:
            log.warning("minutes_not_decided_while_down", minutes=max(skipped.values()),
                        symbols=len(skipped), reason="the daemon was not running")  # fmt: skip
        log.info("bot_decisions_start", first_minute=horizon.isoformat(),
                 symbols=len(self.symbols))  # fmt: skip

    async def _explain_waiting_exits(self) -> None:
        """A held symbol without a fresh candle: its status says the exit waits, and why."""
        now = self.clock.now()
        state = await ledger.load_state(self.pool, self.app, now, {})
        held = [s for s in self.watched_symbols() if s in state.positions]
        inputs = await self.load_inputs(now, held) if held else None
        waiting = {}
        for sym in held:
            assert inputs is not None
            if not self._fresh(inputs.candles.get(sym), now):
                waiting[sym] = await self._exit(sym, inputs, state)
        if not waiting:
            return
        log.warning("exits_waiting_for_fresh_candles", symbols=sorted(waiting))
        with contextlib.suppress(*REDIS_ERRORS):
            for o in waiting.values():
                payload = json.dumps(self._status(o, state, now), default=str, ensure_ascii=False)
                await self.redis.set(self.keys.status(o.symbol), payload,
                                     ex=self.app.bot.status_ttl_s)  # fmt: skip

    def _absorb(self, event: MinuteStored) -> None:
        sym, minute = event.symbol, event.minute
        self.stored[sym] = max(minute, self.stored.get(sym, minute))
        if minute > self.decided.get(sym, minute - MINUTE):
            self.published.setdefault(sym, set()).add(minute)

    def _ready(self, sym: str, minute: datetime, now: datetime) -> bool:
        """Is ``minute`` of ``sym`` final? Stored, or (no trades in it) a later one is stored.

        A minute without a row while a later one exists had no trades, or is a gap the
        collector is still filling (after a reconnect): the latter gets ``late_symbol_s``
        after the close to arrive.
        """
        top = self.stored.get(sym)
        if top is None or top < minute:
            return False
        if minute <= self.caught_up_to.get(sym, minute - MINUTE):
            return True
        if minute in self.published.get(sym, ()):
            return True
        return now >= minute + MINUTE + timedelta(seconds=self.app.bot.late_symbol_s)

    def next_batch(self, now: datetime) -> tuple[datetime, list[str]] | float | None:
        """The next minute to decide and its symbols, or seconds to wait, or None (idle).

        Minutes are decided in order, every symbol of a minute together (the backtest's
        order: exits, then entries). A symbol whose minute is not stored yet holds the
        others back for at most ``late_symbol_s`` after the close; after that they go
        on without it and it is decided on its own when its minutes arrive, never skipped.
        """
        watched = self.watched_symbols()
        for sym in watched:  # a symbol newly held (or first seen) starts at the horizon
            self.decided.setdefault(sym, self._horizon(now) - MINUTE)
        nxt = {s: self.decided[s] + MINUTE for s in watched}
        ready = {s: m for s, m in nxt.items() if self._ready(s, m, now)}
        if not ready:
            return None
        minute = min(ready.values())
        grace = timedelta(seconds=self.app.bot.late_symbol_s)
        waits = [(m + MINUTE + grace - now).total_seconds() for s, m in nxt.items()
                 if s not in ready and m <= minute and now < m + MINUTE + grace]  # fmt: skip
        if waits:
            return max(0.01, min(waits))
        return minute, [s for s in watched if ready.get(s) == minute]

    async def decide(self, minute: datetime, symbols: list[str]) -> None:
        """One minute of these symbols, at the moment the live loop would have seen it."""
        at = minute + MINUTE + timedelta(seconds=self.offset_s)
        if self.jobs is not None:
            await self.jobs.ensure_regime(at)
        if not await self.run_once(at, symbols):  # not trading (the daemon lock is lost)
            raise TransientError(f"minute {minute:%H:%M} not decided: {self.state.degraded_reason}")
        await self.pool.execute(
            """INSERT INTO bot_decided_minutes (symbol, minute, decided_at)
               SELECT unnest($1::text[]), $2, now()
               ON CONFLICT (symbol) DO UPDATE
               SET minute = EXCLUDED.minute, decided_at = EXCLUDED.decided_at""",
            symbols, minute,
        )  # fmt: skip
        latency = (self.clock.now() - (minute + MINUTE)).total_seconds()
        for sym in symbols:
            gap = int((minute - self.decided[sym]) / MINUTE) - 1
            if gap > 0:  # cannot happen while minutes are decided in order; counted if it does
                self.metrics.minutes_missed.inc(gap)
            self.decided[sym] = minute
            if sym in self.published:
                self.published[sym] = {m for m in self.published[sym] if m > minute}
            self.metrics.decision_latency.observe(latency)
        self.metrics.minutes_decided.inc(len(symbols))

    async def decide_ready(self) -> float:
        """Decide every minute that is ready; return how long to wait for more."""
        assert self._events is not None
        while True:
            for event in self._events.drain():
                self._absorb(event)
            batch = self.next_batch(self.clock.now())
            if batch is None:
                return self.IDLE_S
            if isinstance(batch, float):
                return min(batch, self.IDLE_S)
            minute, symbols = batch
            if not await self.cycle(functools.partial(self.decide, minute, symbols)):
                return self.RETRY_S  # nothing was marked decided: the same minute again

    IDLE_S = 1.0
    RETRY_S = 2.0

    async def _run_on_events(self, stop: asyncio.Event) -> None:
        assert self._events is not None
        self.state.running = True
        try:
            if not stop.is_set():
                await self.startup()
            while not stop.is_set():
                wait_s = await self.decide_ready()
                self.state.last_cycle = self.clock.now()  # the loop is alive
                with contextlib.suppress(TimeoutError):
                    self._absorb(await asyncio.wait_for(self._events.get(), timeout=wait_s))
        finally:
            self.state.running = False

    async def drain(self, timeout_s: float) -> None:
        """Let in-flight AI reviews finish within the shutdown budget, then cancel them."""
        tasks = list(self._inflight.values())
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def run(self, stop: asyncio.Event) -> None:
        try:
            if self._events is not None:
                await self._run_on_events(stop)
            else:
                await super().run(stop)
        finally:
            await self.drain(self.app.bot.drain_budget_s / 2)

    # -- reporting ---------------------------------------------------------------------

    def _log(self, o: Outcome) -> None:
        self.metrics.entry_decisions.labels(reason=o.reason_code).inc()
        event = log.error if o.action == "ERROR" else log.info
        event(
            "bot_decision",
            symbol=o.symbol,
            regime=o.regime,
            action=o.action,
            reason_code=o.reason_code,
            reason=o.reason.split("\n")[0][:200],
            price=o.price,
            minute=o.minute.isoformat() if o.minute else None,
        )

    def _status(self, o: Outcome, state: ledger.LedgerState, now: datetime) -> dict[str, Any]:
        pos = state.positions.get(o.symbol)
        position: dict[str, Any] = {"has_position": pos is not None, "pnl_pct": 0.0}
        if pos is not None:
            pnl = (
                (float(o.price) - float(pos.avg_price)) / float(pos.avg_price) * 100
                if o.price
                else 0.0
            )
            position.update(
                avg_price=str(pos.avg_price),
                quantity=str(pos.quantity),
                pnl_pct=round(pnl, 4),
                regime=pos.regime,
                hwm=str(pos.high_water_mark),
                opened_at=pos.opened_at.isoformat(),
            )
        ind = o.indicators
        return {
            "timestamp": now.isoformat(), "symbol": o.symbol, "current_price": o.price,
            "candle_ts": o.candle_ts.isoformat() if o.candle_ts else None,
            "regime": o.regime, "action": o.action, "reason": o.reason,
            "reason_code": o.reason_code, "position": position,
            "indicators": {"rsi": ind.get("rsi14"), "rsi7": ind.get("rsi7"),
                           "ma_trend": ind.get("ma"), "bb_lower": ind.get("bb_lower"),
                           "vol_ratio": ind.get("vol_ratio"),
                           "hwm": str(pos.high_water_mark) if pos else 0},
        }  # fmt: skip

    async def _publish(
        self, outcomes: dict[str, Outcome], inputs: Inputs, state: ledger.LedgerState
    ) -> None:
        state = await ledger.load_state(self.pool, self.app, inputs.now, inputs.marks)
        for o in outcomes.values():
            self._log(o)
        m, marks = self.metrics, inputs.marks
        equity = state.equity(marks)
        m.equity.set(float(equity))
        m.cash.set(float(state.account.cash))
        m.exposure.set(float(state.exposure(marks)))
        m.open_positions.set(len(state.positions))
        m.daily_pnl.set(float(equity - state.day.opening_equity))
        m.trading_halted.set(1 if state.day.is_trading_halted else 0)
        ttl = self.app.bot.status_ttl_s
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for o in outcomes.values():
                    payload = json.dumps(self._status(o, state, inputs.now), default=str,
                                         ensure_ascii=False)  # fmt: skip
                    pipe.set(self.keys.status(o.symbol), payload, ex=ttl)
                await pipe.execute()
        except REDIS_ERRORS as exc:
            self._redis_failed(exc)


_STATUS_FIELDS = ("close", "rsi14", "rsi7", "ma", "bb_lower", "vol_ratio")


def _status_indicators(snap: IndicatorSnapshot) -> dict[str, Any]:
    """The few values a status shows; ``as_dict`` costs a deep copy per symbol per cycle."""
    out: dict[str, Any] = {}
    for name in _STATUS_FIELDS:
        value = getattr(snap, name)
        out[name] = None if value != value else value
    return out


def bot_factory(deps: Any) -> list[BotService]:
    from coinpilot.services.agent import build_ai_step

    jobs = deps.extras.get("scheduler")
    if jobs is not None:
        jobs.defer_startup_jobs = True  # after the backfill, see BotService.startup
    bot = BotService(
        settings=deps.settings, pool=deps.pool, redis=deps.redis, keys=deps.keys,
        clock=deps.clock, health=deps.health, metrics=deps.metrics,
        ai=build_ai_step(deps), events=deps.minute_events,
        collector=deps.extras.get("collector"), jobs=jobs, lock=getattr(deps, "lock", None),
    )  # fmt: skip
    deps.extras["bot"] = bot
    return [bot]
