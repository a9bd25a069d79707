"""Server-rendered HTML for the dashboard pages. Every value passes through ``esc``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from coinpilot.config import Settings
from coinpilot.domain import money_format
from coinpilot.web import controls, tables
from coinpilot.web.tables import esc

NAV = (
    ("/", "Overview"),
    ("/market", "Market"),
    ("/history", "History"),
    ("/risk", "Risk"),
    ("/system", "System"),
)
REFRESH_S = 30


@dataclass(frozen=True)
class Ctx:
    """What every page renderer needs besides its payload."""

    settings: Settings
    request: web.Request
    now: datetime


def layout(title: str, active: str, body: str, ctx: Ctx) -> str:
    settings = ctx.settings
    links = "".join(
        f'<a href="{href}"{" aria-current=page" if href == active else ""}>{name}</a>'
        for href, name in NAV
    )
    stamp = "as of " + tables.when(ctx.now, settings.app.tz)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>CoinPilot · {esc(title)}</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/dashboard.css">
<script src="/static/chart.js" defer></script>
<script src="/static/dashboard.js" defer></script>
</head><body data-refresh-s="{REFRESH_S}">
<header><span class="brand">CoinPilot</span><nav>{links}</nav>
<span class="stamp" id="stamp">{esc(stamp)}</span></header>
<main id="main">
<h1>{esc(title)}</h1>
{body}
</main></body></html>"""


def card(label: str, value: str, tone: str = "") -> str:
    cls = f"card {tone}".strip()
    return (
        f'<div class="{cls}"><div class="label">{esc(label)}</div>'
        f'<div class="value">{value}</div></div>'
    )


def section(title: str, content: str, note: str = "") -> str:
    extra = f'<p class="note">{esc(note)}</p>' if note else ""
    return f"<section><h2>{esc(title)}</h2>{extra}{content}</section>"


def _tone(value: Decimal | None) -> str:
    if value is None or value == 0:
        return ""
    return "up" if value > 0 else "down"


def overview(p: dict[str, Any], ctx: Ctx) -> str:
    settings = ctx.settings
    tz = settings.app.tz
    today = p["today"] or {}
    acct = p["account"] or {}
    halted = bool(today.get("is_trading_halted"))
    cards = [
        card("Equity (KRW)", tables.krw(p["equity"])),
        card("Cash (KRW)", tables.krw(p["cash"])),
        card("Exposure", f"{tables.krw(p['exposure'])} <small>{esc(p['exposure_pct'])}%</small>"),
        card("Today's PnL (KRW)", tables.signed(p["today_pnl"]), _tone(p["today_pnl"])),
        card(
            "Trades today",
            f"{esc(today.get('trade_count', 0))} <small>{esc(today.get('buy_count', 0))} buy / "
            f"{esc(today.get('sell_count', 0))} sell</small>",
        ),
        card("Consecutive losses", esc(acct.get("consecutive_losses", 0))),
        card(
            "Trading",
            "HALTED" if halted else "active",
            "down" if halted else "up",
        ),
        card(
            "Cooldown",
            f"until {esc(tables.when(acct.get('cooldown_until'), tz))}"
            if p["cooldown_active"]
            else "none",
            "down" if p["cooldown_active"] else "",
        ),
    ]
    notes = []
    if not p["account_initialized"]:
        notes.append("No paper account yet: showing the configured initial balance.")
    if halted and today.get("halt_reason"):
        notes.append(f"Halt reason: {today['halt_reason']}")
    if not p["redis_ok"]:
        notes.append("Redis is unreachable: last decisions and regimes are not shown.")
    note_html = "".join(f'<p class="note warn">{esc(n)}</p>' for n in notes)
    body = (
        f'<div class="cards">{"".join(cards)}</div>{note_html}'
        + _performance(p["performance"], tz)
        + section("Open positions", tables.positions(p["positions"], tz))
        + section("Last decision per symbol", tables.symbol_status(p["symbols"], tz))
    )
    return layout("Overview", "/", body, ctx)


