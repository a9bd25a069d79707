"""A local Upbit quotation server speaking the real wire format (EXTERNAL_APIS §1.7).

Serves candles loaded from the shared CSV files:

* ``GET /v1/candles/minutes/{unit}`` (unit 1): newest first, ``count`` default 1 and
  clamped to 200 (or 400 validation_error with ``strict_count``), ``to`` exclusive in any
  of the documented forms, no candle for minutes without trades, ``[]`` before the data,
  and the minute in progress at the fake's own clock as the newest candle with partial
  values (open everywhere, a share of the volume); nothing after that clock.
* ``GET /v1/market/all``: every loaded market plus ``extra_markets``.
* ``GET /v1/ticker?markets=...``: a snapshot from the candles at the fake's clock
  (day figures from 00:00 UTC; the 24 h and 52-week fields are left out).
* ``Remaining-Req: group=candles; min=600; sec=N`` on every response (each group its own
  budget and name). Over ``limit_per_s`` in any one second → 429 with ``sec=0`` and the
  plain-text body ``Too many API requests.`` (§1.4, §1.5, §1.7); after ``block_after``
  consecutive 429s → 418 for ``block_s`` seconds, ``sec=0``, the time left in whole seconds
  rounded up stated in ``Retry-After`` and in a plain-text body ``blocked for N seconds``
  (Upbit's 418 body is undocumented, §1.5/§8: the client must read either).
  ``timer`` (default ``time.monotonic``) is the time these seconds are counted on: a test
  passes its SimulatedClock's ``monotonic`` to move the fake's second and block with it.
* Per-market faults: ``fail(market, "500" | "stall" | "garbage" | "nan" | "reset", times=None)``.

The clock: ``set_now(dt)`` fixes it; ``FakeUpbit(clock=c)`` follows any Clock (a replay
passes its SimulatedClock, so the collector and the fake agree on "now" without HTTP).
Default: just after the last loaded candle, so every loaded minute is closed.

The WebSocket (``/websocket/v1``, see ``tests.fakes.upbit_ws``) is served by the same
server and the same clock, so one base URL serves both; ``/_stats`` shows the counters.
Live mode (``--live``) runs on the real clock with the CSV candles shifted by whole minutes
so that they happen now: the current minute's candle grows through the minute and the next
one arrives after the boundary. ``--markets N`` serves N markets from the files.

Standalone: ``python -m tests.fakes.upbit --csv FILE[:MARKET] --port N [--now ISO]
[--live [--history-min M]] [--markets N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import math
import re
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiohttp import web

from coinpilot.adapters.csvdata import read_csv
from coinpilot.adapters.marketdata import CandleRow
from coinpilot.clock import SystemClock
from tests.fakes.upbit_ws import CandleStream, Subscription

KST = timedelta(hours=9)
NAMES = {"BTC": "Bitcoin", "ETH": "Ethereum", "XRP": "XRP", "SOL": "Solana", "DOGE": "Dogecoin"}


@dataclass
class Fault:
    kind: str
    times: int | None  # None: every request until cleared


def _num(value: Decimal) -> str:
    """A JSON number that is a float on the wire even when integral (as Upbit sends)."""
    text = str(value)
    return text if any(ch in text for ch in ".eE") else text + ".0"


def _wire_time(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S")


def parse_to(text: str) -> datetime:
    """``...Z``, ``yyyy-MM-dd HH:mm:ss`` (UTC) and ``+09:00`` forms.

    A ``+`` the client forgot to encode arrives as a space: ``...13:56:53 09:00``.
    """
    text = re.sub(r"(\d{2}:\d{2}:\d{2}) (\d{2}:\d{2})$", r"\1+\2", text.strip())
    when = datetime.fromisoformat(text.replace(" ", "T"))
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


class Series:
    """One market's candles, ascending, with a start-time index for bisecting."""

    def __init__(self, rows: list[CandleRow]) -> None:
        self.rows = sorted(rows, key=lambda r: r.ts)
        self.starts = [r.ts for r in self.rows]

    def at(self, minute: datetime) -> CandleRow | None:
        index = bisect.bisect_left(self.starts, minute)
        found = index < len(self.starts) and self.starts[index] == minute
        return self.rows[index] if found else None

    def before(self, minute: datetime) -> CandleRow | None:
        index = bisect.bisect_left(self.starts, minute)
        return self.rows[index - 1] if index > 0 else None


