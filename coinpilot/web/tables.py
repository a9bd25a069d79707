"""HTML tables and value formatting for the pages (every cell escaped here)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from coinpilot.domain import money_format


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def when(ts: datetime | str | None, tz: ZoneInfo) -> str:
    if ts is None:
        return "—"
    if isinstance(ts, str):
        try:
            parsed = datetime.fromisoformat(ts)
        except ValueError:
            return ts
    else:
        parsed = ts
    return parsed.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z")


def krw(value: Decimal | float | None) -> str:
    return money_format.won(value)


def signed(value: Decimal | None) -> str:
    return money_format.won(value, sign=True)


def price(value: Any) -> str:
    return money_format.price(value)


def pct(value: Any) -> str:
    return money_format.percent(value, sign=True)


def qty(value: Any) -> str:
    return money_format.quantity(value)


def json_for_script(payload: Any) -> str:
    """JSON safe to embed in a <script type=application/json> element."""
    from coinpilot.web.routes import dumps

    return dumps(payload).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], empty: str, cls: str = "") -> str:
    """Cells are HTML already escaped by the caller; each carries its header for phones."""
    if not rows:
        return f'<p class="empty">{esc(empty)}</p>'
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(f'<td data-label="{esc(h)}">{c}</td>' for h, c in zip(headers, row, strict=True))
        + "</tr>"
        for row in rows
    )
    return (
        f'<div class="scroll"><table class="{esc(cls)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def _pnl_cell(value: Any) -> str:
    if value is None:
        return "—"
    tone = "up" if Decimal(str(value)) > 0 else "down" if Decimal(str(value)) < 0 else ""
    return f'<span class="{tone}">{pct(value)}</span>'


def positions(items: list[dict[str, Any]], tz: ZoneInfo) -> str:
    rows = [
        [
            esc(p["symbol"]),
            qty(p["quantity"]),
            price(p["avg_price"]),
            price(p["price"]),
            krw(p["value"]),
            _pnl_cell(p["pnl_pct"]),
            esc(p["regime"]),
            esc(when(p["opened_at"], tz)),
        ]
        for p in items
    ]
    heads = ("Symbol", "Quantity", "Avg price", "Price", "Value", "PnL", "Regime", "Opened")
    return table(heads, rows, "No open positions.", "positions")


def symbol_status(items: list[dict[str, Any]], tz: ZoneInfo) -> str:
    rows = []
    for s in items:
        st = s["status"] or {}
        rows.append(
            [
                f'<a href="/market?symbol={esc(s["symbol"])}">{esc(s["symbol"])}</a>',
                price(s["price"]),
                esc(s["regime"] or st.get("regime") or "—"),
                esc(st.get("action", "—")),
                f'<span class="reason">{esc(st.get("reason", ""))}</span>',
                esc(when(st.get("timestamp"), tz)),
            ]
        )
    heads = ("Symbol", "Price", "Regime", "Action", "Reason", "At")
    return table(heads, rows, "No symbols configured.", "status")


def markers(items: list[dict[str, Any]], tz: ZoneInfo) -> str:
    rows = [
        [
            esc(when(datetime.fromtimestamp(t["t"], tz), tz)),
            esc(when(datetime.fromtimestamp(t["executed_at"], tz), tz)),
            f'<span class="side-{esc(t["side"].lower())}">{esc(t["side"])}</span>',
            price(t["price"]),
            qty(t["quantity"]),
            esc(t["exit_reason"] or ""),
        ]
        for t in items
    ]
    heads = ("Candle", "Executed", "Side", "Price", "Quantity", "Exit reason")
    return table(heads, rows, "No fills in this window.", "fills")


def trades(items: list[dict[str, Any]], tz: ZoneInfo) -> str:
    rows = [
        [
            esc(when(t["executed_at"], tz)),
            esc(t["symbol"]),
            f'<span class="side-{esc(t["side"].lower())}">{esc(t["side"])}</span>',
            price(t["price"]),
            qty(t["quantity"]),
            krw(t["notional"]),
            krw(t["fee"]),
            signed(t.get("net_pnl")) if t.get("net_pnl") is not None else "",
            signed(t["realized_pnl"]) if t["side"] == "SELL" else "",
            krw(t.get("round_trip_fees")) if t.get("round_trip_fees") is not None else "",
            esc(t["regime"] or ""),
            esc(t["exit_reason"] or ""),
        ]
        for t in items
    ]
    # Net of both fees first, as Discord and the backtest report it; gross and fees beside.
    heads = (
        "Executed", "Symbol", "Side", "Price", "Quantity", "Notional", "Fee", "Net PnL",
        "Gross PnL", "Round-trip fees", "Regime", "Exit reason",
    )  # fmt: skip
    return table(heads, rows, "No trades match.", "trades")


def round_trips(items: list[dict[str, Any]], tz: ZoneInfo) -> str:
    """Closed round trips: net PnL after both fees first, gross and fees beside it."""
    rows = []
    for t in items:
        # What the round trip cost: the position's cost basis plus the BUY's fee.
        basis = t["notional"] - t["gross_pnl"] if t["gross_pnl"] is not None else None
        cost = basis + t["entry_fee"] if basis is not None else None
        net_pct = t["net_pnl"] / cost * 100 if cost else None
        rows.append(
            [
                esc(t["symbol"]),
                esc(when(t["entry_at"], tz)),
                price(t["entry_price"]),
                esc(when(t["exit_at"], tz)),
                price(t["exit_price"]),
                qty(t["quantity"]),
                esc(t["exit_reason"] or ""),
                _pnl_cell_krw(t["net_pnl"]),
                _pnl_cell(net_pct),
                signed(t["gross_pnl"]),
                krw(t["entry_fee"] + t["exit_fee"]),
                esc(t["regime"] or ""),
            ]
        )
    heads = (
        "Symbol", "Entry", "Entry price", "Exit", "Exit price", "Quantity", "Exit reason",
        "Net PnL (KRW)", "Net %", "Gross (KRW)", "Fees (KRW)", "Regime",
    )  # fmt: skip
    return table(heads, rows, "No closed round trips match.", "round-trips")


def _pnl_cell_krw(value: Any) -> str:
    if value is None:
        return "—"
    tone = "up" if Decimal(str(value)) > 0 else "down" if Decimal(str(value)) < 0 else ""
    return f'<span class="{tone}">{signed(value)}</span>'


def levels(items: list[dict[str, Any]], mark: Any) -> str:
    """The open position's exit levels with their distance from the last price."""
    now = money_format.to_decimal(mark)
    rows = []
    for lv in items:
        gap = (Decimal(str(lv["price"])) - now) / now * 100 if now else None
        rows.append([f'<span class="lv-{esc(lv["kind"])}">{esc(lv["label"])}</span>',
                     price(lv["price"]), pct(gap)])  # fmt: skip
    return table(("Level", "Price", "From last price"), rows, "No open position.", "levels")