def _performance(perf: dict[str, Any], tz: Any) -> str:
    """All-time PnL net of fees (gross, fees and open positions beside it) and the curve."""
    n = perf["round_trips"]
    scope = "" if perf["complete"] else f" (latest {n:,})"
    cards = [
        card(
            "All-time PnL (KRW)",
            f"{tables.signed(perf['pnl_krw'])} <small>gross {tables.signed(perf['gross_krw'])}"
            f" · fees {tables.krw(perf['fees_krw'])} · open "
            f"{tables.signed(perf['unrealized_krw'])}</small>",
            _tone(perf["pnl_krw"]),
        ),
        card(
            f"Win rate{scope}",
            f"{esc(money_format.percent(perf['win_rate_pct']))}"
            f" <small>{esc(perf['wins'])}/{esc(n)}</small>",
        ),
        card(f"Round trips{scope}", esc(f"{n:,}")),
        card(f"Max drawdown{scope}", esc(money_format.percent(perf["max_drawdown_pct"]))),
        card("Fees paid (KRW)", tables.krw(perf["fees_krw"])),
    ]
    return f'<div class="cards" id="all-time">{"".join(cards)}</div>' + section(
        "Equity",
        tables.equity_svg(perf["curve"], perf["curve_start"], tz),
        "Realized equity after each closed round trip, net of both fees; "
        "open positions are in the equity card above.",
    )


def _link(path: str, label: str, params: dict[str, Any], current: bool) -> str:
    query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
    attr = " aria-current=page" if current else ""
    return f'<a href="{path}?{esc(query)}"{attr}>{esc(label)}</a>'


def market(p: dict[str, Any], ctx: Ctx) -> str:
    settings = ctx.settings
    tz = settings.app.tz
    sym, interval = p["symbol"], p["interval"]
    tabs = "".join(
        _link("/market", s, {"symbol": s, "interval": interval}, s == sym)
        for s in settings.app.symbols
    )
    toggles = "".join(
        _link("/market", label, {"symbol": sym, "interval": iv}, iv == interval)
        for iv, label in (("1m", "1 minute"), ("1h", "1 hour"))
    )
    status = p["status"] or {}
    chart = (
        f'<figure class="chart-box"><canvas id="chart" class="chart" '
        f'aria-label="{esc(sym)} candles"></canvas>'
        f'<script type="application/json" id="chart-data">{tables.json_for_script(p)}</script>'
        '<figcaption class="legend"><span class="k-ma">MA20</span><span class="k-bb">Bollinger'
        ' 20, 2σ</span><span class="k-buy">▲ buy</span><span class="k-sell">▼ sell</span>'
        '<span class="k-bull">BULL</span><span class="k-side">SIDEWAYS</span>'
        '<span class="k-bear">BEAR</span><span class="k-sl">stop loss</span>'
        '<span class="k-tp">take profit</span><span class="k-trail">trailing</span>'
        '<span class="k-rsi">RSI14 (30/70)</span>'
        f"<span>times in {esc(settings.app.timezone)} ({esc(p['tz_label'])})</span>"
        "</figcaption></figure>"
    )
    if not p["candles"]:
        chart = '<p class="empty">No candles stored for this symbol yet.</p>'
    facts = (
        f'<div class="cards">{card("Regime", esc(p["regime"] or "unknown"))}'
        f"{card('Last action', esc(status.get('action', '—')))}"
        f"{card('Price', tables.price(status.get('current_price')))}</div>"
    )
    reason = status.get("reason")
    reason_html = f'<p class="reason">{esc(reason)}</p>' if reason else ""
    mark = p["candles"][-1]["c"] if p["candles"] else None
    body = (
        f'<nav class="tabs">{tabs}</nav><nav class="tabs small">{toggles}</nav>'
        f"{chart}{facts}{reason_html}"
        + section("Open position: exit levels", tables.levels(p["levels"], mark))
        + section("Fills in this window", tables.markers(p["trades"], tz))
    )
    return layout(f"Market · {sym}", "/market", body, ctx)


