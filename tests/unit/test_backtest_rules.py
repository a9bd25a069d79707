"""The backtest's short cut for a full portfolio answers exactly as the full risk check."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from coinpilot.backtest import rules
from coinpilot.backtest.book import Book, Day, Position
from coinpilot.config import load_config

APP = load_config(environ={}).app  # 3 concurrent positions, 5 % daily loss, 10 buys a day
NOW = 1_700_000_000


def _book(closes: list[float], cash: int, opening: int, buys: int, halted: bool) -> Book:
    book = Book(cash=Decimal(cash))
    for j, close in enumerate(closes):
        sym = f"KRW-H{j}"
        book.positions[sym] = Position(sym, Decimal("0.5"), Decimal(100), NOW - 60, "BULL",
                                       Decimal(100), j, close)  # fmt: skip
    book.day = Day(key=1, opening_equity=Decimal(opening), buy_count=buys, halted=halted)
    return book


def test_full_portfolio_with_the_day_deep_in_loss_still_halts() -> None:
    """Three positions held, equity 20 % under the opening: the daily loss limit comes
    first and halts the day; the full-portfolio answer must not hide it."""
    book = _book([100.0, 100.0, 100.0], cash=800_000, opening=1_000_000, buys=3, halted=False)
    # equity = 800,000 + 3 × 0.5 × 100 = 800,150: −19.985 % of the opening 1,000,000
    assert rules.check_entry(book, "KRW-NEW", NOW, APP) == "daily_loss_limit"
    assert book.day is not None
    assert book.day.halted


def test_full_portfolio_a_hair_above_the_loss_limit_is_full() -> None:
    """Equity exactly 1 KRW above the −5 % line: not breached, so the portfolio is full."""
    # opening 1,000,000 → the line is 950,000; 949,851 + 3 × 0.5 × 100 = 950,001
    book = _book([100.0, 100.0, 100.0], cash=949_851, opening=1_000_000, buys=3, halted=False)
    assert rules.check_entry(book, "KRW-NEW", NOW, APP) == "max_concurrent_positions"
    assert book.day is not None
    assert not book.day.halted


@settings(max_examples=300, deadline=None)
@given(
    closes=st.lists(st.floats(1e-3, 1e7, allow_nan=False), min_size=0, max_size=4),
    cash=st.integers(0, 20_000_000),
    opening=st.integers(1, 20_000_000),
    buys=st.integers(0, 12),
    halted=st.booleans(),
    held=st.booleans(),
)
def test_short_cut_agrees_with_the_full_check(
    closes: list[float], cash: int, opening: int, buys: int, halted: bool, held: bool
) -> None:
    """On any book, the reason (and the halt) equals the one risk.check_entry gives."""
    fast = _book(closes, cash, opening, buys, halted)
    slow = _book(closes, cash, opening, buys, halted)
    symbol = "KRW-H0" if held and closes else "KRW-NEW"
    expected = _full(slow, symbol)
    assert rules.check_entry(fast, symbol, NOW, APP) == expected
    assert fast.day == slow.day


def _full(book: Book, symbol: str) -> str | None:
    """The full check alone: the risk manager on the book's whole state."""
    from coinpilot.domain import risk

    day = book.day
    assert day is not None
    state = risk.RiskState(equity=book.equity(), opening_equity=day.opening_equity,
                           buy_count=day.buy_count, halted=day.halted, cooldown_until=None,
                           open_symbols=frozenset(book.positions))  # fmt: skip
    verdict = risk.check_entry(state, symbol, APP.risk, rules._dt(NOW))
    if verdict.halt:
        day.halted = True
    return None if verdict.ok else verdict.reason_code
