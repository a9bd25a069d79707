"""`coinpilot status` shows money as people read it; its JSON keeps exact decimals."""

from __future__ import annotations

from coinpilot.commands.status import render


def test_status_text_rounds_money_for_people() -> None:
    data = {
        "symbols": [
            {
                "symbol": "KRW-BTC",
                "price": 95123456.789,
                "candle_age_s": 30,
                "regime": "BULL",
                "quantity": "0.004442220000000001",
                "avg_price": "90045000.00000000000001",
                "pnl_pct": 5.6789,
                "action": "HOLD",
                "reason_code": "in_position",
                "reason": "holding",
            }
        ],
        "account": {
            "equity": "10004115.999999",
            "cash": "9600000.4",
            "exposure": "404115.5",
            "cooldown_until": None,
        },
        "today": {
            "date": "2026-03-02",
            "buys": 1,
            "sells": 1,
            "realized_pnl": "4367.1234",
            "fees_paid": "252.0000001",
            "halted": False,
            "halt_reason": None,
            "consecutive_losses": 0,
        },
        "outbox": {"counts": {}, "undelivered": []},
    }
    text = render(data)
    # Tick of a 95 M KRW price is 1,000; quantities 8 dp; percentages 2 dp; KRW to the won.
    assert "95,123,000" in text
    assert "0.00444222 @ 90,045,000" in text
    assert "5.68%" in text
    assert "equity 10,004,116 KRW" in text
    assert "realized +4,115 KRW (gross +4,367, fees 252)" in text
    assert "0000001" not in text
