"""Discord embeds stay inside every limit and never ping."""

from __future__ import annotations

from typing import Any

import pytest

from coinpilot.adapters.notify import (
    GREEN,
    ORANGE,
    PURPLE,
    RED,
    build_message,
    clip,
    message_size,
)
from tests.fakes.discord import limit_errors


def test_clip_trims_whitespace_and_marks_the_cut() -> None:
    """Clipping trims first, then cuts to the limit with an ellipsis."""
    assert clip("  abc  ", 5) == "abc"
    cut = clip("x" * 10, 5)
    assert len(cut) == 5
    assert cut.endswith("…")


@pytest.mark.parametrize(
    ("kind", "payload", "colour"),
    [
        ("trade", {"side": "BUY", "symbol": "KRW-BTC"}, GREEN),
        ("trade", {"side": "SELL", "symbol": "KRW-BTC"}, RED),
        ("ai-decision", {"decision": "REJECT"}, ORANGE),
        ("daily-report", {"date": "2026-03-02", "summary": ["a", "b", "c"]}, PURPLE),
        ("system", {"event": "error", "level": "ERROR"}, RED),
    ],
)
def test_colour_by_kind(kind: str, payload: dict[str, Any], colour: int) -> None:
    """Each kind (and side/decision/level) gets its own colour."""
    assert build_message(kind, payload, footer="f")["embeds"][0]["color"] == colour


def test_mentions_are_always_suppressed() -> None:
    """allowed_mentions is empty even when the text contains @everyone."""
    msg = build_message("risk", {"message": "@everyone @here"}, footer="f")
    assert msg["allowed_mentions"] == {"parse": []}


def test_oversized_payload_fits_every_limit() -> None:
    """A payload over every limit is trimmed to a body the limit checker accepts."""
    payload: dict[str, Any] = {f"k{i}": "v" * 5000 for i in range(60)}
    payload.update({"title": "t" * 999, "reason": "r" * 20000, "k" * 400: "x"})
    msg = build_message("ai-decision", payload, footer="z" * 3000)
    embed = msg["embeds"][0]
    assert limit_errors(msg) is None
    assert message_size(msg) <= 6000
    assert len(embed["title"]) == 256
    assert len(embed["fields"]) <= 25


def test_limit_checker_rejects_what_discord_rejects() -> None:
    """The fake's checker flags an over-long title, too many fields and an empty message."""
    assert limit_errors({"embeds": [{"title": "t" * 257}]}) is not None
    fields = [{"name": "n", "value": "v"}] * 26
    assert limit_errors({"embeds": [{"fields": fields}]}) is not None
    assert limit_errors({"embeds": []})[0] == 50006


def test_daily_report_shows_summary_and_lines() -> None:
    """The daily report embed carries the 3-line summary then the report lines."""
    msg = build_message(
        "daily-report",
        {"date": "2026-03-02", "summary": ["s1", "s2", "s3"], "lines": ["PnL: 1 KRW"]},
        footer="f",
    )
    assert msg["embeds"][0]["description"] == "s1\ns2\ns3\n\nPnL: 1 KRW"


def test_money_fields_get_thousands_separators() -> None:
    """Prices at the tick, KRW to the won (PnL signed), quantities to 8 places; other
    numbers are left alone."""
    msg = build_message(
        "trade",
        {
            "side": "SELL",
            "price": "95123456.7",
            "realized_pnl": -1200.5,
            "quantity": "1000.5",
            "fee_krw": "124.9999999998967748175",
            "diff_pct": "1.005",
            "confidence": "0.75",
        },
        footer="f",
    )
    values = {f["name"]: f["value"] for f in msg["embeds"][0]["fields"]}
    assert values == {
        "Side": "SELL",
        "Price": "95,123,000",
        "Realized pnl": "-1,201",
        "Quantity": "1,000.50000000",
        "Fee krw": "125",
        "Diff pct": "1.01%",
        "Confidence": "0.75",
    }
