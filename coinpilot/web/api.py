"""Dashboard payloads: one function per view, shared by the JSON API and the HTML pages.

Money stays Decimal until the response encoder turns it into a string, so the API is
exact; the pages format it for people. Redis is optional here: when it is down the views
still render from PostgreSQL and say which parts are missing.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import asyncpg
import structlog

from coinpilot.adapters import ledger
from coinpilot.adapters.cache import REDIS_ERRORS
from coinpilot.domain.exits import effective_exit_params
from coinpilot.domain.fills import is_win
from coinpilot.domain.indicators import rsi
from coinpilot.domain.report import max_drawdown_pct
from coinpilot.services import control
from coinpilot.web import queries as q
from coinpilot.web.series import bollinger, moving_average, regime_spans

if TYPE_CHECKING:
    from coinpilot.app import Deps

log = structlog.get_logger(__name__)

HUNDRED = Decimal(100)
DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)
INTERVALS = {"1m": 240, "1h": 168}
STEP = {"1m": timedelta(minutes=1), "1h": timedelta(hours=1)}


def trade_day(now: datetime, tz: ZoneInfo) -> date:
    return now.astimezone(tz).date()


def day_window(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) of a calendar day in the configured time zone, as UTC instants."""
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    return start.astimezone(UTC), (start + timedelta(days=1)).astimezone(UTC)


async def _redis_get_many(deps: Deps, keys: list[str]) -> list[str | None] | None:
    """GET several keys in one round trip; None when Redis is unreachable."""
    if not keys:
        return []
    try:
        return list(await deps.redis.mget(keys))
    except REDIS_ERRORS as exc:
        deps.metrics.dependency_error("redis", "dashboard_read")
        log.warning("dashboard_redis_unavailable", error=type(exc).__name__)
        return None


