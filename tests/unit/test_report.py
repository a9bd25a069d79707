"""Daily report maths against hand computations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from coinpilot.domain.report import (
    AiVerdictRow,
    DailyReport,
    Fill,
    build_report,
    max_drawdown_pct,
    report_lines,
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


def hand_day() -> list[Fill]:
    return [
        fill("BUY", 1, "50"),
        fill("SELL", 30, "52", "4000"),
        fill("BUY", 40, "50", sym="KRW-ETH"),
        fill("SELL", 90, "48", "-3000", sym="KRW-ETH"),
        fill("BUY", 100, "50"),
        fill("SELL", 120, "50", "0"),
    ]


def hand_report() -> DailyReport:
    verdicts = [
        AiVerdictRow("CONFIRM", D("0.0123")),
        AiVerdictRow("REJECT", D("0.0100")),
        AiVerdictRow("REJECT", None),
    ]
    return build_report(
        date="2026-03-02",
        window_start=T0,
        window_end=T0 + timedelta(hours=13),
        equity_start=D("10000000"),
        fills=hand_day(),
        verdicts=verdicts,
    )


def test_report_numbers_match_hand_computation() -> None:
    """PnL, win rate, drawdown, best/worst and AI totals equal a hand calculation."""
    rep = hand_report()
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


def test_report_lines_read_as_hand_written() -> None:
    """The terminal and the summary prompt read these lines: every figure at its format."""
    # PnL 1,000 realized - 300 fees = +700; win rate 1/3 = 33.333… % -> 33.33 %;
    # drawdown 3,198 / 10,003,898 = 0.03197 % -> 0.03 %; AI cost 0.0123 + 0.0100 = 0.0223
    assert report_lines(hand_report()) == [
        "PnL: +700 KRW (gross +1,000, fees 300)",
        "Trades: 6 (3 buys, 3 sells)",
        "Win rate: 33.33% (1/3)",
        "Max drawdown: 0.03%",
        "Best trade: KRW-BTC 3,948 KRW",
        "Worst trade: KRW-ETH -3,048 KRW",
        "AI: 1 approved, 2 rejected, cost $0.0223",
    ]
    assert template_summary(hand_report()) == [
        "2026-03-02: gain, net PnL 700 KRW over 6 fills.",
        "Win rate 33.33% on 3 closed trades; max drawdown 0.03%.",
        "AI second opinion: 1 approved, 2 rejected ($0.0223).",
    ]


def test_an_empty_day_reads_as_none() -> None:
    """No fills: nothing to rate, no best or worst trade, a flat day."""
    rep = build_report(date="2026-03-03", window_start=T0, window_end=T0,
                       equity_start=D(1_000_000), fills=[], verdicts=[])  # fmt: skip
    assert report_lines(rep) == [
        "PnL: +0 KRW (gross +0, fees 0)",
        "Trades: 0 (0 buys, 0 sells)",
        "Win rate: N/A (0/0)",
        "Max drawdown: 0.00%",
        "Best trade: none",
        "Worst trade: none",
        "AI: 0 approved, 0 rejected, cost $0.0000",
    ]
    assert template_summary(rep) == [
        "2026-03-03: flat day, net PnL 0 KRW over 0 fills.",
        "Win rate N/A on 0 closed trades; max drawdown 0.00%.",
        "AI second opinion: 0 approved, 0 rejected ($0.0000).",
    ]


@pytest.mark.parametrize(
    ("fee", "pnl", "tone"),
    [
        # one SELL: net PnL = realized - fee
        ("0.5", "1", "gain"),  # +0.5 KRW, less than a won, is still a gain
        ("1", "1", "flat day"),  # exactly 0
        ("1.5", "1", "loss"),  # -0.5 KRW
    ],
)
def test_the_tone_follows_the_sign_of_the_net_pnl(fee: str, pnl: str, tone: str) -> None:
    rep = build_report(date="d", window_start=T0, window_end=T0, equity_start=D(1000),
                       fills=[fill("SELL", 1, fee, pnl)], verdicts=[])  # fmt: skip
    assert template_summary(rep)[0].startswith(f"d: {tone}, net PnL ")


def test_report_carries_its_window_and_notes_a_sell_without_pnl() -> None:
    """A SELL with no recorded PnL counts as 0 and is named in the notes; the report keeps
    the day, window and starting equity it was built for, and each trade's time."""
    end = T0 + timedelta(hours=9)
    rep = build_report(
        date="2026-03-02",
        window_start=T0,
        window_end=end,
        equity_start=D("5000000"),
        fills=[fill("BUY", 5, "25"), fill("SELL", 65, "25"), fill("SELL", 70, "10", "40")],
        verdicts=[],
    )
    assert (rep.date, rep.window_start, rep.window_end) == ("2026-03-02", T0, end)
    assert rep.equity_start_krw == D("5000000")
    assert rep.notes == ("KRW-BTC SELL at 2026-03-02T01:05:00+00:00 has no recorded PnL",)
    # net PnL per SELL: 0 - 25 = -25 at 01:05, 40 - 10 = +30 at 01:10
    assert (rep.worst.pnl_krw, rep.worst.executed_at) == (D(-25), T0 + timedelta(minutes=65))
    assert (rep.best.pnl_krw, rep.best.executed_at) == (D(30), T0 + timedelta(minutes=70))
    # realized 0 + 40 = 40, fees 25 + 25 + 10 = 60
    assert (rep.realized_pnl_krw, rep.fees_krw, rep.pnl_krw) == (D(40), D(60), D(-20))


def test_a_day_with_every_pnl_recorded_has_no_notes() -> None:
    rep = build_report(date="d", window_start=T0, window_end=T0, equity_start=D(1),
                       fills=[fill("SELL", 1, "1", "2")], verdicts=[])  # fmt: skip
    assert rep.notes == ()


def test_an_empty_day_totals_in_decimal() -> None:
    """Money in the report is Decimal even when nothing happened (callers quantize it)."""
    rep = build_report(date="d", window_start=T0, window_end=T0, equity_start=D(7),
                       fills=[], verdicts=[])  # fmt: skip
    for value in (rep.realized_pnl_krw, rep.fees_krw, rep.pnl_krw, rep.ai_cost_usd):
        assert type(value) is D
        assert value == 0
    assert rep.equity_end_krw == D(7)


def test_drawdown_below_one_won_and_without_a_positive_peak() -> None:
    """A peak under 1 KRW still measures its fall; an account never above zero has no
    percentage to fall from."""
    # 0.8 -> 0.2: fell 0.6 of 0.8 = 75 %
    assert max_drawdown_pct(D("0.8"), [D("-0.6")]) == D(75)
    assert max_drawdown_pct(D(0), [D(-10), D(5)]) == 0