def _filter_form(request: web.Request, settings: Settings) -> str:
    chosen = request.query.get("symbol", "")
    options = ['<option value="">all symbols</option>'] + [
        f'<option value="{esc(s)}"{" selected" if s == chosen else ""}>{esc(s)}</option>'
        for s in settings.app.symbols
    ]
    day = esc(request.query.get("day", ""))
    return (
        '<form class="filters" method="get" action="/history">'
        f'<label>Symbol <select name="symbol" id="f-symbol">{"".join(options)}</select></label>'
        f'<label>Day ({esc(settings.app.timezone)}) <input type="date" name="day" id="f-day"'
        f' value="{day}"></label><button type="submit" id="f-apply">Filter</button>'
        '<a href="/history">clear</a></form>'
    )


def _pager(request: web.Request, key: str, page: dict[str, Any]) -> str:
    params = dict(request.query)
    links = []
    if page["page"] > 1:
        links.append(_link("/history", "← newer", {**params, key: page["page"] - 1}, False))
    links.append(f"<span>page {esc(page['page'])}</span>")
    if page["has_next"]:
        links.append(_link("/history", "older →", {**params, key: page["page"] + 1}, False))
    return f'<nav class="pager">{"".join(links)}</nav>'


def history(p: dict[str, Any], ctx: Ctx) -> str:
    settings, request = ctx.settings, ctx.request
    tz = settings.app.tz
    trips, trades, decisions = p["round_trips"], p["trades"], p["decisions"]
    body = (
        _filter_form(request, settings)
        + section(
            "Round trips",
            tables.round_trips(trips["items"], tz) + _pager(request, "rpage", trips),
            "Net PnL is after the BUY's and the SELL's fee; gross and fees are beside it.",
        )
        + section("Fills", tables.trades(trades["items"], tz) + _pager(request, "tpage", trades))
        + section(
            "AI decisions",
            tables.decisions(decisions["items"], tz) + _pager(request, "dpage", decisions),
        )
    )
    return layout("History", "/history", body, ctx)


def risk(p: dict[str, Any], ctx: Ctx) -> str:
    settings = ctx.settings
    tz = settings.app.tz
    state = []
    if p["halted"]:
        state.append(card("Trading", f"HALTED: {esc(p['halt_reason'])}", "down"))
    else:
        state.append(card("Trading", "active", "up"))
    cooldown = (
        f"until {esc(tables.when(p['cooldown_until'], tz))}" if p["cooldown_active"] else "none"
    )
    state.append(card("Cooldown", cooldown, "down" if p["cooldown_active"] else ""))
    state.append(card("Max single order (KRW)", tables.krw(p["max_order_krw"])))
    body = (
        f'<div class="cards">{"".join(state)}</div>'
        + section(f"Limits vs usage · trading day {p['trade_date']}", tables.usage(p["usage"]))
        + section("Risk audit (latest 50)", tables.audit(p["audit"], tz))
    )
    return layout("Risk", "/risk", body, ctx)


def system(p: dict[str, Any], ctx: Ctx) -> str:
    settings = ctx.settings
    tz = settings.app.tz
    health = p["health"]
    problems: Sequence[str] = health.get("problems", [])
    cards = [
        card("Status", esc(health["status"]), "up" if health["status"] == "ok" else "down"),
        _up("Database", health["database"]),
        _up("Redis", health["redis"]),
        card("Outbox backlog", esc(p["outbox"]["pending"]) if p["outbox"] else "—"),
        card("AI mode", f"{esc(p['ai']['mode'])} <small>{esc(p['ai']['model'])}</small>"),
    ]
    problem_html = _list(problems)
    body = (
        f'<div class="cards">{"".join(cards)}</div>{problem_html}'
        + section("Services", tables.services(health.get("services", {}), tz))
        + section("Candle age", tables.candle_ages(p["candles"], tz))
        + section("Scheduled jobs", tables.jobs(p["jobs"], tz))
        + section("Notifications", tables.outbox(p["outbox"], tz) if p["outbox"] else "")
        + section("AI guardrails", tables.guardrails(p["ai"]["guardrails"]))
        + section("Controls", controls.panel(p.get("control"), p.get("positions", [])))
    )
    return layout("System", "/system", body, ctx)


def _up(label: str, ok: bool) -> str:
    return card(label, "up" if ok else "DOWN", "" if ok else "down")


def _list(items: Iterable[str]) -> str:
    lis = "".join(f"<li>{esc(i)}</li>" for i in items)
    return f'<ul class="problems">{lis}</ul>' if lis else ""