def _json_or_none(raw: str | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _mark(pos: q.Row, price: Decimal | None) -> dict[str, Any]:
    qty, avg = pos["quantity"], pos["avg_price"]
    mark = price if price is not None else avg
    value = qty * mark
    return {
        **pos,
        "price": price,
        "value": value,
        "pnl_krw": value - pos["cost_basis"],
        "pnl_pct": ((mark - avg) / avg * HUNDRED).quantize(Decimal("0.01")),
    }


async def _book(deps: Deps, conn: asyncpg.Connection) -> dict[str, Any]:
    """Account, marked positions, equity and today's risk row: shared by Overview and Risk."""
    symbols = list(deps.settings.app.symbols)
    positions = await q.positions(conn)
    latest = await q.latest_candles(conn, sorted({*symbols, *(p["symbol"] for p in positions)}))
    acct = await q.account(conn)
    today = trade_day(deps.clock.now(), deps.settings.app.tz)
    daily = await q.daily_risk(conn, today)
    marked = [_mark(p, latest.get(p["symbol"], {}).get("close_price")) for p in positions]
    cash = acct["cash"] if acct else deps.settings.app.risk.initial_balance_krw
    exposure = sum((p["value"] for p in marked), Decimal(0))
    equity = cash + exposure
    day_pnl = equity - daily["opening_equity"] if daily else None
    return {
        "account": acct,
        "account_initialized": acct is not None,
        "cash": cash,
        "exposure": exposure,
        "equity": equity,
        "exposure_pct": (exposure / equity * HUNDRED).quantize(Decimal("0.01")) if equity else None,
        "positions": marked,
        "latest": latest,
        "trade_date": today,
        "today": daily,
        "today_pnl": day_pnl,
    }


async def _performance(
    deps: Deps, conn: asyncpg.Connection, book: dict[str, Any]
) -> dict[str, Any]:
    """All-time figures and the realized equity curve, from bounded reads.

    PnL, gross and fees are all-time from the account row. Win rate, round trips and max
    drawdown cover the newest ``MAX_ROUND_TRIPS`` round trips (all of them until there are
    more, and ``complete`` says so). The curve is the equity after each round trip's net
    PnL, anchored so that its last point is the account's realized equity.
    """
    acct = book["account"] or {}
    initial = acct.get("initial_balance", Decimal(deps.settings.app.risk.initial_balance_krw))
    gross = acct.get("realized_pnl", Decimal(0))
    fees = acct.get("fees_paid", Decimal(0))
    trips = await q.recent_round_trips(conn)
    open_fees = await q.open_entry_fees(conn) if book["positions"] else Decimal(0)
    nets = [t["net_pnl"] for t in trips]
    realized_equity = initial + gross - fees + open_fees  # every closed round trip, net
    start = realized_equity - sum(nets, Decimal(0))
    curve, equity = [], start
    for t, net in zip(trips, nets, strict=True):
        equity += net
        curve.append({"t": _epoch(t["exit_at"]), "equity": equity})
    wins = sum(1 for n in nets if is_win(n))
    cost = sum((p["cost_basis"] for p in book["positions"]), Decimal(0))
    return {
        "pnl_krw": book["equity"] - initial,
        "gross_krw": gross,
        "fees_krw": fees,
        "unrealized_krw": book["exposure"] - cost,
        "round_trips": len(trips),
        "complete": len(trips) < q.MAX_ROUND_TRIPS,
        "wins": wins,
        "win_rate_pct": (Decimal(wins) / len(trips) * HUNDRED) if trips else None,
        "max_drawdown_pct": max_drawdown_pct(start, nets),
        "curve_start": start,
        "curve": curve,
    }


async def overview(deps: Deps) -> dict[str, Any]:
    async with deps.pool.acquire() as conn:
        book = await _book(deps, conn)
        book["performance"] = await _performance(deps, conn, book)
    symbols = list(deps.settings.app.symbols)
    keys = [deps.keys.status(s) for s in symbols] + [deps.keys.regime(s) for s in symbols]
    raw = await _redis_get_many(deps, keys)
    statuses = raw[: len(symbols)] if raw is not None else [None] * len(symbols)
    regimes = raw[len(symbols) :] if raw is not None else [None] * len(symbols)
    book["symbols"] = [
        {
            "symbol": s,
            "regime": regimes[i],
            "status": _json_or_none(statuses[i]),
            "price": book["latest"].get(s, {}).get("close_price"),
            "candle_ts": book["latest"].get(s, {}).get("ts"),
        }
        for i, s in enumerate(symbols)
    ]
    acct = book["account"] or {}
    cooldown = acct.get("cooldown_until")
    book["cooldown_active"] = cooldown is not None and cooldown > deps.clock.now()
    book["redis_ok"] = raw is not None
    book["now"] = deps.clock.now()
    del book["latest"]
    return book


def _page(rows: list[q.Row], f: q.ListFilter) -> dict[str, Any]:
    return {
        "items": rows[: f.limit],
        "has_next": len(rows) > f.limit,
        "page": f.offset // f.limit + 1,
        "limit": f.limit,
    }


async def trades(deps: Deps, f: q.ListFilter) -> dict[str, Any]:
    async with deps.pool.acquire() as conn:
        return _page(await q.trades(conn, f), f)


async def round_trips(deps: Deps, f: q.ListFilter) -> dict[str, Any]:
    async with deps.pool.acquire() as conn:
        return _page(await q.round_trips(conn, f), f)


async def decisions(deps: Deps, f: q.ListFilter) -> dict[str, Any]:
    async with deps.pool.acquire() as conn:
        return _page(await q.decisions(conn, f), f)


def _usage(used: Decimal | int, limit: Decimal | int | None) -> dict[str, Any]:
    pct = None
    if limit:
        pct = (Decimal(used) / Decimal(limit) * HUNDRED).quantize(Decimal("0.1"))
    return {"used": used, "limit": limit, "pct": pct}


async def risk(deps: Deps) -> dict[str, Any]:
    limits = deps.settings.app.risk
    async with deps.pool.acquire() as conn:
        book = await _book(deps, conn)
        audit = await q.risk_audit(conn)
    daily = book["today"] or {}
    acct = book["account"] or {}
    opening = daily.get("opening_equity", book["equity"])
    loss = max(Decimal(0), -(book["today_pnl"] or Decimal(0)))
    max_frac = Decimal(str(limits.max_total_exposure))
    loss_frac = Decimal(str(limits.max_daily_loss))
    cooldown = acct.get("cooldown_until")
    return {
        "trade_date": book["trade_date"],
        "equity": book["equity"],
        "usage": {
            "daily_buys": _usage(daily.get("buy_count", 0), limits.max_daily_trades),
            "open_positions": _usage(len(book["positions"]), limits.max_concurrent_positions),
            "exposure_krw": _usage(book["exposure"], (book["equity"] * max_frac).quantize(1)),
            "daily_loss_krw": _usage(loss, (opening * loss_frac).quantize(1)),
            "consecutive_losses": _usage(
                acct.get("consecutive_losses", 0), limits.cooldown_after_consecutive_losses
            ),
        },
        "max_order_krw": (book["equity"] * Decimal(str(limits.max_position_size))).quantize(1),
        "halted": bool(daily.get("is_trading_halted", False)),
        "halt_reason": daily.get("halt_reason"),
        "cooldown_until": cooldown,
        "cooldown_active": cooldown is not None and cooldown > deps.clock.now(),
        "audit": audit,
    }


def _epoch(ts: datetime) -> int:
    return int(ts.timestamp())


def _bucket(ts: datetime, interval: str) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0) if interval == "1h" else ts


