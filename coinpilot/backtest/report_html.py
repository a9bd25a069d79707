"""A self-contained HTML report as an analyst reads it: formatted summary beside buy and
hold, large charts (equity vs buy and hold, drawdown, price with entries and exits per
symbol) as inline base64 PNG, monthly returns, round trips by regime, exit reason and
symbol, and every round trip; with ``compared`` rows, another run side by side.

The file opens anywhere without network access: no scripts, no external stylesheets.
Long series are thinned to a few thousand points per chart, which changes nothing visible.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from coinpilot.backtest import analysis
from coinpilot.backtest.model import BacktestResult
from coinpilot.backtest.summary import Summary
from coinpilot.domain import money_format as mf

MAX_POINTS = 4000
FIGSIZE = (13.0, 5.0)  # inches at 100 dpi: 1300 px wide, readable without zooming
PriceSeries = tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:  # the `report` extra is optional
        raise RuntimeError("HTML reports need matplotlib: pip install 'coinpilot[report]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _thin(ts: npt.NDArray[np.int64], ys: npt.NDArray[np.float64]) -> tuple[list[datetime], Any]:
    """At most about 2 x MAX_POINTS points: each bucket keeps its lowest and highest point,
    so the deepest drawdown and the highest equity are drawn where they happened."""
    n = len(ts)
    step = max(1, n // MAX_POINTS)
    if step == 1:
        idx = np.arange(n)
    else:
        full = n - n % step
        buckets = np.nan_to_num(ys[:full], nan=0.0).reshape(-1, step)
        base = np.arange(0, full, step)
        idx = np.unique(np.concatenate((
            base, base + buckets.argmin(axis=1), base + buckets.argmax(axis=1),
            np.arange(full, n), [n - 1],
        )))  # fmt: skip
    return [datetime.fromtimestamp(int(t), UTC) for t in ts[idx]], ys[idx]


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    fig.clf()
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _equity_chart(
    result: BacktestResult, benchmark: npt.NDArray[np.float64] | None, tz: ZoneInfo
) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    x, y = _thin(result.equity_ts, result.equity)
    ax.plot(x, y, linewidth=1.4, color="#1f77b4", label="strategy")
    if benchmark is not None and len(benchmark) == len(result.equity_ts):
        bx, by = _thin(result.equity_ts, benchmark)
        ax.plot(bx, by, linewidth=1.2, color="#999999", label="buy and hold (equal weight)")
    ax.axhline(float(result.initial_equity), color="#444444", linewidth=0.6, linestyle=":")
    _style(ax, "Equity vs buy and hold", "KRW", tz)
    return _finish(plt, fig)


def _drawdown_chart(result: BacktestResult, tz: ZoneInfo) -> str:
    plt = _pyplot()
    peaks = np.maximum.accumulate(result.equity) if len(result.equity) else result.equity
    drawdown = -(peaks - result.equity) / np.where(peaks > 0, peaks, 1.0) * 100.0
    fig, ax = plt.subplots(figsize=(FIGSIZE[0], FIGSIZE[1] * 0.6))
    x, y = _thin(result.equity_ts, drawdown)
    ax.plot(x, y, linewidth=1.0, color="#d62728")
    ax.fill_between(x, y, 0, color="#d62728", alpha=0.25)
    _style(ax, "Drawdown", "% below the running peak", tz, yfmt=".2f")
    return _finish(plt, fig)


def _price_chart(symbol: str, series: PriceSeries, result: BacktestResult, tz: ZoneInfo) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    x, y = _thin(*series)
    ax.plot(x, y, linewidth=0.8, color="#555555", label="close")
    trades = [t for t in result.trades if t.symbol == symbol]
    if trades:
        ax.scatter(
            [datetime.fromtimestamp(t.entry_ts, UTC) for t in trades],
            [float(t.entry_price) for t in trades],
            marker="^", color="#2ca02c", s=70, label="entry", zorder=3,
        )  # fmt: skip
        done = [t for t in trades if t.closed]
        ax.scatter(
            [datetime.fromtimestamp(t.exit_ts or 0, UTC) for t in done],
            [float(t.exit_price or 0) for t in done],
            marker="v", color="#d62728", s=70, label="exit", zorder=3,
        )  # fmt: skip
    small = len(series[1]) and float(np.nanmax(series[1])) < 100
    _style(ax, f"{symbol}: price with entries and exits", "KRW", tz, ",.4g" if small else ",.0f")
    return _finish(plt, fig)


def _style(ax: Any, title: str, ylabel: str, tz: ZoneInfo, yfmt: str = ",.0f") -> None:
    import matplotlib.dates as mdates
    import matplotlib.ticker as mticker

    ax.set_title(title, fontsize=15)
    ax.set_ylabel(ylabel, fontsize=12)
    ax.set_xlabel(f"time ({tz.key})", fontsize=12)
    ax.tick_params(labelsize=11)
    # Regular steps from the first tick: month starts would otherwise crowd the last label.
    ax.xaxis.set_major_locator(
        mdates.AutoDateLocator(tz=tz, minticks=4, maxticks=9, interval_multiples=False)
    )
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M", tz=tz))
    ax.yaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: format(v, yfmt)))
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=11)


def _finish(plt: Any, fig: Any) -> str:
    out = _png(fig)
    plt.close(fig)
    return out


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    if not rows:
        return "<p class='empty'>none</p>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table class='{cls}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


GROUP_HEADERS = ("", "round trips", "win rate", "net PnL (KRW)", "gross (KRW)", "fees (KRW)")


def _group_table(title: str, rows: Sequence[analysis.Group]) -> str:
    cells = [
        (g.key, str(g.trades), mf.percent(g.win_rate_pct), mf.won(g.net, sign=True),
         mf.won(g.gross, sign=True), mf.won(g.fees))
        for g in rows
    ]  # fmt: skip
    return f"<h3>{html.escape(title)}</h3>" + _table((title, *GROUP_HEADERS[1:]), cells, "num")


def _months_table(
    result: BacktestResult, benchmark: npt.NDArray[np.float64] | None, tz: ZoneInfo
) -> str:
    start = float(result.initial_equity)
    ours = analysis.monthly_returns(result.equity_ts, result.equity, start, tz)
    theirs = (
        {m.month: m for m in analysis.monthly_returns(result.equity_ts, benchmark, start, tz)}
        if benchmark is not None and len(benchmark) == len(result.equity_ts)
        else {}
    )
    rows = []
    for m in ours:
        bench = theirs.get(m.month)
        rows.append((
            m.month, mf.krw(m.start_equity), mf.krw(m.end_equity),
            mf.percent(m.return_pct, sign=True),
            mf.percent(bench.return_pct, sign=True) if bench else "—",
        ))  # fmt: skip
    headers = (f"month ({tz.key})", "start equity", "end equity", "return", "buy and hold")
    return _table(headers, rows, "num")


def _round_trips(result: BacktestResult, tz: ZoneInfo) -> str:
    rows = []
    for t in result.trades:
        closed = t.closed
        net_pct = t.pnl / t.cost * 100 if closed and t.cost else None
        rows.append((
            t.symbol, t.regime, analysis.when(t.entry_ts, tz), mf.price(t.entry_price),
            mf.quantity(t.quantity), analysis.when(t.exit_ts, tz),
            mf.price(t.exit_price) if closed else "open", t.exit_reason or "—",
            mf.won(t.pnl + t.fees, sign=True) if closed else "—", mf.won(t.fees),
            mf.won(t.pnl, sign=True) if closed else "—", mf.percent(net_pct, sign=True),
        ))  # fmt: skip
    headers = ("symbol", "regime", "entry", "entry price", "quantity", "exit", "exit price",
               "exit reason", "gross (KRW)", "fees (KRW)", "net PnL (KRW)", "net %")  # fmt: skip
    return _table(headers, rows, "trades num")


CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1280px;color:#222;
padding:0 1em}table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:4px 10px;text-align:left;font-size:14px}
td{font-variant-numeric:tabular-nums}.num td:not(:first-child){text-align:right}
.summary th{background:#f4f4f4}.side{display:flex;gap:2em;flex-wrap:wrap}
img{width:100%;max-width:1280px;display:block;margin:1em 0}"""