def equity_svg(curve: list[dict[str, Any]], start: Any, tz: ZoneInfo) -> str:
    """The realized equity after each round trip as an inline SVG line (no script needed)."""
    if not curve:
        return '<p class="empty">No closed round trips yet.</p>'
    values = [float(start)] + [float(p["equity"]) for p in curve]
    lo, hi = min(values), max(values)
    if hi == lo:
        hi, lo = hi + 1, lo - 1
    w, h, left, right, top, bottom = 900, 240, 10, 110, 12, 34
    step = (w - left - right) / max(len(values) - 1, 1)
    pts = " ".join(
        f"{left + i * step:.1f},{top + (hi - v) / (hi - lo) * (h - top - bottom):.1f}"
        for i, v in enumerate(values)
    )
    first = "start"
    last = when(datetime.fromtimestamp(curve[-1]["t"], tz), tz)
    y = lambda v: top + (hi - v) / (hi - lo) * (h - top - bottom)  # noqa: E731
    return (
        f'<figure class="equity-box"><svg id="equity-curve" viewBox="0 0 {w} {h}" role="img"'
        f' aria-label="realized equity after each round trip" data-points="{len(values)}">'
        f'<polyline fill="none" stroke="currentColor" stroke-width="2" points="{pts}"/>'
        f'<text x="{w - right + 6}" y="{y(hi) + 4:.1f}">{esc(krw(hi))}</text>'
        f'<text x="{w - right + 6}" y="{y(lo) + 4:.1f}">{esc(krw(lo))}</text>'
        f'<text x="{left}" y="{h - 8}">{esc(first)}</text>'
        f'<text x="{w - right}" y="{h - 8}" text-anchor="end">{esc(last)}</text>'
        "</svg><figcaption>Equity after each closed round trip, net of fees (KRW)"
        "</figcaption></figure>"
    )


def decisions(items: list[dict[str, Any]], tz: ZoneInfo) -> str:
    rows = []
    for d in items:
        tone = "up" if d["decision"] == "CONFIRM" else "down"
        raw = d["reasoning"] or ""
        # Cut before escaping so an entity such as &amp; is never split.
        summary, reasoning = esc(raw[:80]) or "—", esc(raw)
        rows.append(
            [
                esc(when(d["created_at"], tz)),
                esc(d["symbol"]),
                f'<span class="{tone}">{esc(d["decision"])}</span>',
                esc(d["reason_code"] or ""),
                esc(d["confidence"] if d["confidence"] is not None else "—"),
                f"<details><summary>{summary}</summary><p>{reasoning}</p></details>",
                esc(d["model_used"] or "—"),
                esc(f"${d['cost_usd']:.4f}" if d["cost_usd"] is not None else "—"),
                esc(f"{d['latency_ms']} ms" if d["latency_ms"] is not None else "—"),
            ]
        )
    heads = (
        "At", "Symbol", "Decision", "Code", "Confidence", "Reasoning", "Model", "Cost", "Latency",
    )  # fmt: skip
    return table(heads, rows, "No AI decisions match.", "decisions")


