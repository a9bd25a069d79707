"""Edge parsing of Upbit responses, the request budget and the candle CSV reader (no I/O)."""

from __future__ import annotations

import asyncio
import bisect
import random
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from coinpilot.adapters.csvdata import CsvFormatError, read_csv
from coinpilot.adapters.upbit import (
    RequestBudget,
    UpbitError,
    decode_json,
    format_to,
    parse_block_seconds,
    parse_candle,
    parse_candles,
    parse_remaining_req,
    unknown_symbols,
)
from coinpilot.clock import SimulatedClock

GOOD = (
    '{"market":"KRW-BTC","candle_date_time_utc":"2020-02-25T06:41:00",'
    '"candle_date_time_kst":"2020-02-25T15:41:00","opening_price":11436000.0,'
    '"high_price":11443000.0,"low_price":11428000.0,"trade_price":11443000.0,'
    '"timestamp":1582612901489,"candle_acc_trade_price":17001839.06758,'
    '"candle_acc_trade_volume":1.48642105,"unit":1}'
)


def good(**changes: object) -> dict[str, object]:
    item = decode_json(GOOD)
    item.update(changes)
    return item


def test_remaining_req_header_is_parsed_and_unknown_groups_tolerated() -> None:
    """The sec budget is read from the header whatever the group is called."""
    assert parse_remaining_req("group=candles; min=600; sec=9") == ("candles", 9)
    assert parse_remaining_req("group=order-cancel-all; min=1800; sec=0") == (
        "order-cancel-all",
        0,
    )
    assert parse_remaining_req("garbage") is None
    assert parse_remaining_req(None) is None


def test_candle_maps_fields_exactly() -> None:
    """Prices and volumes keep every decimal digit of the wire text, ts is the UTC start."""
    row = parse_candle(decode_json(GOOD), "KRW-BTC")
    assert row.ts == datetime(2020, 2, 25, 6, 41, tzinfo=UTC)
    assert (row.open_price, row.high_price, row.low_price, row.close_price) == (
        Decimal("11436000.0"),
        Decimal("11443000.0"),
        Decimal("11428000.0"),
        Decimal("11443000.0"),
    )
    assert row.volume == Decimal("1.48642105")
    assert row.value_krw == Decimal("17001839.06758")
    assert row.interval == "1m"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"opening_price": 0.0}, "non_positive_price"),
        ({"low_price": -1.0}, "non_positive_price"),
        ({"low_price": 11450000.0}, "inconsistent_range"),
        ({"trade_price": 11500000.0}, "inconsistent_range"),
        ({"candle_acc_trade_volume": -0.1}, "negative_volume"),
        ({"opening_price": float("nan")}, "malformed_field"),
        ({"high_price": float("inf")}, "malformed_field"),
        ({"opening_price": "11436000"}, "malformed_field"),
        ({"opening_price": True}, "malformed_field"),
        ({"market": "KRW-ETH"}, "wrong_market"),
        ({"candle_date_time_utc": "yesterday"}, "malformed_field"),
        ({"candle_date_time_utc": "2020-02-25T06:41:30"}, "off_grid_time"),
    ],
)
def test_impossible_candles_are_rejected_with_a_reason(
    changes: dict[str, object], reason: str
) -> None:
    """Each kind of impossible candle is refused at the edge with its own reason."""
    with pytest.raises(ValueError, match=reason):
        parse_candle(good(**changes), "KRW-BTC")


def test_missing_field_is_rejected() -> None:
    """A candle without its close price is malformed."""
    item = good()
    del item["trade_price"]
    with pytest.raises(ValueError, match="malformed_field"):
        parse_candle(item, "KRW-BTC")


def test_page_keeps_good_candles_counts_bad_ones_and_sorts_oldest_first() -> None:
    """A page with bad items yields only the good ones, oldest first, and per-reason counts."""
    newer = good(candle_date_time_utc="2020-02-25T06:42:00")
    payload = [newer, good(), good(opening_price=-5.0), "junk"]
    rows, rejected = parse_candles(payload, "KRW-BTC")
    assert [r.ts.minute for r in rows] == [41, 42]
    assert rejected == {"non_positive_price": 1, "not_an_object": 1}


def test_nan_literal_from_the_wire_is_rejected() -> None:
    """Python's json accepts NaN; the edge check must still refuse it."""
    payload = decode_json("[" + GOOD.replace("11436000.0", "NaN") + "]")
    rows, rejected = parse_candles(payload, "KRW-BTC")
    assert rows == []
    assert rejected == {"malformed_field": 1}