def shift_rows(rows: list[CandleRow], delta: timedelta, market: str) -> list[CandleRow]:
    """A copy of ``rows`` as market ``market``, every minute moved by ``delta``."""
    return [r._replace(symbol=market, ts=r.ts + delta) for r in rows]


# Upbit counts each group's requests on its own budget (EXTERNAL_APIS §1.4).
GROUPS = {"candles": "candles", "markets": "market", "ticker": "ticker"}


class FakeUpbit:
    def __init__(
        self,
        *,
        clock: Any = None,
        limit_per_s: int | None = 10,
        block_after: int | None = None,
        block_s: float = 30.0,
        strict_count: bool = False,
        stall_s: float = 30.0,
        extra_markets: tuple[str, ...] = (),
        timer: Callable[[], float] | None = None,
    ) -> None:
        self.series: dict[str, Series] = {}
        self.timer = timer or time.monotonic
        self.clock = clock
        self._now: datetime | None = None
        self.limit_per_s = limit_per_s
        self.block_after = block_after
        self.block_s = block_s
        self.strict_count = strict_count
        self.stall_s = stall_s
        self.extra_markets = extra_markets
        self.faults: dict[str, Fault] = {}
        self.stats: Counter[str] = Counter()
        self.max_count_seen = 0
        self.requests: list[dict[str, str]] = []
        self._sent: dict[str, deque[float]] = {}
        self._consecutive_429 = 0
        self._blocked_until = 0.0
        self.release = asyncio.Event()
        self.ws = CandleStream(self)
        self.ws_subscriptions: list[Subscription] = []

    # ------------------------------------------------------------ set-up
    def add_rows(self, rows: list[CandleRow]) -> None:
        by_market: dict[str, list[CandleRow]] = {}
        for row in rows:
            by_market.setdefault(row.symbol, []).append(row)
        for market, mine in by_market.items():
            old = self.series[market].rows if market in self.series else []
            self.series[market] = Series(old + mine)

    def revise(self, row: CandleRow) -> None:
        """Replace a stored minute, as Upbit does when it corrects a closed candle."""
        series = self.series[row.symbol]
        index = bisect.bisect_left(series.starts, row.ts)
        if index == len(series.starts) or series.starts[index] != row.ts:
            raise KeyError(f"{row.symbol} has no candle at {row.ts}")
        series.rows[index] = row

    def add_csv(self, path: Path, market: str | None = None) -> None:
        self.add_rows(read_csv(path, market))

    def set_now(self, when: datetime) -> None:
        self.clock = None
        self._now = when.astimezone(UTC)

    def now(self) -> datetime:
        if self.clock is not None:
            return self.clock.now()
        if self._now is not None:
            return self._now
        last = max((s.starts[-1] for s in self.series.values() if s.starts), default=None)
        return last + timedelta(seconds=61) if last else datetime.now(UTC)

    def fail(self, market: str, kind: str, times: int | None = None) -> None:
        self.faults[market] = Fault(kind, times)

    def clear_faults(self) -> None:
        self.faults.clear()

    # ------------------------------------------------------------ rate limit
    def let_a_second_pass(self) -> None:
        """Empty every group's sliding second, as if a second had passed since the last
        request, without waiting for it."""
        self._sent.clear()

    def _admit(self, group: str = "candles") -> tuple[int, web.Response | None]:
        """(requests left in the group's last second, an error response when over the limit).

        Each group has its own budget, counted over a sliding second (any 1 s span, not
        seconds aligned to the clock), so a burst straddling a second boundary is refused."""
        mono = self.timer()
        if mono < self._blocked_until:
            self.stats["418"] += 1
            left = math.ceil(self._blocked_until - mono)  # 30.0 s left reads 30, 29.5 reads 30
            headers = {"Retry-After": str(left)}
            return 0, self._plain(418, f"blocked for {left} seconds", headers, group=group)
        if self.limit_per_s is None:
            return 9, None
        sent = self._sent.setdefault(group, deque())
        while sent and sent[0] <= mono - 1.0:
            sent.popleft()
        if len(sent) >= self.limit_per_s:
            self.stats["429"] += 1
            self.stats[f"429_{group}"] += 1
            self._consecutive_429 += 1
            if self.block_after and self._consecutive_429 >= self.block_after:
                self._blocked_until = mono + self.block_s
                self._consecutive_429 = 0
            return 0, self._plain(429, "Too many API requests.", {}, group=group)
        sent.append(mono)
        self._consecutive_429 = 0
        return self.limit_per_s - len(sent), None

    def _plain(
        self,
        status: int,
        text: str,
        headers: dict[str, str],
        left: int = 0,
        group: str = "candles",
    ) -> web.Response:
        headers = {"Remaining-Req": f"group={GROUPS[group]}; min=600; sec={left}", **headers}
        return web.Response(status=status, text=text, headers=headers)

    @staticmethod
    def _json(body: str, left: int, status: int = 200, group: str = "candles") -> web.Response:
        return web.Response(
            status=status,
            text=body,
            content_type="application/json",
            headers={"Remaining-Req": f"group={GROUPS[group]}; min=600; sec={left}"},
        )

    @staticmethod
    def _error(
        status: int, name: str, message: str, left: int, group: str = "candles"
    ) -> web.Response:
        body = json.dumps({"error": {"name": name, "message": message}})
        return FakeUpbit._json(body, left, status, group)

    # ------------------------------------------------------------ handlers
    async def candles(self, request: web.Request) -> web.StreamResponse:
        self.stats["requests"] += 1
        self.requests.append(dict(request.query))
        left, refused = self._admit()
        if refused is not None:
            return refused
        market = request.query.get("market", "")
        if request.match_info["unit"] != "1":
            return self._error(400, "validation_error", "only 1-minute candles are served", left)
        try:
            count = int(request.query.get("count", "1"))
            to = parse_to(request.query["to"]) if "to" in request.query else None
        except ValueError:
            return self._error(400, "validation_error", "invalid count or to", left)
        self.max_count_seen = max(self.max_count_seen, count)
        if count < 1 or (count > 200 and self.strict_count):
            return self._error(400, "validation_error", "count must be 1..200", left)
        if market not in self.series:
            return self._error(404, "not_found_market", "Code not found", left)
        fault = await self._fault(market, request, left)
        if fault is not None:
            return fault
        items = self.select(market, to, min(count, 200))
        return self._json("[" + ",".join(self._candle_json(r) for r in items) + "]", left)

    async def _fault(
        self, market: str, request: web.Request, left: int
    ) -> web.StreamResponse | None:
        fault = self.faults.get(market)
        if fault is None:
            return None
        if fault.times is not None:
            fault.times -= 1
            if fault.times <= 0:
                del self.faults[market]
        self.stats[f"fault_{fault.kind}"] += 1
        if fault.kind == "500":
            return self._plain(500, "Internal Server Error", {}, left)
        if fault.kind == "garbage":
            return self._json('[{"market": "' + market + '", "opening_pr', left)
        if fault.kind == "nan":
            return self._json(
                f'[{{"market":"{market}","candle_date_time_utc":"2018-01-01T00:00:00",'
                '"opening_price":NaN,"high_price":1.0,"low_price":-1.0,"trade_price":1.0,'
                '"candle_acc_trade_volume":-5.0,"candle_acc_trade_price":1.0,"unit":1}]',
                left,
            )
        if fault.kind == "reset":
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)
        # "stall": hold the request past any sane client timeout.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.release.wait(), timeout=self.stall_s)
        return self._plain(503, "stalled", {}, left)

    def select(self, market: str, to: datetime | None, count: int) -> list[CandleRow]:
        """Up to ``count`` candles before ``to`` (exclusive) and not after now, newest first."""
        series = self.series[market]
        now = self.now()
        forming_start = now.replace(second=0, microsecond=0)
        limit = forming_start + timedelta(minutes=1)  # nothing from the future
        end = min(to, limit) if to is not None else limit
        stop = bisect.bisect_left(series.starts, end)
        picked = series.rows[max(0, stop - count) : stop][::-1]
        if picked and picked[0].ts == forming_start:
            picked[0] = self._partial(picked[0], now)
        return picked

    @staticmethod
    def _partial(row: CandleRow, now: datetime) -> CandleRow:
        """The minute so far: only the opening trade's price, a share of the volume."""
        share = Decimal(max(1, now.second)) / Decimal(60)
        o = row.open_price
        value = None if row.value_krw is None else row.value_krw * share
        return row._replace(
            high_price=o, low_price=o, close_price=o, volume=row.volume * share, value_krw=value
        )

    def _candle_json(self, r: CandleRow) -> str:
        last_tick = int((r.ts + timedelta(seconds=59)).timestamp() * 1000)
        value = _num(r.value_krw) if r.value_krw is not None else "0.0"
        return (
            f'{{"market":"{r.symbol}","candle_date_time_utc":"{_wire_time(r.ts)}",'
            f'"candle_date_time_kst":"{_wire_time(r.ts + KST)}",'
            f'"opening_price":{_num(r.open_price)},"high_price":{_num(r.high_price)},'
            f'"low_price":{_num(r.low_price)},"trade_price":{_num(r.close_price)},'
            f'"timestamp":{last_tick},"candle_acc_trade_price":{value},'
            f'"candle_acc_trade_volume":{_num(r.volume)},"unit":1}}'
        )

    async def markets(self, request: web.Request) -> web.Response:
        self.stats["market_requests"] += 1
        left, refused = self._admit("markets")
        if refused is not None:
            return refused
        details = request.query.get("is_details", request.query.get("isDetails")) == "true"
        items = []
        for market in sorted(set(self.series) | set(self.extra_markets)):
            base = market.split("-", 1)[-1]
            item: dict[str, Any] = {
                "market": market,
                "korean_name": base,
                "english_name": NAMES.get(base, base),
            }
            if details:
                item["market_event"] = {"warning": False, "caution": {}}
            items.append(item)
        return self._json(json.dumps(items, ensure_ascii=False), left, group="markets")

    async def ticker(self, request: web.Request) -> web.Response:
        self.stats["ticker_requests"] += 1
        left, refused = self._admit("ticker")
        if refused is not None:
            return refused
        markets = [m for m in request.query.get("markets", "").split(",") if m]
        if not markets or any(m not in self.series for m in markets):
            return self._error(404, "not_found_market", "Code not found", left, "ticker")
        items = [self._ticker(m) for m in markets]
        body = json.dumps([i for i in items if i is not None], default=float)
        return self._json(body, left, group="ticker")

    def _ticker(self, market: str) -> dict[str, Any] | None:
        """Snapshot at the fake's now: the day runs from 00:00 UTC, as Upbit's ticker does."""
        now = self.now()
        recent = self.select(market, None, 200)
        if not recent:
            return None
        last = recent[0]
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        series = self.series[market]
        lo_i = bisect.bisect_left(series.starts, midnight)
        hi_i = bisect.bisect_right(series.starts, now)
        day = series.rows[lo_i:hi_i] or [last]
        prev = series.rows[lo_i - 1].close_price if lo_i > 0 else day[0].open_price
        change = last.close_price - prev
        tick = now.astimezone(UTC)
        return {
            "market": market,
            "trade_date": tick.strftime("%Y%m%d"),
            "trade_time": tick.strftime("%H%M%S"),
            "trade_date_kst": (tick + KST).strftime("%Y%m%d"),
            "trade_time_kst": (tick + KST).strftime("%H%M%S"),
            "trade_timestamp": int(tick.timestamp() * 1000),
            "opening_price": day[0].open_price,
            "high_price": max(r.high_price for r in day),
            "low_price": min(r.low_price for r in day),
            "trade_price": last.close_price,
            "prev_closing_price": prev,
            "change": "RISE" if change > 0 else "FALL" if change < 0 else "EVEN",
            "change_price": abs(change),
            "change_rate": abs(change) / prev,
            "signed_change_price": change,
            "signed_change_rate": change / prev,
            "trade_volume": last.volume,
            "acc_trade_price": sum((r.value_krw or Decimal(0)) for r in day),
            "acc_trade_volume": sum(r.volume for r in day),
            "timestamp": int(tick.timestamp() * 1000),
        }

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/candles/minutes/{unit}", self.candles)
        app.router.add_get("/v1/market/all", self.markets)
        app.router.add_get("/v1/ticker", self.ticker)
        app.router.add_get("/websocket/v1", self.ws.handler)
        app.router.add_get("/_stats", self.stats_page)
        return app

    async def stats_page(self, request: web.Request) -> web.Response:
        return web.json_response(dict(self.stats))


