"""The candle stream's wire pieces and minute closing, without I/O."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from coinpilot.adapters.marketdata import CandleRow
from coinpilot.adapters.upbit_ws import (
    MalformedFrame,
    parse_frame,
    stream_url,
    subscribe_message,
)
from coinpilot.config import CollectorConfig
from coinpilot.services.candle_stream import MinuteCloser

M0 = datetime(2026, 11, 29, 20, 41, tzinfo=UTC)
MIN = timedelta(minutes=1)
# The documented DEFAULT example (EXTERNAL_APIS §1.10), and the same data in SIMPLE_LIST.
DEFAULT = (
    '{"type":"candle.1m","code":"KRW-BTC","candle_date_time_utc":"2026-11-29T20:41:00",'
    '"candle_date_time_kst":"2026-11-30T05:41:00","opening_price":13546000.0,'
    '"high_price":13549000.0,"low_price":13531000.0,"trade_price":13540000.0,'
    '"candle_acc_trade_volume":18.69482439,"candle_acc_trade_price":253126880.51889,'
    '"timestamp":1795984917342,"stream_type":"REALTIME"}'
)
SIMPLE_LIST = (
    '[{"ty":"candle.1m","cd":"KRW-BTC","cdttmu":"2026-11-29T20:41:00",'
    '"cdttmk":"2026-11-30T05:41:00","op":13546000.0,"hp":13549000.0,"lp":13531000.0,'
    '"tp":13540000.0,"catv":18.69482439,"catp":253126880.51889,"tms":1795984917342,'
    '"st":"REALTIME"}]'
)
ROW = CandleRow(
    "KRW-BTC",
    "1m",
    M0,
    Decimal("13546000.0"),
    Decimal("13549000.0"),
    Decimal("13531000.0"),
    Decimal("13540000.0"),
    Decimal("18.69482439"),
    Decimal("253126880.51889"),
)


def test_stream_url_follows_the_rest_host_unless_given() -> None:
    assert stream_url("https://api.upbit.com") == "wss://api.upbit.com/websocket/v1"
    assert stream_url("http://127.0.0.1:8765/") == "ws://127.0.0.1:8765/websocket/v1"
    assert stream_url("http://x:1", "ws://y:2/ws") == "ws://y:2/ws"
    with pytest.raises(ValueError, match="cannot derive"):
        stream_url("api.upbit.com")


def test_subscription_is_one_array_with_ticket_type_codes_and_format() -> None:
    ticket, kind, fmt = json.loads(subscribe_message(["KRW-BTC", "KRW-ETH"]))
    assert ticket["ticket"].startswith("coinpilot-")
    assert kind == {"type": "candle.1m", "codes": ["KRW-BTC", "KRW-ETH"]}
    assert fmt == {"format": "SIMPLE"}


@pytest.mark.parametrize("text", [DEFAULT, SIMPLE_LIST])
def test_default_and_simple_frames_give_the_same_exact_row(text: str) -> None:
    for data in (text, text.encode()):
        assert parse_frame(data).candles == [ROW]


def test_status_errors_and_bad_candles_are_told_apart() -> None:
    assert parse_frame(b'{"status":"UP"}').status == 1
    frame = parse_frame('{"error":{"name":"NO_CODES","message":"m"}}')
    assert frame.errors == ("NO_CODES: m",)
    bad = DEFAULT.replace('"low_price":13531000.0', '"low_price":13600000.0')
    assert parse_frame(bad).rejected == ("inconsistent_range",)
    assert parse_frame('{"type":"ticker","code":"KRW-BTC"}').other == 1
    with pytest.raises(MalformedFrame):
        parse_frame(b'{"ty":"candle.1m","cd":"KRW-BTC","cdttmu":"2026-11-29T2')
    with pytest.raises(MalformedFrame):
        parse_frame(b"\xff\xfe")


def row(minute: int, close: str, symbol: str = "KRW-BTC") -> CandleRow:
    return ROW._replace(symbol=symbol, ts=M0 + minute * MIN, close_price=Decimal(close))


def test_a_minute_closes_on_the_next_minute_with_its_last_values() -> None:
    closer = MinuteCloser(grace_s=2.0)
    assert closer.update(row(0, "13540000")) == []
    assert closer.update(row(0, "13541000")) == []
    assert closer.update(row(1, "13542000")) == [row(0, "13541000")]
    assert closer.update(row(0, "13000000")) == []  # late: never overwrites
    assert closer.late == 1


def test_a_minute_without_a_successor_closes_after_the_grace() -> None:
    closer = MinuteCloser(grace_s=2.0)
    closer.update(row(0, "1"))
    closer.update(row(0, "1", "KRW-ETH"))
    assert closer.due(M0 + MIN + timedelta(seconds=1.9)) == []
    assert closer.due(M0 + MIN + timedelta(seconds=2)) == [row(0, "1"), row(0, "1", "KRW-ETH")]
    assert closer.due(M0 + 5 * MIN) == []
    assert closer.update(row(0, "2")) == []  # after it closed by time: late
    assert closer.update(row(3, "3")) == []


def test_forming_minutes_are_forgotten_after_a_disconnect() -> None:
    closer = MinuteCloser(grace_s=2.0)
    closer.update(row(0, "1"))
    assert closer.forget_forming() == 1
    assert closer.due(M0 + 10 * MIN) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("close_grace_s", float("nan")),
        ("close_grace_s", 0.0),
        ("ws_ping_interval_s", float("inf")),
        ("ws_ping_interval_s", 150.0),
        ("ws_reconnect_min_s", 0.0),
        ("ws_reconnect_max_s", 1e9),
        ("source", "carrier-pigeon"),
    ],
)
def test_stream_settings_are_checked(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        CollectorConfig.model_validate({field: value})


def test_reconnect_bounds_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="ws_reconnect_min_s must not exceed"):
        CollectorConfig(ws_reconnect_min_s=10.0, ws_reconnect_max_s=5.0)


def test_the_stream_url_comes_from_the_environment() -> None:
    from coinpilot.config import load_config

    env = {"COINPILOT_UPBIT_URL": "http://127.0.0.1:9", "COINPILOT_UPBIT_WS_URL": "ws://h:1/x"}
    settings = load_config(environ=env)
    assert settings.app.upbit.ws_url == "ws://h:1/x"
    assert settings.app.collector.source == "websocket"
    assert load_config(environ={}).app.upbit.ws_url is None
