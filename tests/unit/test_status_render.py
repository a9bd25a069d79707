"""`coinpilot status` shows money as people read it; the JSON keeps the exact values."""

from __future__ import annotations

from coinpilot.commands.status import render


def test_status_table_rounds_for_people() -> None:
    """Price at the 1,000 KRW tick, quantity 8 dp, PnL % 2 dp, KRW to the won, PnL net of
    fees: gross 4,367.4 - fees 252.6 = 4,114.8, shown +4,115."""
    data = {
        "symbols": [
            {
                "symbol": "KRW-BTC", "price": 95123456.7, "candle_age_s": 4, "regime": "BULL",
                "position": "0.001052631578947368@95000000.123",
                "quantity": "0.001052631578947368", "avg_price": "95000000.123",
                "pnl_pct": 0.129943, "action": "HOLD", "reason_code": "-", "reason": "",
            }
        ],
        "account": {"equity": "10004114.8", "cash": "9904114.4999999", "exposure": "100000.3",
                    "cooldown_until": None},
        "today": {"date": "2026-03-02", "buys": 1, "sells": 1, "realized_pnl": "4367.4",
                  "fees_paid": "252.6", "halted": False, "halt_reason": None,
                  "consecutive_losses": 0},
        "outbox": {"counts": {}, "undelivered": []},
    }  # fmt: skip
    text = render(data)
    assert "95,123,000" in text
    assert "0.00105263 @ 95,000,000" in text
    assert "+0.13%" in text
    assert "equity 10,004,115 KRW   cash 9,904,114 KRW   exposure 100,000 KRW" in text
    assert "PnL +4,115 KRW (gross +4,367, fees 253)" in text
    assert "0.001052631578947368" not in text
