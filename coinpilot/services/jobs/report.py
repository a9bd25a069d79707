"""Daily report job: the KST day (config timezone) from midnight up to the report time.

Numbers come from the ledger (trading_history, account_state) and agent_decisions; the
summary from OpenAI or the template. The report is queued as a 'daily-report' outbox row;
`coinpilot report` prints the very same text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date as Date
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any

import structlog

from coinpilot.adapters.openai_summary import summarise
from coinpilot.adapters.outbox import enqueue
from coinpilot.domain.report import (
    AiVerdictRow,
    DailyReport,
    Fill,
    build_report,
    report_lines,
    template_summary,
)
from coinpilot.services.jobs import JobContext

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RenderedReport:
    report: DailyReport
    summary: list[str]
    summary_source: str

    @property
    def lines(self) -> list[str]:
        return report_lines(self.report)

    def text(self, tz_name: str) -> str:
        r = self.report
        head = (
            f"CoinPilot daily report {r.date} ({tz_name}, "
            f"{r.window_start.isoformat()} to {r.window_end.isoformat()})"
        )
        return "\n".join([head, "", *self.summary, "", *self.lines, *r.notes])


def report_window(
    ctx: JobContext, now: datetime, day: Date | None = None
) -> tuple[Date, datetime, datetime]:
    """The local day (today by default) from midnight until now or the day's end."""
    tz = ctx.settings.app.tz
    day = day or now.astimezone(tz).date()
    start = datetime.combine(day, time(0), tzinfo=tz)
    end = min(now, start + timedelta(days=1))
    return day, start, max(start, end)


async def equity_at(ctx: JobContext, when: datetime) -> Decimal:
    """Realized equity at ``when``: initial balance plus realized PnL minus fees so far."""
    initial = await ctx.pool.fetchval("SELECT initial_balance FROM account_state WHERE id = 1")
    if initial is None:
        initial = ctx.settings.app.risk.initial_balance_krw
    done = await ctx.pool.fetchval(
        "SELECT coalesce(sum(coalesce(realized_pnl, 0) - fee), 0) FROM trading_history "
        "WHERE status = 'FILLED' AND executed_at < $1",
        when,
    )
    return Decimal(initial) + Decimal(done)


async def load_report(ctx: JobContext, now: datetime, day: Date | None = None) -> DailyReport:
    day, start, end = report_window(ctx, now, day)
    # A SELL's entry fee is its BUY's: the symbol's last BUY before it (one position each).
    fills = await ctx.pool.fetch(
        """SELECT t.symbol, t.side, t.notional, t.fee, t.realized_pnl, t.executed_at,
                  COALESCE(b.fee, 0) AS entry_fee
           FROM trading_history t
           LEFT JOIN LATERAL (
               SELECT fee FROM trading_history b
               WHERE t.side = 'SELL' AND b.side = 'BUY' AND b.symbol = t.symbol
                 AND b.executed_at < t.executed_at
               ORDER BY b.executed_at DESC LIMIT 1) b ON true
           WHERE t.status = 'FILLED' AND t.executed_at >= $1 AND t.executed_at < $2""",
        start,
        end,
    )
    verdicts = await ctx.pool.fetch(
        "SELECT decision, cost_usd FROM agent_decisions WHERE created_at >= $1 AND created_at < $2",
        start,
        end,
    )
    return build_report(
        date=day.isoformat(),
        window_start=start,
        window_end=end,
        equity_start=await equity_at(ctx, start),
        fills=[
            Fill(
                symbol=r["symbol"],
                side=r["side"],
                notional=r["notional"],
                fee=r["fee"],
                realized_pnl=r["realized_pnl"],
                executed_at=r["executed_at"],
                entry_fee=r["entry_fee"],
            )
            for r in fills
        ],
        verdicts=[AiVerdictRow(r["decision"], r["cost_usd"]) for r in verdicts],
    )


async def render_report(ctx: JobContext, now: datetime, day: Date | None = None) -> RenderedReport:
    report = await load_report(ctx, now, day)
    fallback = template_summary(report)
    summary, source = await summarise(
        ctx.settings, "\n".join(report_lines(report)), fallback, ctx.metrics
    )
    return RenderedReport(report, summary, source)


def payload(rendered: RenderedReport) -> dict[str, Any]:
    r = rendered.report
    return {
        "date": r.date,
        "summary": rendered.summary,
        "lines": rendered.lines,
        "numbers": {
            "pnl_krw": str(r.pnl_krw),
            "trades": r.trades,
            "sells": r.sells,
            "win_rate_pct": None if r.win_rate_pct is None else str(r.win_rate_pct),
            "max_drawdown_pct": str(r.max_drawdown_pct),
            "ai_approvals": r.ai_approvals,
            "ai_rejections": r.ai_rejections,
            "ai_cost_usd": str(r.ai_cost_usd),
        },
    }


async def run_report_job(ctx: JobContext, now: datetime) -> str:
    rendered = await render_report(ctx, now)
    await enqueue(ctx.pool, "daily-report", payload(rendered))
    log.info(
        "daily_report_queued",
        date=rendered.report.date,
        trades=rendered.report.trades,
        summary_source=rendered.summary_source,
    )
    return f"{rendered.report.date} pnl={rendered.report.pnl_krw} summary={rendered.summary_source}"
