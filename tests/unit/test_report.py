"""Daily report maths against hand computations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from coinpilot.domain.report import (
    AiVerdictRow,
    Fill,
    build_report,
    max_drawdown_pct,
    template_summary,
)

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)


def fill(side: str, minutes: int, fee: str, pnl: str | None = None, sym: str = "KRW-BTC") -> Fill:
    return Fill(
        sym,
        side,
        D("100000"),
        D(fee),
        D(pnl) if pnl is not None else None,
        T0 + timedelta(minutes=minutes),
    )


def test_drawdown_is_largest_fall_from_a_running_peak() -> None:
    """1000 → 1100 → 990 → 1050 → 935 falls 15 % from the 1100 peak."""
    got = max_drawdown_pct(D(1000), [D(100), D(-110), D(60), D(-115)])
    assert got == D(165) / D(1100) * 100


def test_no_fall_is_zero_drawdown() -> None:
    """A rising equity curve has no drawdown."""
    assert max_drawdown_pct(D(1000), [D(1), D(2)]) == 0


def test_report_numbers_match_hand_computation() -> None:
    """PnL, win rate, drawdown, best/worst and AI totals equal a hand calculation."""
    fills = [
        fill("BUY", 1, "50"),
        fill("SELL", 30, "52", "4000"),
        fill("BUY", 40, "50", sym="KRW-ETH"),
        fill("SELL", 90, "48", "-3000", sym="KRW-ETH"),
        fill("BUY", 100, "50"),
        fill("SELL", 120, "50", "0"),
    ]
    verdicts = [
        AiVerdictRow("CONFIRM", D("0.0123")),
        AiVerdictRow("REJECT", D("0.0100")),
        AiVerdictRow("REJECT", None),
    ]
    rep = build_report(
        date="2026-03-02",
        window_start=T0,
        window_end=T0 + timedelta(hours=13),
        equity_start=D("10000000"),
        fills=fills,
        verdicts=verdicts,
    )
    assert rep.realized_pnl_krw == D(1000)
    assert rep.fees_krw == D(300)
    assert rep.pnl_krw == D(700)
    assert (rep.trades, rep.buys, rep.sells, rep.wins) == (6, 3, 3, 1)
    assert rep.win_rate_pct == D(1) / D(3) * 100
    # equity: 10,000,000 -50 +3,948 (peak 10,003,898) -50 -3,048 (10,000,800) -50 -50
    assert rep.max_drawdown_pct == D(3198) / D(10003898) * 100
    # best / worst after fees (these SELLs carry no entry fee): 4,000 - 52 and -3,000 - 48
    assert (rep.best.symbol, rep.best.pnl_krw) == ("KRW-BTC", D(3948))
    assert (rep.worst.symbol, rep.worst.pnl_krw) == ("KRW-ETH", D(-3048))
    assert (rep.ai_approvals, rep.ai_rejections, rep.ai_cost_usd) == (1, 2, D("0.0223"))
    assert rep.equity_end_krw == D("10000700")


def test_empty_day_has_no_win_rate() -> None:
    """Without closed trades the win rate is N/A and the template still has three lines."""
    rep = build_report(
        date="2026-03-02", window_start=T0, window_end=T0, equity_start=D(1), fills=[], verdicts=[]
    )
    assert rep.win_rate_pct is None
    assert rep.best is None
    assert rep.pnl_krw == 0
    lines = template_summary(rep)
    assert len(lines) == 3
    assert "N/A" in lines[1]


def test_a_sell_whose_gain_the_fees_eat_is_not_a_win() -> None:
    """Gross +60 KRW, SELL fee 25, BUY fee 50: net −15, a loss for the win rate as for the
    cooldown; gross +100 with the same fees nets +25, a win."""
    from dataclasses import replace

    from coinpilot.domain.fills import is_win

    eaten = replace(fill("SELL", 30, "25", "60"), entry_fee=D(50))
    kept = replace(fill("SELL", 60, "25", "100", sym="KRW-ETH"), entry_fee=D(50))
    rep = build_report(date="2026-03-02", window_start=T0, window_end=T0 + timedelta(hours=2),
                       equity_start=D(10_000_000), fills=[eaten, kept], verdicts=[])  # fmt: skip
    assert (eaten.net_pnl, kept.net_pnl) == (D(-15), D(25))
    assert (is_win(eaten.net_pnl), is_win(kept.net_pnl)) == (False, True)
    assert (rep.sells, rep.wins) == (2, 1)
    assert rep.win_rate_pct == D(50)