def test_non_json_and_non_array_payloads_raise_malformed() -> None:
    """Garbage bodies and objects where an array belongs are transient 'malformed' errors."""
    with pytest.raises(UpbitError) as err:
        decode_json('[{"market": "KRW-BTC", "open')
    assert err.value.kind == "malformed"
    with pytest.raises(UpbitError):
        parse_candles({"error": {"name": "x"}}, "KRW-BTC")


def test_block_time_from_header_or_body_with_a_default() -> None:
    """418 block time comes from Retry-After, else a number of seconds in the body."""
    assert parse_block_seconds("120", "") == 120.0
    assert parse_block_seconds(None, "You are blocked for 45 seconds") == 45.0
    assert parse_block_seconds(None, "blocked") == 60.0


def test_to_is_sent_with_an_explicit_utc_zone() -> None:
    """`to` always carries Z, never a zone-less time another API would read as KST."""
    kst = datetime(2025, 6, 24, 22, 56, 53, tzinfo=timezone(timedelta(hours=9)))
    assert format_to(kst) == "2025-06-24T13:56:53Z"


def test_unknown_symbols_keep_config_order() -> None:
    """Markets missing from the list are reported in the order they were configured."""
    assert unknown_symbols(["KRW-X", "KRW-BTC", "KRW-A"], {"KRW-BTC"}) == ["KRW-X", "KRW-A"]


async def test_budget_never_allows_more_than_the_limit_in_a_window() -> None:
    """25 sends at 10/s spread over more than two windows of simulated time, without sleeping."""
    clock = SimulatedClock(datetime(2024, 1, 1, tzinfo=UTC))
    budget = RequestBudget(clock, 10)
    sent = []
    for _ in range(25):
        budget.done(await budget.acquire())  # each answer arrives at once
        sent.append(clock.monotonic())
    for i in range(len(sent) - 10):
        assert sent[i + 10] - sent[i] >= 1.0
    assert sent[-1] - sent[0] >= 2.0


async def test_budget_counts_a_window_from_each_response() -> None:
    """A slow answer pushes its slot's expiry: arrivals stay a window apart however late."""
    clock = SimulatedClock(datetime(2024, 1, 1, tzinfo=UTC))
    budget = RequestBudget(clock, 2)
    first = await budget.acquire()
    second = await budget.acquire()
    clock.advance(0.8)  # both requests were slow to come back
    budget.done(first)
    budget.done(second)
    before = clock.monotonic()
    budget.done(await budget.acquire())
    assert clock.monotonic() - before >= 1.0


@pytest.mark.parametrize(
    "reply_times",
    [(0.0,), (0.0, 0.0, 0.001, 0.0137, 0.05, 0.2)],
    ids=["instant_replies", "uneven_replies"],
)
async def test_budget_never_grants_more_than_ten_in_any_second_of_a_long_run(
    reply_times: tuple[float, ...],
) -> None:
    """Ten simulated minutes of 40 concurrent senders: any 1 s holds at most 10 grants.

    Queued senders wait on the lock while slots expire; a window edge must release one
    sender per expired slot, never the whole queue at once, and must never stop granting.
    """
    clock = SimulatedClock(datetime(2024, 1, 1, tzinfo=UTC))
    budget = RequestBudget(clock, 10)
    rng = random.Random(13)
    granted: list[float] = []

    async def sender() -> None:
        while clock.monotonic() < 600.0:
            slot = await budget.acquire()
            granted.append(clock.monotonic())
            await clock.sleep(rng.choice(reply_times))
            budget.done(slot)

    hung_at = None
    try:
        # A guard against a budget that spins without moving the clock, not a timing check.
        await asyncio.wait_for(asyncio.gather(*(sender() for _ in range(40))), timeout=30)
    except TimeoutError:
        hung_at = clock.monotonic()
    granted.sort()
    worst = max(bisect.bisect_left(granted, t + 1.0) - i for i, t in enumerate(granted))
    assert worst <= 10, f"{worst} grants within one second"
    assert hung_at is None, f"the budget stopped granting at {hung_at:.6f} s simulated"
    # And it keeps sending: every reply and poll moves the one shared simulated clock, so
    # the run cannot reach the ideal 10 per 1.05 s, but it must stay well above 8 a second.
    assert len(granted) >= 8 * 600