def _levels(pos: q.Row | None, regime: str | None, deps: Deps) -> list[dict[str, Any]]:
    """The open position's entry, stop-loss, take-profit and trailing levels, as the exit
    rules would test them now (the entry regime's, or after a change the current one's
    with the tighter stop loss)."""
    if pos is None:
        return []
    p = effective_exit_params(pos["regime"], regime, deps.settings.app.regimes)
    avg, hwm = pos["avg_price"], pos["high_water_mark"]
    frac = lambda x: Decimal(repr(float(x)))  # noqa: E731 (the exit rules' own conversion)
    activation = avg * (1 + frac(p.trailing_stop_activation_pct))
    active = hwm >= activation
    levels = [
        {"kind": "entry", "label": "entry", "price": avg},
        {"kind": "stop_loss", "label": "stop loss", "price": avg * (1 - frac(p.stop_loss_pct))},
        {"kind": "take_profit", "label": "take profit",
         "price": avg * (1 + frac(p.take_profit_pct))},
    ]  # fmt: skip
    if active:
        trail = hwm * (1 - frac(p.trailing_stop_pct))
        levels.append({"kind": "trailing_stop", "label": "trailing stop", "price": trail})
    else:
        levels.append({"kind": "trailing_activation", "label": "trailing starts",
                       "price": activation})  # fmt: skip
    return levels


async def market(deps: Deps, symbol: str, interval: str) -> dict[str, Any]:
    """Candles with MA20, Bollinger bands, RSI14, regime spans, fill markers and the open
    position's exit levels, oldest first."""
    count = INTERVALS[interval]
    warmup = 60  # MA20 needs 19 earlier candles; RSI14's smoothing settles within ~60
    async with deps.pool.acquire() as conn:
        if interval == "1h":
            rows = await q.candles_1h(conn, symbol, count + warmup)
        else:
            rows = await q.candles_1m(conn, symbol, count + warmup)
        closes = [float(r["close_price"]) for r in rows]
        ma = moving_average(closes, 20)
        _, upper, lower = bollinger(closes)
        rsi14 = [None if v != v else round(float(v), 2) for v in rsi(closes, 14)] if rows else []
        rows, ma, upper, lower = rows[-count:], ma[-count:], upper[-count:], lower[-count:]
        rsi14 = rsi14[-count:]
        spans: list[dict[str, Any]] = []
        fills: list[q.Row] = []
        if rows:
            start = rows[0]["ts"]
            end = rows[-1]["ts"] + STEP[interval]
            regimes = await q.regimes_between(conn, symbol, start, end)
            spans = regime_spans([(r["detected_at"], r["regime"]) for r in regimes], start, end)
            # A fill executes just after its candle closes: read a minute past the window
            # so the newest candle's fill is drawn as soon as the page reports it.
            found = await q.trades_between(conn, symbol, start, end + timedelta(minutes=1))
            fills = [f for f in found if start <= (f["candle_ts"] or f["executed_at"]) < end]
        held = next((p for p in await q.positions(conn) if p["symbol"] == symbol), None)
    raw = await _redis_get_many(deps, [deps.keys.status(symbol), deps.keys.regime(symbol)])
    regime = raw[1] if raw else None
    tz = deps.settings.app.tz
    return {
        "symbol": symbol,
        "interval": interval,
        "timezone": deps.settings.app.timezone,
        "tz_label": deps.clock.now().astimezone(tz).strftime("%Z"),
        "candles": [
            {
                "t": _epoch(r["ts"]),
                "o": float(r["open_price"]),
                "h": float(r["high_price"]),
                "l": float(r["low_price"]),
                "c": float(r["close_price"]),
                "v": float(r["volume"]),
            }
            for r in rows
        ],
        "ma20": ma,
        "bb_upper": upper,
        "bb_lower": lower,
        "rsi14": rsi14,
        "regimes": [
            {"start": _epoch(s["start"]), "end": _epoch(s["end"]), "regime": s["regime"]}
            for s in spans
        ],
        "trades": [
            {
                "t": _epoch(_bucket(f["candle_ts"] or f["executed_at"], interval)),
                "side": f["side"],
                "price": float(f["price"]),
                "quantity": str(f["quantity"]),
                "executed_at": _epoch(f["executed_at"]),
                "exit_reason": f["exit_reason"],
            }
            for f in fills
        ],
        "position": held,
        "levels": _levels(held, regime, deps),
        "status": _json_or_none(raw[0]) if raw else None,
        "regime": regime,
    }