def render(
    result: BacktestResult,
    summary: Summary,
    prices: Mapping[str, PriceSeries],
    meta: Mapping[str, Any],
    *,
    tz: ZoneInfo | None = None,
    benchmark: npt.NDArray[np.float64] | None = None,
    shown: Mapping[str, str] | None = None,
    compared: Sequence[Sequence[str]] | None = None,
) -> str:
    zone = tz or ZoneInfo("UTC")
    if benchmark is None:
        benchmark = analysis.buy_and_hold(prices, result.equity_ts, float(result.initial_equity))
    if shown is None:
        bench_pct = analysis.total_return_pct(benchmark, float(result.initial_equity))
        shown = analysis.display(summary, result, bench_pct)
    charts = [_equity_chart(result, benchmark, zone), _drawdown_chart(result, zone)]
    charts += [_price_chart(s, prices[s], result, zone) for s in sorted(prices)]
    imgs = "\n".join(f"<img alt='chart' src='data:image/png;base64,{c}'>" for c in charts)
    meta_rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in meta.items()
    )
    summary_rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in shown.items()
    )
    comparison = (
        "<h2>Compared with the other run</h2>"
        + _table(("figure", "this run", "other run", "difference"), compared, "num")
        if compared
        else ""
    )
    trades = result.trades
    closed = [t for t in trades if t.closed]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>CoinPilot backtest</title>
<style>{CSS}</style></head><body>
<h1>CoinPilot backtest</h1>
<div class="side"><table class="summary">{summary_rows}</table><table>{meta_rows}</table></div>
{comparison}
<h2>Charts</h2>
{imgs}
<h2>Monthly returns</h2>
{_months_table(result, benchmark, zone)}
<h2>Round trips by group</h2>
{_group_table("regime at entry", analysis.groups(closed, lambda t: t.regime))}
{_group_table("exit reason", analysis.groups(closed, lambda t: t.exit_reason))}
{_group_table("symbol", analysis.groups(closed, lambda t: t.symbol))}
<h2>Round trips ({len(closed)} closed, {len(trades) - len(closed)} open)</h2>
{_round_trips(result, zone)}
</body></html>
"""