async def test_budget_holds_when_the_server_says_the_second_is_used_up() -> None:
    """sec=0 that our own sends do not explain delays the next send by a window."""
    clock = SimulatedClock(datetime(2024, 1, 1, tzinfo=UTC))
    budget = RequestBudget(clock, 10)
    await budget.acquire()
    budget.observe(0)
    before = clock.monotonic()
    await budget.acquire()
    assert clock.monotonic() - before >= 1.0


def _csv(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "c.csv"
    path.write_text("symbol,ts_utc,open,high,low,close,volume,value_krw\n" + body)
    return path


def test_csv_rows_are_exact_and_symbol_can_be_overridden(tmp_path: Path) -> None:
    """Numbers keep their text; --symbol replaces the file's market code."""
    path = _csv(tmp_path, "BTCUSDT,2024-02-01T00:00:00Z,42580,42600.5,42500,42590.01,12.5,\n")
    (row,) = read_csv(path, "KRW-BTC")
    assert row.symbol == "KRW-BTC"
    assert row.value_krw is None
    assert row.high_price == Decimal("42600.5")
    assert row.close_price == Decimal("42590.01")


def test_csv_reports_every_bad_line_number(tmp_path: Path) -> None:
    """All bad rows are listed by line number; nothing is returned."""
    body = (
        "KRW-BTC,2018-01-25T06:42:00Z,100,110,90,105,1,100\n"
        "KRW-BTC,2018-01-25T06:43:00Z,100,90,110,105,1,100\n"
        "KRW-BTC,not-a-time,100,110,90,105,1,100\n"
        "KRW-BTC,2018-01-25T06:42:00Z,100,110,90,105,1,100\n"
        "KRW-BTC,2018-01-25T06:45:00Z,100,110,90,abc,1,100\n"
    )
    with pytest.raises(CsvFormatError) as err:
        read_csv(_csv(tmp_path, body))
    assert [p.line for p in err.value.problems] == [3, 4, 5, 6]


def test_csv_with_a_wrong_header_is_refused(tmp_path: Path) -> None:
    """A file in another layout is refused at line 1."""
    path = tmp_path / "x.csv"
    path.write_text("ts,open,high,low,close\n")
    with pytest.raises(CsvFormatError, match="line 1"):
        read_csv(path)


def test_csv_refuses_rows_out_of_time_order(tmp_path: Path) -> None:
    """Times must ascend: a row earlier than the one above it is named by its line."""
    body = (
        "KRW-BTC,2018-01-25T06:42:00Z,100,110,90,105,1,100\n"
        "KRW-BTC,2018-01-25T06:44:00Z,100,110,90,105,1,100\n"
        "KRW-BTC,2018-01-25T06:43:00Z,100,110,90,105,1,100\n"
        "KRW-BTC,2018-01-25T06:45:00Z,100,110,90,105,1,100,7\n"
    )
    with pytest.raises(CsvFormatError) as err:
        read_csv(_csv(tmp_path, body))
    problems = {p.line: p.reason for p in err.value.problems}
    assert sorted(problems) == [4, 5]
    assert "ascend" in problems[4]
    assert problems[5] == "expected 8 fields, got 9"


def test_an_hourly_file_is_not_taken_for_minutes(tmp_path: Path) -> None:
    """Hour-spaced candles (one gap of a minute among them) are refused as not 1-minute."""
    times = ["06:00", "07:00", "07:01", "08:01", "09:01"]
    body = "".join(f"KRW-ETH,2024-01-01T{t}:00Z,100,110,90,105,1,\n" for t in times)
    with pytest.raises(CsvFormatError) as err:
        read_csv(_csv(tmp_path, body))
    (problem,) = err.value.problems
    assert problem.line == 3
    assert "1 h apart" in problem.reason
    assert "not a 1-minute file" in problem.reason


def test_minute_candles_with_gaps_are_accepted(tmp_path: Path) -> None:
    """Missing minutes are normal (no trades); mostly one minute apart is a 1-minute file."""
    times = ["06:00", "06:01", "06:02", "06:30", "06:31", "09:00"]
    body = "".join(f"KRW-ETH,2024-01-01T{t}:00Z,100,110,90,105,0,\n" for t in times)
    rows = read_csv(_csv(tmp_path, body))
    assert [r.ts.minute for r in rows] == [0, 1, 2, 30, 31, 0]