async def _guardrails(deps: Deps) -> dict[str, Any] | None:
    """Current AI guardrail state straight from Redis (None when Redis is down)."""
    k, now, symbols = deps.keys, deps.clock.now(), list(deps.settings.app.symbols)
    cfg = deps.settings.app.ai.guardrails
    try:
        pipe = deps.redis.pipeline(transaction=False)
        for key in (k.ai_global_block(), k.ai_usage_hour(now), k.ai_usage_day(now)):
            pipe.get(key)
        pipe.ttl(k.ai_global_block())
        pipe.get(k.ai_error_streak())
        for s in symbols:
            pipe.ttl(k.ai_symbol_cooldown(s))
            pipe.get(k.ai_reject_count(s))
        res = await pipe.execute()
    except REDIS_ERRORS as exc:
        deps.metrics.dependency_error("redis", "dashboard_read")
        log.warning("dashboard_redis_unavailable", error=type(exc).__name__)
        return None
    block, hour, day, block_ttl, streak = res[:5]
    per = res[5:]
    return {
        "global_block": block,
        "global_block_ttl_s": block_ttl if block is not None and block_ttl > 0 else None,
        "error_streak": int(streak or 0),
        "error_streak_threshold": cfg.error_streak_threshold,
        "calls_this_hour": _usage(int(hour or 0), cfg.max_calls_per_hour),
        "calls_today": _usage(int(day or 0), cfg.max_calls_per_day),
        "symbols": [
            {
                "symbol": s,
                "cooldown_s": per[2 * i] if per[2 * i] > 0 else None,
                "reject_count": int(per[2 * i + 1] or 0),
            }
            for i, s in enumerate(symbols)
        ],
    }


async def system(deps: Deps) -> dict[str, Any]:
    from coinpilot.httpserver import health_report

    code, health = await health_report(deps)
    now = deps.clock.now()
    symbols = list(deps.settings.app.symbols)
    try:
        async with deps.pool.acquire() as conn:
            latest = await q.latest_candles(conn, symbols)
            jobs = await q.job_runs(conn)
            outbox: dict[str, Any] | None = await q.outbox_state(conn)
            controls: dict[str, Any] | None = vars(await control.state(conn))
            held = sorted(await ledger.positions(conn))
    except DB_ERRORS as exc:
        # The System page is where an operator looks when the database is down: still render.
        deps.metrics.dependency_error("postgres", "dashboard_read")
        log.warning("dashboard_query_failed", path="system", error=type(exc).__name__)
        latest, jobs, outbox, controls, held = {}, [], None, None, []
    candles = []
    for s in symbols:
        ts = latest.get(s, {}).get("ts")
        age = max(0.0, (now - ts).total_seconds() - 60) if ts is not None else None
        candles.append({"symbol": s, "last_candle": ts, "age_s": age})
    return {
        "now": now,
        "health": health,
        "healthy": code == 200,
        "candles": candles,
        "jobs": jobs,
        "outbox": outbox,
        "control": controls,
        "positions": held,
        "ai": {
            "mode": deps.settings.ai_mode,
            "model": deps.settings.model_id,
            "guardrails": await _guardrails(deps),
        },
    }