async def start_fake_upbit(
    fake: FakeUpbit | None = None, host: str = "127.0.0.1", port: int = 0
) -> tuple[FakeUpbit, web.AppRunner, str]:
    """Start ``fake`` on a local port; returns (fake, runner, base_url)."""
    fake = fake or FakeUpbit()
    runner = web.AppRunner(fake.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    sockets = site._server.sockets  # type: ignore[union-attr]
    bound = sockets[0].getsockname()[1]
    return fake, runner, f"http://{host}:{bound}"


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Local Upbit quotation fake (REST + WebSocket)")
    parser.add_argument("--csv", action="append", required=True, help="FILE or FILE:MARKET")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--now", help="the fake's fixed clock (ISO-8601, UTC)")
    parser.add_argument("--limit-per-s", type=int, default=10)
    parser.add_argument("--block-after", type=int, default=None)
    parser.add_argument(
        "--live",
        action="store_true",
        help="real clock; the candles are shifted so that they happen now",
    )
    parser.add_argument(
        "--history-min",
        type=int,
        default=2880,
        help="live: minutes of each market that lie in the past at start-up",
    )
    parser.add_argument(
        "--markets",
        type=int,
        default=None,
        help="serve this many markets, cycling through the CSV files (copies renamed)",
    )
    parser.add_argument("--trades-per-minute", type=int, default=4, choices=(1, 2, 3, 4))
    parser.add_argument("--ws-text-frames", action="store_true")
    parser.add_argument("--ws-status-every", type=float, default=None)
    parser.add_argument("--ws-drop-after", type=float, default=None)
    return parser.parse_args(argv)


def market_name(symbol: str, copy: int) -> str:
    """KRW-BTC stays; BTCUSDT becomes KRW-BTC; the k-th further copy gets a suffix k+1."""
    base = symbol.removeprefix("KRW-").removesuffix("USDT").upper()
    return f"KRW-{base}" if copy == 0 else f"KRW-{base}{copy + 1}"


def load_markets(
    fake: FakeUpbit,
    specs: list[str],
    *,
    markets: int | None = None,
    live_history_min: int | None = None,
    now: datetime | None = None,
) -> list[str]:
    """Serve ``markets`` markets from the CSV ``specs`` (FILE or FILE:MARKET), cycling through
    them; copies of one file start at different minutes so that the markets differ.

    With ``live_history_min``, each market's candles are moved by whole minutes so that
    its minute number ``live_history_min`` (+ 97 per copy) is the current minute of ``now``:
    what lies before is history for REST, what follows happens in real time."""
    files = []
    for spec in specs:
        path, _, market = spec.partition(":")
        rows = read_csv(Path(path), market or None)
        files.append((rows[0].symbol if rows else market, rows))
    wanted = len(files) if markets is None else markets
    names: list[str] = []
    for k in range(wanted):
        symbol, rows = files[k % len(files)]
        copy = k // len(files)
        name, bump = market_name(symbol, copy), copy
        while name in names or name in fake.series:  # two files of one coin: next suffix
            bump += 1
            name = market_name(symbol, bump)
        if live_history_min is None:
            fake.add_rows(shift_rows(rows, timedelta(0), name))
        else:
            anchor = min(live_history_min + 97 * copy, len(rows) - 1)
            current = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
            fake.add_rows(shift_rows(rows, current - rows[anchor].ts, name))
        names.append(name)
    return names


async def _serve(ns: argparse.Namespace) -> None:
    fake = FakeUpbit(
        limit_per_s=ns.limit_per_s or None,
        block_after=ns.block_after,
        clock=SystemClock() if ns.live else None,
    )
    fake.ws.trades_per_minute = ns.trades_per_minute
    fake.ws.text_frames = ns.ws_text_frames
    fake.ws.status_every_s = ns.ws_status_every
    fake.ws.drop_after_s = ns.ws_drop_after
    names = load_markets(
        fake, ns.csv, markets=ns.markets, live_history_min=ns.history_min if ns.live else None
    )
    if ns.now:
        fake.set_now(parse_to(ns.now))
    _, runner, url = await start_fake_upbit(fake, ns.host, ns.port)
    shown = names if len(names) <= 10 else [*names[:10], f"... {len(names)} markets"]
    print(f"fake upbit serving {shown} at {url}, now={fake.now()}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(_args(argv)))


if __name__ == "__main__":
    main()


@contextlib.asynccontextmanager
async def running_fake_upbit(fake: FakeUpbit | None = None) -> AsyncIterator[tuple[FakeUpbit, str]]:
    """``async with running_fake_upbit(FakeUpbit(...)) as (fake, url)``: start, then clean up."""
    fake, runner, url = await start_fake_upbit(fake)
    try:
        yield fake, url
    finally:
        fake.release.set()
        await runner.cleanup()
