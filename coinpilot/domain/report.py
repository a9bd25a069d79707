"""Daily report maths from ledger rows: pure, exact (Decimal), hand-checkable.

Definitions (DECISIONS: KRW everywhere, win rate and drawdown from the ledger):
- PnL = realized PnL of the window's SELL fills minus the fees of every fill in the window;
- trades = fills in the window (BUY + SELL); a *closed trade* is a SELL fill;
- win rate = share of SELLs that win (``fills.is_win``): realized PnL less the SELL's and its
  BUY's fee above zero, the same test as the backtest's and the cooldown's;
- max drawdown = the largest peak-to-trough fall, in %, of realized equity (initial balance
  plus realized PnL minus fees) walked fill by fill from the window's start;
- best / worst trade = the SELLs with the highest / lowest PnL after both fees (the
  figure Discord and the backtest show for a trade);
- AI = final verdicts CONFIRM / REJECT in the window and the sum of their cost in USD.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from coinpilot.domain import money_format
from coinpilot.domain.fills import is_win

ZERO = Decimal(0)


@dataclass(frozen=True)
class Fill:
    symbol: str
    side: str  # BUY | SELL
    notional: Decimal
    fee: Decimal
    realized_pnl: Decimal | None
    executed_at: datetime
    entry_fee: Decimal = ZERO  # a SELL's: the fee of the BUY it closed

    @property
    def net_pnl(self) -> Decimal:
        return (self.realized_pnl or ZERO) - self.fee - self.entry_fee


@dataclass(frozen=True)
class AiVerdictRow:
    decision: str  # CONFIRM | REJECT
    cost_usd: Decimal | None


@dataclass(frozen=True)
class TradeResult:
    symbol: str
    pnl_krw: Decimal
    executed_at: datetime


@dataclass(frozen=True)
class DailyReport:
    date: str
    window_start: datetime
    window_end: datetime
    pnl_krw: Decimal
    realized_pnl_krw: Decimal
    fees_krw: Decimal
    trades: int
    buys: int
    sells: int
    wins: int
    win_rate_pct: Decimal | None  # None when nothing was closed
    max_drawdown_pct: Decimal
    best: TradeResult | None
    worst: TradeResult | None
    ai_approvals: int
    ai_rejections: int
    ai_cost_usd: Decimal
    equity_start_krw: Decimal
    equity_end_krw: Decimal
    notes: tuple[str, ...] = field(default=())


def max_drawdown_pct(start: Decimal, changes: list[Decimal]) -> Decimal:
    """Largest fall from a running peak, as a positive % of that peak (0 when none)."""
    peak = equity = start
    worst = ZERO
    for change in changes:
        equity += change
        peak = max(peak, equity)
        if peak > 0:
            worst = max(worst, (peak - equity) / peak * 100)
    return worst


def build_report(
    *,
    date: str,
    window_start: datetime,
    window_end: datetime,
    equity_start: Decimal,
    fills: list[Fill],
    verdicts: list[AiVerdictRow],
) -> DailyReport:
    fills = sorted(fills, key=lambda f: f.executed_at)
    sells = [f for f in fills if f.side == "SELL"]
    realized = sum((f.realized_pnl or ZERO for f in sells), ZERO)
    fees = sum((f.fee for f in fills), ZERO)
    changes = [(f.realized_pnl or ZERO) - f.fee for f in fills]
    results = [TradeResult(f.symbol, f.net_pnl, f.executed_at) for f in sells]
    wins = sum(1 for f in sells if is_win(f.net_pnl))
    notes = tuple(
        f"{f.symbol} SELL at {f.executed_at.isoformat()} has no recorded PnL"
        for f in sells
        if f.realized_pnl is None
    )
    return DailyReport(
        date=date,
        window_start=window_start,
        window_end=window_end,
        pnl_krw=realized - fees,
        realized_pnl_krw=realized,
        fees_krw=fees,
        trades=len(fills),
        buys=len(fills) - len(sells),
        sells=len(sells),
        wins=wins,
        win_rate_pct=(Decimal(wins) / len(sells) * 100) if sells else None,
        max_drawdown_pct=max_drawdown_pct(equity_start, changes),
        best=max(results, key=lambda r: r.pnl_krw, default=None),
        worst=min(results, key=lambda r: r.pnl_krw, default=None),
        ai_approvals=sum(1 for v in verdicts if v.decision == "CONFIRM"),
        ai_rejections=sum(1 for v in verdicts if v.decision == "REJECT"),
        ai_cost_usd=sum((v.cost_usd or ZERO for v in verdicts), ZERO),
        equity_start_krw=equity_start,
        equity_end_krw=equity_start + realized - fees,
        notes=notes,
    )


def krw(value: Decimal) -> str:
    return money_format.krw(value)


def pct(value: Decimal | None) -> str:
    return "N/A" if value is None else money_format.percent(value)


def report_lines(report: DailyReport) -> list[str]:
    """The report as plain lines, shared by the terminal and the template summary."""
    best = report.best
    worst = report.worst
    return [
        "PnL: "
        + money_format.pnl_breakdown(report.pnl_krw, report.realized_pnl_krw, report.fees_krw),
        f"Trades: {report.trades} ({report.buys} buys, {report.sells} sells)",
        f"Win rate: {pct(report.win_rate_pct)} ({report.wins}/{report.sells})",
        f"Max drawdown: {pct(report.max_drawdown_pct)}",
        f"Best trade: {best.symbol} {krw(best.pnl_krw)}" if best else "Best trade: none",
        f"Worst trade: {worst.symbol} {krw(worst.pnl_krw)}" if worst else "Worst trade: none",
        f"AI: {report.ai_approvals} approved, {report.ai_rejections} rejected, "
        f"cost ${report.ai_cost_usd:.4f}",
    ]


def template_summary(report: DailyReport) -> list[str]:
    """Three deterministic lines used when no language model is available."""
    tone = "gain" if report.pnl_krw > 0 else ("loss" if report.pnl_krw < 0 else "flat day")
    return [
        f"{report.date}: {tone}, net PnL {krw(report.pnl_krw)} over {report.trades} fills.",
        f"Win rate {pct(report.win_rate_pct)} on {report.sells} closed trades; "
        f"max drawdown {pct(report.max_drawdown_pct)}.",
        f"AI second opinion: {report.ai_approvals} approved, {report.ai_rejections} rejected "
        f"(${report.ai_cost_usd:.4f}).",
    ]
