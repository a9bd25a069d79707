"""The candle WebSocket of the Upbit fake (EXTERNAL_APIS §1.8–§1.13), served next to REST.

``GET /websocket/v1`` upgrades; the server then says nothing until a request arrives:

* a request is one JSON array ``[{"ticket"}, {"type", "codes", "is_only_*"}, {"format"}]``,
  checked in the documented order (WRONG_FORMAT, NO_TICKET, NO_TYPE, NO_CODES,
  INVALID_PARAM) with the documented names and messages; the connection stays open after
  an error; a new request replaces the subscription and sends a new snapshot;
  ``LIST_SUBSCRIPTIONS`` is answered;
* each stored minute is replayed as trades (open → low → high → close for a rising minute,
  open → high → low → close for a falling one; volume and value accumulate) from the
  minute's first second to its last few, shifted per market; a 1 s cycle pushes every
  candle a trade changed since the last cycle, and the last message of a minute carries
  exactly the stored row; minutes without a row send nothing; ``timestamp`` is the
  trade's time;
* binary frames of compact UTF-8 JSON (``text_frames`` for text), DEFAULT / SIMPLE objects
  per candle or JSON_LIST / SIMPLE_LIST arrays per cycle;
* ping frames get a pong, a text ``PING`` gets ``{"status":"UP"}`` once (``status_every_s``
  repeats it); 120 s without a frame either way drops the TCP connection without a close
  frame; more than 5 handshakes in a sliding second get HTTP 429; requests past 5/s or
  100/min on a connection are counted;
* faults: ``drop_after_s`` (every connection dropped that long after it opened),
  ``drop_all()``, ``stall`` (silent, pongs withheld), ``garbage(n)`` (n malformed frames).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from zlib import crc32

from aiohttp import WSMsgType, web

from coinpilot.adapters.marketdata import CandleRow

if TYPE_CHECKING:
    from tests.fakes.upbit import FakeUpbit

KST = timedelta(hours=9)
MINUTE = timedelta(minutes=1)
CANDLE_TYPES = {f"candle.{u}" for u in ("1s", "1m", "3m", "5m", "10m", "15m", "30m", "60m", "240m")}
OTHER_TYPES = {"ticker", "trade", "orderbook"}
FORMATS = {"DEFAULT", "SIMPLE", "JSON_LIST", "SIMPLE_LIST"}
ERRORS = {
    "WRONG_FORMAT": "Format 이 맞지 않습니다.",
    "NO_TICKET": "티켓이 존재하지 않거나, 유효하지 않습니다.",
    "NO_TYPE": "type 필드가 존재하지 않습니다.",
    "NO_CODES": "codes 필드가 존재하지 않습니다.",
    "INVALID_PARAM": "codes 필드가 비어 있습니다.",
}
SIMPLE_KEYS = {
    "type": "ty",
    "code": "cd",
    "candle_date_time_utc": "cdttmu",
    "candle_date_time_kst": "cdttmk",
    "opening_price": "op",
    "high_price": "hp",
    "low_price": "lp",
    "trade_price": "tp",
    "candle_acc_trade_volume": "catv",
    "candle_acc_trade_price": "catp",
    "timestamp": "tms",
    "stream_type": "st",
}
GARBAGE = b'{"ty":"candle.1m","cd":"KRW-BTC","cdttmu":"2026-11-29T2'


class RequestError(Exception):
    def __init__(self, name: str, message: str | None = None) -> None:
        super().__init__(name)
        self.name = name
        self.message = message or ERRORS[name]


@dataclass(frozen=True)
class Subscription:
    ticket: str
    types: tuple[tuple[str, tuple[str, ...]], ...]
    fmt: str
    only_snapshot: bool
    only_realtime: bool

    def candle_codes(self) -> list[str]:
        return [code for kind, codes in self.types if kind == "candle.1m" for code in codes]


def _flag(obj: dict[str, Any], snake: str, camel: str) -> bool:
    return bool(obj.get(snake, obj.get(camel, False)))


def parse_request(text: str) -> Subscription | str:
    """A subscription, or ``"LIST_SUBSCRIPTIONS"``; ``RequestError`` in the documented order."""
    try:
        items = json.loads(text)
    except ValueError:
        raise RequestError("WRONG_FORMAT") from None
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        raise RequestError("WRONG_FORMAT")
    ticket = next((i["ticket"] for i in items if "ticket" in i), None)
    if not isinstance(ticket, str) or not ticket:
        raise RequestError("NO_TICKET")
    if any(i.get("method") == "LIST_SUBSCRIPTIONS" for i in items):
        return "LIST_SUBSCRIPTIONS"
    typed = [i for i in items if "type" in i]
    if not typed:
        raise RequestError("NO_TYPE")
    types = []
    for obj in typed:
        if "codes" not in obj:
            raise RequestError("NO_CODES")
        codes = obj["codes"]
        if not isinstance(codes, list) or not codes:
            raise RequestError("INVALID_PARAM")
        kind = obj["type"]
        if kind not in CANDLE_TYPES | OTHER_TYPES:
            raise RequestError("INVALID_PARAM", f"{kind}은 지원하지 않는 타입입니다.")
        types.append((str(kind), tuple(str(c) for c in codes)))
    fmt = next((i["format"] for i in items if "format" in i), "DEFAULT")
    if fmt not in FORMATS:
        raise RequestError("INVALID_PARAM", f"{fmt}은 지원하지 않는 포맷입니다.")
    first = typed[0]
    return Subscription(
        ticket,
        tuple(types),
        str(fmt),
        _flag(first, "is_only_snapshot", "isOnlySnapshot"),
        _flag(first, "is_only_realtime", "isOnlyRealtime"),
    )


# ---------------------------------------------------------------- minutes replayed as trades


def trade_times(minute: datetime, code: str, trades: int) -> list[datetime]:
    """When the minute's trades happen: the opening trade in the minute's first second or
    so (a liquid market trades at once), the closing one near its end, shifted 0–0.9 s
    per market so markets do not all move on the same instant."""
    shift = crc32(code.encode()) % 10 / 10
    if trades == 1:
        seconds = [57.2]
    else:
        seconds = [0.2 + j * 57 / (trades - 1) for j in range(trades)]
    return [minute + timedelta(seconds=s + shift) for s in seconds]


def candle_after(row: CandleRow, trades: int, j: int) -> dict[str, Any]:
    """The candle as the stream shows it after trade ``j`` (the last one is the row itself)."""
    if j >= trades - 1:
        o, h, lo, c = row.open_price, row.high_price, row.low_price, row.close_price
        volume, value = row.volume, row.value_krw or Decimal(0)
    else:
        rising = row.close_price >= row.open_price
        path = [row.open_price] + (
            [row.low_price, row.high_price] if rising else [row.high_price, row.low_price]
        )
        seen = path[: min(j + 1, len(path))]
        o, h, lo, c = row.open_price, max(seen), min(seen), seen[-1]
        share = Decimal(j + 1) / Decimal(trades)
        volume, value = row.volume * share, (row.value_krw or Decimal(0)) * share
    return {
        "opening_price": o,
        "high_price": h,
        "low_price": lo,
        "trade_price": c,
        "candle_acc_trade_volume": volume,
        "candle_acc_trade_price": value,
    }


def _num(value: Decimal) -> str:
    text = format(value.normalize(), "f") if value == value.to_integral() else str(value)
    return text if any(ch in text for ch in ".eE") else text + ".0"


def candle_message(
    code: str, row: CandleRow, values: dict[str, Any], when: datetime, stream: str, simple: bool
) -> str:
    fields: list[tuple[str, str]] = [
        ("type", '"candle.1m"'),
        ("code", f'"{code}"'),
        ("candle_date_time_utc", f'"{row.ts:%Y-%m-%dT%H:%M:%S}"'),
        ("candle_date_time_kst", f'"{row.ts + KST:%Y-%m-%dT%H:%M:%S}"'),
    ]
    fields += [(k, _num(v)) for k, v in values.items()]
    fields += [
        ("timestamp", str(int(when.timestamp() * 1000))),
        ("stream_type", f'"{stream}"'),
    ]
    key = (lambda k: SIMPLE_KEYS[k]) if simple else (lambda k: k)
    return "{" + ",".join(f'"{key(k)}":{v}' for k, v in fields) + "}"


# ---------------------------------------------------------------- connections


@dataclass(eq=False)
class Connection:
    ws: web.WebSocketResponse
    request: web.Request
    opened: float = field(default_factory=time.monotonic)
    last_frame: float = field(default_factory=time.monotonic)
    subscription: Subscription | None = None
    last_tick: datetime | None = None
    requests: deque[float] = field(default_factory=deque)
    status_task: asyncio.Task[None] | None = None

    def drop(self) -> None:
        """Lose the TCP connection without a close frame, as the idle timeout does."""
        if self.request.transport is not None:
            self.request.transport.abort()


class CandleStream:
    """The WebSocket side of one FakeUpbit; shares its series, clock and stats."""

    def __init__(self, fake: FakeUpbit) -> None:
        self.fake = fake
        self.trades_per_minute = 4
        self.text_frames = False
        self.idle_timeout_s = 120.0
        self.status_every_s: float | None = None
        self.handshakes_per_s = 5
        self.drop_after_s: float | None = None
        self.stall = False
        self.pong_in_stall = False
        self._garbage = 0
        self._handshakes: deque[float] = deque()
        self.connections: set[Connection] = set()

    # ------------------------------------------------------------ faults
    def drop_all(self) -> int:
        dropped = len(self.connections)
        for conn in list(self.connections):
            conn.drop()
        self.fake.stats["ws_dropped_by_fault"] += dropped
        return dropped

    def garbage(self, frames: int = 1) -> None:
        self._garbage += frames

    # ------------------------------------------------------------ frames
    async def _send(self, conn: Connection, text: str) -> None:
        if self.text_frames:
            await conn.ws.send_str(text)
        else:
            await conn.ws.send_bytes(text.encode())
        conn.last_frame = time.monotonic()
        self.fake.stats["ws_frames_sent"] += 1

    async def _error(self, conn: Connection, exc: RequestError) -> None:
        self.fake.stats[f"ws_error_{exc.name}"] += 1
        body = {"error": {"name": exc.name, "message": exc.message}}
        await self._send(conn, json.dumps(body, ensure_ascii=False, separators=(",", ":")))

    # ------------------------------------------------------------ candles
    def _candles(
        self, codes: Sequence[str], since: datetime | None, now: datetime
    ) -> list[tuple[str, CandleRow, dict[str, Any], datetime]]:
        """Per code and minute, the candle after the last trade in (since, now]."""
        out = []
        n = self.trades_per_minute
        for code in codes:
            series = self.fake.series.get(code)
            if series is None:
                continue
            first = now.replace(second=0, microsecond=0)
            start = first - 2 * MINUTE if since is None else since.replace(second=0, microsecond=0)
            minute = max(start, first - 3 * MINUTE)  # a clock jump replays at most 3 minutes
            while minute <= first:
                row = series.at(minute)
                if row is not None:
                    times = trade_times(minute, code, n)
                    done = [
                        j for j, t in enumerate(times) if t <= now and (since is None or t > since)
                    ]
                    if done:
                        out.append((code, row, candle_after(row, n, done[-1]), times[done[-1]]))
                minute += MINUTE
        return out

    def _snapshot(
        self, code: str, now: datetime
    ) -> tuple[CandleRow, dict[str, Any], datetime] | None:
        """The forming candle so far, or when the minute has no trade yet the latest earlier one."""
        series = self.fake.series.get(code)
        if series is None:
            return None
        minute = now.replace(second=0, microsecond=0)
        row = series.at(minute)
        n = self.trades_per_minute
        if row is not None:
            times = trade_times(minute, code, n)
            done = [j for j, t in enumerate(times) if t <= now]
            if done:
                return row, candle_after(row, n, done[-1]), times[done[-1]]
        before = series.before(minute)
        if before is None:
            return None
        return before, candle_after(before, n, n - 1), trade_times(before.ts, code, n)[-1]

    async def _push(
        self,
        conn: Connection,
        items: list[tuple[str, CandleRow, dict[str, Any], datetime]],
        stream: str,
    ) -> None:
        sub = conn.subscription
        if sub is None or not items:
            return
        simple = sub.fmt.startswith("SIMPLE")
        messages = [candle_message(c, r, v, t, stream, simple) for c, r, v, t in items]
        self.fake.stats["ws_candles_sent"] += len(messages)
        if sub.fmt.endswith("_LIST"):
            await self._send(conn, "[" + ",".join(messages) + "]")
        else:
            for message in messages:
                await self._send(conn, message)

    async def _subscribe(self, conn: Connection, sub: Subscription) -> None:
        conn.subscription = sub
        now = self.fake.now()
        conn.last_tick = now
        self.fake.ws_subscriptions.append(sub)
        if sub.only_realtime:
            return
        snaps = []
        for code in sub.candle_codes():
            snap = self._snapshot(code, now)
            if snap is not None:
                snaps.append((code, *snap))
        await self._push(conn, snaps, "SNAPSHOT")

    async def _tick(self, conn: Connection) -> None:
        sub = conn.subscription
        if sub is None or sub.only_snapshot or self.stall:
            return
        if self._garbage > 0:
            self._garbage -= 1
            self.fake.stats["ws_garbage_sent"] += 1
            await conn.ws.send_bytes(GARBAGE)
        now = self.fake.now()
        items = self._candles(sub.candle_codes(), conn.last_tick, now)
        conn.last_tick = now
        await self._push(conn, items, "REALTIME")

    # ------------------------------------------------------------ the connection
    def _admit_handshake(self) -> bool:
        mono = time.monotonic()
        while self._handshakes and self._handshakes[0] <= mono - 1.0:
            self._handshakes.popleft()
        if len(self._handshakes) >= self.handshakes_per_s:
            return False
        self._handshakes.append(mono)
        return True

    async def handler(self, request: web.Request) -> web.StreamResponse:
        if not self._admit_handshake():
            self.fake.stats["ws_handshakes_refused"] += 1
            return web.Response(status=429, text="Too many API requests.")
        ws = web.WebSocketResponse(autoping=False, max_msg_size=1 << 16)
        await ws.prepare(request)
        conn = Connection(ws, request)
        self.connections.add(conn)
        self.fake.stats["ws_connections"] += 1
        pusher = asyncio.create_task(self._pusher(conn))
        try:
            await self._receive(conn)
        finally:
            pusher.cancel()
            if conn.status_task is not None:
                conn.status_task.cancel()
            self.connections.discard(conn)
            with contextlib.suppress(asyncio.CancelledError):
                await pusher
        return ws

    async def _receive(self, conn: Connection) -> None:
        async for msg in conn.ws:
            conn.last_frame = time.monotonic()
            if msg.type == WSMsgType.PING:
                self.fake.stats["ws_pings"] += 1
                if not self.stall or self.pong_in_stall:
                    await conn.ws.pong(msg.data)
            elif msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                data = (
                    msg.data if isinstance(msg.data, str) else msg.data.decode("utf-8", "replace")
                )
                await self._request(conn, data)

    async def _request(self, conn: Connection, text: str) -> None:
        if text.strip() == "PING":
            self.fake.stats["ws_text_pings"] += 1
            if not self.stall:
                await self._send(conn, '{"status":"UP"}')
                if self.status_every_s and conn.status_task is None:
                    conn.status_task = asyncio.create_task(self._status_series(conn))
            return
        self._count_request(conn)
        try:
            parsed = parse_request(text)
        except RequestError as exc:
            await self._error(conn, exc)
            return
        if parsed == "LIST_SUBSCRIPTIONS":
            result = []
            if conn.subscription is not None:
                result = [{"type": t, "codes": list(c)} for t, c in conn.subscription.types]
            ticket = conn.subscription.ticket if conn.subscription else None
            body = {"method": "LIST_SUBSCRIPTIONS", "result": result, "ticket": ticket}
            await self._send(conn, json.dumps(body, separators=(",", ":")))
            return
        assert isinstance(parsed, Subscription)
        self.fake.stats["ws_subscribe_requests"] += 1
        await self._subscribe(conn, parsed)

    def _count_request(self, conn: Connection) -> None:
        mono = time.monotonic()
        conn.requests.append(mono)
        while conn.requests and conn.requests[0] <= mono - 60.0:
            conn.requests.popleft()
        last_second = sum(1 for t in conn.requests if t > mono - 1.0)
        if last_second > 5 or len(conn.requests) > 100:
            self.fake.stats["ws_requests_over_limit"] += 1

    async def _status_series(self, conn: Connection) -> None:
        assert self.status_every_s is not None
        while True:
            await asyncio.sleep(self.status_every_s)
            if not self.stall:
                await self._send(conn, '{"status":"UP"}')

    def _to_next_second(self) -> float:
        """Real seconds to the fake clock's next whole second (a fast test clock has a speed)."""
        now = self.fake.now()
        speed = float(getattr(self.fake.clock, "speed", 1.0))
        return (1.0 - now.microsecond / 1e6) / speed + 0.001

    async def _pusher(self, conn: Connection) -> None:
        """The 1 s cycle, aligned to whole seconds; also the idle timeout and the drop fault."""
        with contextlib.suppress(ConnectionError, RuntimeError):
            while not conn.ws.closed:
                await asyncio.sleep(self._to_next_second())
                mono = time.monotonic()
                if self.drop_after_s is not None and mono - conn.opened >= self.drop_after_s:
                    self.fake.stats["ws_dropped_by_fault"] += 1
                    conn.drop()
                    return
                if mono - conn.last_frame >= self.idle_timeout_s:
                    self.fake.stats["ws_idle_drops"] += 1
                    conn.drop()
                    return
                await self._tick(conn)
