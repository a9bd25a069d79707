"""A deliberately naive backtest for tests: every tick, every symbol, the live functions.

No vectorisation and no skipping: ``compute_snapshot`` + ``evaluate_entry`` and
``evaluate_exit`` at each minute, the HWM carried as the exit check returns it. The fast
engine must produce exactly the same trades.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from coinpilot.backtest import rules
from coinpilot.backtest.book import Book, Day, Position
from coinpilot.backtest.model import Trade
from coinpilot.backtest.summary import day_keys
from coinpilot.backtest.timeline import REGIME_CODES, build_timeline, regimes
from coinpilot.config import AppConfig
from coinpilot.domain.candles import Candles
from coinpilot.domain.exits import evaluate_exit
from coinpilot.domain.snapshot import IndicatorParams, compute_snapshot
from coinpilot.domain.strategy import evaluate_entry


def _utc(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def reference_trades(
    candles: dict[str, Candles], app: AppConfig, fixed_regime: str | None = None
) -> list[Trade]:
    tl = build_timeline(candles, int(app.bot.offset_s))
    regs = regimes(candles, tl, app, fixed_regime)
    ticks = tl.minutes + 60 + tl.tick_offset
    days = day_keys(ticks, app.tz)
    book = Book(cash=Decimal(app.risk.initial_balance_krw))
    window = app.bot.candle_window
    for k in range(len(tl)):
        now = int(ticks[k])
        for sym, pos in book.positions.items():
            pos.last_close = float(candles[sym].close[tl.index[sym][k]])
        if book.day is None or book.day.key != int(days[k]):
            book.day = Day(key=int(days[k]), opening_equity=book.equity())
        views = {}
        for sym, c in candles.items():
            i = int(tl.index[sym][k])
            if i < 0:
                continue
            regime = REGIME_CODES[int(regs[sym][k])]
            params = IndicatorParams.for_regime(regime, app.regimes)
            views[sym] = (
                i,
                regime,
                compute_snapshot(c.slice(max(0, i + 1 - window), i + 1), params, window),
            )
        for sym, (_i, regime, snap) in views.items():
            if sym in book.positions:
                _exit(book, sym, snap, regime, now, app)
        for sym, (i, regime, snap) in views.items():
            if sym in book.positions or int(candles[sym].ts[i]) != int(tl.minutes[k]):
                continue
            decision = evaluate_entry(snap, regime, app.regimes, min_candles=app.bot.min_candles)
            if decision.passed:
                _buy(book, sym, snap.close, regime, now, app)
    return book.trades


def _exit(book: Book, sym: str, snap, regime: str, now: int, app: AppConfig) -> None:  # type: ignore[no-untyped-def]
    pos = book.positions[sym]
    d = evaluate_exit(
        avg_price=pos.avg_price, opened_at=_utc(pos.opened_ts), entry_regime=pos.regime,
        hwm=pos.hwm, close=snap.close, rsi14=snap.rsi14, current_regime=regime,
        regimes=app.regimes, now=_utc(now),
    )  # fmt: skip
    if not d.should_exit:
        pos.hwm = d.new_hwm if d.new_hwm is not None else pos.hwm
        return
    del book.positions[sym]
    fill = rules.sell_fill(Decimal(repr(snap.close)), pos.quantity, app.fills)
    book.cash += fill.notional - fill.fee
    old = book.trades[pos.trade_index]
    t = Trade(old.symbol, old.regime, old.entry_ts, old.entry_price, old.quantity, old.entry_fee,
              now, fill.price, fill.fee, d.reason or "")  # fmt: skip
    book.trades[pos.trade_index] = t
    rules.after_sell(book, t.pnl, now, app)


def _buy(book: Book, sym: str, close: float, regime: str, now: int, app: AppConfig) -> None:
    if rules.check_entry(book, sym, now, app) is not None:
        return
    amount = rules.order_amount(book, app.regimes[regime].position_size_ratio, 1.0, app)  # type: ignore[index]
    fill = rules.buy_fill(Decimal(repr(close)), amount, app.fills)
    if fill is None:
        return
    book.cash -= fill.notional + fill.fee
    assert book.day is not None
    book.day.buy_count += 1
    book.trades.append(Trade(sym, regime, now, fill.price, fill.quantity, fill.fee))
    book.positions[sym] = Position(sym, fill.quantity, fill.price, now, regime, fill.price,
                                   len(book.trades) - 1, close)  # fmt: skip
