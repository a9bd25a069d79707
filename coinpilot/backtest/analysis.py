"""What an analyst reads off a backtest: the benchmark, months, groups and two runs compared.

Pure functions over a ``BacktestResult`` (no I/O). Conventions:
- buy-and-hold puts the initial balance in equal parts into every symbol at the first
  decision's newest closed candle and holds to the end, without fees;
- a month's return is its last equity over the previous month's last (the first month:
  over the initial balance), months in the configured time zone;
- group tables (regime at entry, exit reason, symbol) count closed round trips only; PnL
  is net of both fees, with gross and fees beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from coinpilot.backtest.model import BacktestResult, Trade
from coinpilot.backtest.summary import Summary
from coinpilot.domain import money_format as mf
from coinpilot.domain.fills import is_win

MINUTE = 60
ZERO = Decimal(0)
PriceSeries = tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]


def buy_and_hold(
    prices: Mapping[str, PriceSeries], ticks: npt.NDArray[np.int64], initial: float
) -> npt.NDArray[np.float64]:
    """Equity of the equal-weight buy-and-hold portfolio at each tick (closed candles only)."""
    out = np.zeros(len(ticks), dtype=np.float64)
    usable = {s: p for s, p in prices.items() if len(p[0])}
    if not usable or len(ticks) == 0:
        return out + initial
    share = initial / len(usable)
    for ts, close in usable.values():
        # At a tick the newest closed candle started at least a minute before it.
        idx = np.clip(np.searchsorted(ts, ticks - MINUTE, side="right") - 1, 0, len(ts) - 1)
        seen = close[idx]
        out += share * seen / seen[0]
    return out


def total_return_pct(curve: npt.NDArray[np.float64], initial: float) -> float:
    return (float(curve[-1]) / initial - 1.0) * 100.0 if len(curve) and initial else 0.0


@dataclass(frozen=True)
class MonthReturn:
    month: str  # YYYY-MM, local
    start_equity: float
    end_equity: float

    @property
    def return_pct(self) -> float:
        return (self.end_equity / self.start_equity - 1.0) * 100.0


def monthly_returns(
    ts: npt.NDArray[np.int64], equity: npt.NDArray[np.float64], initial: float, tz: ZoneInfo
) -> list[MonthReturn]:
    out: list[MonthReturn] = []
    if len(ts) == 0:
        return out
    months = [datetime.fromtimestamp(int(t), UTC).astimezone(tz).strftime("%Y-%m") for t in ts]
    previous = initial
    for i, month in enumerate(months):
        if i + 1 == len(months) or months[i + 1] != month:
            out.append(MonthReturn(month, previous, float(equity[i])))
            previous = float(equity[i])
    return out


@dataclass(frozen=True)
class Group:
    key: str
    trades: int
    wins: int
    net: Decimal
    fees: Decimal

    @property
    def gross(self) -> Decimal:
        return self.net + self.fees

    @property
    def win_rate_pct(self) -> float:
        return self.wins / self.trades * 100.0 if self.trades else 0.0


def groups(trades: Iterable[Trade], key: Callable[[Trade], str]) -> list[Group]:
    acc: dict[str, list[Trade]] = {}
    for t in trades:
        if t.closed:
            acc.setdefault(key(t) or "—", []).append(t)
    return [
        Group(
            k,
            len(ts),
            sum(1 for t in ts if is_win(t.pnl)),
            sum((t.pnl for t in ts), ZERO),
            sum((t.fees for t in ts), ZERO),
        )
        for k, ts in sorted(acc.items())
    ]


def when(ts: int | None, tz: ZoneInfo) -> str:
    if ts is None:
        return "—"
    return datetime.fromtimestamp(ts, UTC).astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


def round_trip_line(t: Trade, tz: ZoneInfo) -> str:
    """One round trip on one line: entry, exit, quantity, reason and PnL net of both fees."""
    head = f"{t.symbol} {t.regime:<8} {when(t.entry_ts, tz)} @ {mf.price(t.entry_price)}"
    if not t.closed:
        return f"{head} -> open, quantity {mf.quantity(t.quantity)}"
    return (
        f"{head} -> {when(t.exit_ts, tz)} @ {mf.price(t.exit_price)}, quantity "
        f"{mf.quantity(t.quantity)}, {t.exit_reason}: "
        f"{mf.pnl_breakdown(t.pnl, t.pnl + t.fees, t.fees)}"
    )


def gross_pnl(summary: Summary, result: BacktestResult) -> Decimal:
    """Closed trades' PnL before fees (the summary's total is after both fees)."""
    return summary.total_pnl + sum((t.fees for t in result.trades if t.closed), ZERO)


def display(summary: Summary, result: BacktestResult, bench_pct: float) -> dict[str, str]:
    """The headline figures as people read them (labels in order)."""
    closed_fees = sum((t.fees for t in result.trades if t.closed), ZERO)
    return {
        "Net PnL": mf.pnl_breakdown(summary.total_pnl, gross_pnl(summary, result), closed_fees),
        "Return": mf.percent(summary.return_pct, sign=True),
        "Buy and hold": mf.percent(bench_pct, sign=True),
        "Final equity": mf.krw(summary.final_equity),
        "Max drawdown": mf.percent(summary.max_drawdown * 100.0),
        "Round trips": f"{summary.trades} ({summary.wins} won, {summary.losses} lost)",
        "Win rate": mf.percent(None if summary.win_rate is None else summary.win_rate * 100),
        "Fees paid": mf.krw(summary.fees_paid),
        "Sharpe (daily)": "—" if summary.sharpe is None else f"{summary.sharpe:.2f}",
        "Time in market": mf.percent(summary.time_in_market * 100.0),
        "Open at the end": str(summary.open_trades),
        "PnL by regime": ", ".join(
            f"{k} {mf.won(v, sign=True)}" for k, v in summary.pnl_by_regime.items()
        )
        or "—",
        "Exit reasons": ", ".join(f"{k} {v:,}" for k, v in summary.exit_reasons.items()) or "—",
        # Flat minutes stopped at each entry check, then risk, minimum-order and AI refusals.
        "Entry funnel": ", ".join(f"{k} {v:,}" for k, v in summary.funnel.items()) or "—",
    }


# Figures compared between two runs: (label, JSON path in the document, kind).
COMPARED: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("Net PnL (KRW)", ("summary", "total_pnl"), "krw"),
    ("Return", ("summary", "return_pct"), "pct"),
    ("Buy and hold", ("benchmark", "buy_and_hold_return_pct"), "pct"),
    ("Max drawdown", ("summary", "max_drawdown"), "frac"),
    ("Round trips", ("summary", "trades"), "int"),
    ("Win rate", ("summary", "win_rate"), "frac"),
    ("Fees paid (KRW)", ("summary", "fees_paid"), "krw"),
    ("Sharpe (daily)", ("summary", "sharpe"), "num"),
    ("Time in market", ("summary", "time_in_market"), "frac"),
)


def _lookup(doc: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = doc
    for part in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _show(value: Any, kind: str, sign: bool = False) -> str:
    number = mf.to_decimal(value)
    if number is None:
        return "—"
    if kind == "krw":
        return mf.won(number, sign=sign)
    if kind == "pct":
        return mf.percent(number, sign=sign)
    if kind == "frac":
        return mf.percent(number * 100, sign=sign)
    if kind == "int":
        return f"{int(number):+d}" if sign else str(int(number))
    return f"{number:+.2f}" if sign else f"{number:.2f}"


def compare_rows(this: Mapping[str, Any], other: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """(figure, this run, other run, this minus other) for each compared figure."""
    rows: list[tuple[str, ...]] = []
    for label, path, kind in COMPARED:
        a, b = _lookup(this, path), _lookup(other, path)
        da, db = mf.to_decimal(a), mf.to_decimal(b)
        diff = "—" if da is None or db is None else _show(da - db, kind, sign=True)
        rows.append((label, _show(a, kind), _show(b, kind), diff))
    return rows