def usage(items: dict[str, dict[str, Any]]) -> str:
    names = {
        "daily_buys": "BUY fills today",
        "open_positions": "Open positions",
        "exposure_krw": "Exposure (KRW)",
        "daily_loss_krw": "Loss today (KRW)",
        "consecutive_losses": "Consecutive losses",
    }
    rows = []
    for key, label in names.items():
        u = items[key]
        fmt = krw if key.endswith("_krw") else esc
        bar = (
            f'<progress max="100" value="{esc(min(Decimal(100), u["pct"]))}"></progress>'
            f" {esc(money_format.percent(u['pct']))}"
            if u["pct"] is not None
            else "—"
        )
        rows.append([esc(label), fmt(u["used"]), fmt(u["limit"]), bar])
    return table(("Rule", "Used", "Limit", "Usage"), rows, "", "usage")


def audit(items: list[dict[str, Any]], tz: ZoneInfo) -> str:
    rows = [
        [
            esc(when(a["ts"], tz)),
            esc(a["violation_type"]),
            esc(a["symbol"] or ""),
            esc(a["description"] or ""),
        ]
        for a in items
    ]
    return table(("At", "Type", "Symbol", "Description"), rows, "No risk events recorded.")


def services(items: dict[str, dict[str, Any]], tz: ZoneInfo) -> str:
    rows = [
        [
            esc(name),
            "running" if s["running"] else '<span class="down">stopped</span>',
            esc(when(s["last_success"], tz)),
            esc(s["last_error"] or ""),
            esc(s["degraded"] or ""),
        ]
        for name, s in items.items()
    ]
    heads = ("Service", "State", "Last success", "Last error", "Degraded")
    return table(heads, rows, "No services registered.")


def candle_ages(items: list[dict[str, Any]], tz: ZoneInfo) -> str:
    rows = []
    for c in items:
        age = c["age_s"]
        stale = age is None or age > 120
        shown = "no data" if age is None else f"{age:,.0f} s"
        rows.append(
            [
                esc(c["symbol"]),
                esc(when(c["last_candle"], tz)),
                f'<span class="{"down" if stale else "up"}">{esc(shown)}</span>',
            ]
        )
    return table(("Symbol", "Newest candle", "Age since close"), rows, "")


def jobs(items: list[dict[str, Any]], tz: ZoneInfo) -> str:
    rows = [
        [
            esc(j["job"]),
            esc(when(j["started_at"], tz)),
            esc(when(j["finished_at"], tz)),
            f'<span class="{"up" if j["status"] == "ok" else "down"}">{esc(j["status"])}</span>',
            esc(j["detail"] or ""),
        ]
        for j in items
    ]
    heads = ("Job", "Started", "Finished", "Status", "Detail")
    return table(heads, rows, "No job has run yet.")


def outbox(state: dict[str, Any], tz: ZoneInfo) -> str:
    oldest = when(state["oldest_pending"], tz) if state["oldest_pending"] else "—"
    summary = f'<p class="note">Pending: {esc(state["pending"])} · oldest: {esc(oldest)}</p>'
    rows = [
        [
            esc(when(f["created_at"], tz)),
            esc(f["kind"]),
            esc(f["status"]),
            esc(f["attempts"]),
            esc(f["last_error"] or ""),
        ]
        for f in state["recent_failures"]
    ]
    heads = ("Created", "Kind", "Status", "Attempts", "Last error")
    return summary + table(heads, rows, "No failed notifications.")


def guardrails(state: dict[str, Any] | None) -> str:
    if state is None:
        return '<p class="note warn">Redis is unreachable: guardrail state unknown.</p>'
    block = state["global_block"]
    lines = [
        ("Global block", f"{block} ({state['global_block_ttl_s']} s left)" if block else "none"),
        ("Error streak", f"{state['error_streak']} / {state['error_streak_threshold']}"),
        (
            "Calls this hour",
            f"{state['calls_this_hour']['used']} / {state['calls_this_hour']['limit']}",
        ),
        ("Calls today", f"{state['calls_today']['used']} / {state['calls_today']['limit']}"),
    ]
    facts = table(("Guardrail", "State"), [[esc(a), esc(b)] for a, b in lines], "")
    rows = [
        [
            esc(s["symbol"]),
            esc(f"{s['cooldown_s']} s" if s["cooldown_s"] else "none"),
            esc(s["reject_count"]),
        ]
        for s in state["symbols"]
    ]
    per_symbol = table(("Symbol", "Cooldown left", "Recent rejects"), rows, "")
    return f"{facts}<h3>Per symbol</h3>{per_symbol}"
