"""A self-contained HTML report: summary table, charts as inline base64 PNG, trade list.

The file opens anywhere without network access: no scripts, no external stylesheets.
Long series are thinned to a few thousand points per chart, which changes nothing visible.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from coinpilot.backtest.jsonout import trade_record
from coinpilot.backtest.model import BacktestResult
from coinpilot.backtest.summary import Summary

MAX_POINTS = 4000
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
    step = max(1, len(ts) // MAX_POINTS)
    idx = np.arange(0, len(ts), step)
    if len(ts) and idx[-1] != len(ts) - 1:
        idx = np.append(idx, len(ts) - 1)
    return [datetime.fromtimestamp(int(t), UTC) for t in ts[idx]], ys[idx]


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    fig.clf()
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _line_chart(title: str, ts: Any, ys: Any, ylabel: str, fill: bool = False) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 3.2))
    x, y = _thin(ts, ys)
    ax.plot(x, y, linewidth=1.0, color="#d62728" if fill else "#1f77b4")
    if fill:
        ax.fill_between(x, y, 0, color="#d62728", alpha=0.25)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    out = _png(fig)
    plt.close(fig)
    return out


def _price_chart(symbol: str, series: PriceSeries, result: BacktestResult) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 3.6))
    x, y = _thin(*series)
    ax.plot(x, y, linewidth=0.8, color="#555555", label="close")
    trades = [t for t in result.trades if t.symbol == symbol]
    if trades:
        ax.scatter(
            [datetime.fromtimestamp(t.entry_ts, UTC) for t in trades],
            [float(t.entry_price) for t in trades],
            marker="^", color="#2ca02c", s=40, label="entry", zorder=3,
        )  # fmt: skip
        done = [t for t in trades if t.closed]
        ax.scatter(
            [datetime.fromtimestamp(t.exit_ts or 0, UTC) for t in done],
            [float(t.exit_price or 0) for t in done],
            marker="v", color="#d62728", s=40, label="exit", zorder=3,
        )  # fmt: skip
    ax.set_title(f"{symbol}: price with entries and exits")
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    out = _png(fig)
    plt.close(fig)
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4f}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items()) or "—"
    return "—" if value is None else str(value)


def _summary_rows(summary: Summary) -> str:
    rows = []
    for key, value in summary.__dict__.items():
        rows.append(f"<tr><th>{html.escape(key)}</th><td>{html.escape(_fmt(value))}</td></tr>")
    return "\n".join(rows)


def _trade_rows(result: BacktestResult) -> str:
    cols = ("symbol", "regime", "entry_time", "entry_price", "quantity", "exit_time",
            "exit_price", "exit_reason", "pnl")  # fmt: skip
    head = "".join(f"<th>{c}</th>" for c in cols)
    body = []
    for t in result.trades:
        rec = trade_record(t)
        body.append(
            "<tr>" + "".join(f"<td>{html.escape(_fmt(rec[c]))}</td>" for c in cols) + "</tr>"
        )
    return f"<table class='trades'><tr>{head}</tr>{''.join(body)}</table>"


CSS = """body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:13px}
.trades td{font-family:monospace}img{max-width:100%}"""


def render(
    result: BacktestResult,
    summary: Summary,
    prices: Mapping[str, PriceSeries],
    meta: Mapping[str, Any],
) -> str:
    peaks = np.maximum.accumulate(result.equity) if len(result.equity) else result.equity
    drawdown = -(peaks - result.equity) / np.where(peaks > 0, peaks, 1.0) * 100.0
    charts = [
        _line_chart("Equity (KRW)", result.equity_ts, result.equity, "KRW"),
        _line_chart("Drawdown (%)", result.equity_ts, drawdown, "%", fill=True),
    ]
    charts += [_price_chart(s, prices[s], result) for s in sorted(prices)]
    imgs = "\n".join(f"<img alt='chart' src='data:image/png;base64,{c}'>" for c in charts)
    meta_rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in meta.items()
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>CoinPilot backtest</title>
<style>{CSS}</style></head><body>
<h1>CoinPilot backtest</h1>
<table>{meta_rows}</table>
<h2>Summary</h2>
<table>{_summary_rows(summary)}</table>
<h2>Charts</h2>
{imgs}
<h2>Trades ({len(result.trades)})</h2>
{_trade_rows(result)}
</body></html>
"""
