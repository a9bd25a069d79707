"""Upbit quotation client: minute candles and the market list, on the app's one HTTP session.

Three layers of protection against Upbit's per-second limit and bad payloads:

* a client-side budget (at most ``requests_per_second`` sends in any window slightly longer
  than a second, so network jitter cannot squeeze an 11th request into Upbit's second),
  tightened further whenever ``Remaining-Req`` says ``sec=0``;
* 429 → wait and retry; 418 → no calls at all until the stated block time has passed;
  timeouts, connection errors and 5xx → bounded retries with jittered exponential backoff;
* every candle is validated at the edge: a malformed or impossible candle is counted by
  reason and dropped, never stored.

All waiting goes through the injected clock, so a simulated clock replays without sleeping.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import aiohttp
import structlog

from coinpilot.adapters.marketdata import INTERVAL, CandleRow
from coinpilot.clock import Clock
from coinpilot.errors import TransientError
from coinpilot.observability import Metrics

log = structlog.get_logger(__name__)

MAX_COUNT = 200
# Sends are spread over this window instead of exactly 1 s: the server counts arrivals.
_WINDOW_S = 1.05
_DEFAULT_BLOCK_S = 60.0
_POLL_S = 0.01
_MIN_SLEEP_S = 1e-6
_REMAINING = re.compile(r"group=([a-z-]+);\s*min=(\d+);\s*sec=(\d+)")
_SECONDS = re.compile(r"(\d+(?:\.\d+)?)\s*(?:s\b|sec|second)", re.IGNORECASE)


class UpbitError(TransientError):
    """A failed Upbit call; ``kind`` is the metric label (timeout, http_5xx, malformed, ...)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class UpbitBlocked(UpbitError):
    """Upbit answered 418: no requests until ``until`` (monotonic seconds of the clock)."""

    def __init__(self, until: float, message: str) -> None:
        super().__init__("blocked", message)
        self.until = until


# ---------------------------------------------------------------- pure parsing (edge checks)


def parse_remaining_req(header: str | None) -> tuple[str, int] | None:
    """``group=candles; min=600; sec=9`` → ("candles", 9); None when absent or unreadable."""
    if not header:
        return None
    match = _REMAINING.search(header)
    return (match.group(1), int(match.group(3))) if match else None


def parse_block_seconds(retry_after: str | None, body: str) -> float:
    """The block time a 418 states (Retry-After header or a number of seconds in the body)."""
    for text in (retry_after or "", body):
        value = text.strip()
        try:
            return max(1.0, float(value))
        except ValueError:
            pass
        match = _SECONDS.search(value)
        if match:
            return max(1.0, float(match.group(1)))
    return _DEFAULT_BLOCK_S


def format_to(when: datetime) -> str:
    """``to`` with an explicit UTC zone (a zone-less value means KST on look-alike APIs)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_PRICE_FIELDS = ("opening_price", "high_price", "low_price", "trade_price")


def _number(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise ValueError("not a number")
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    if not number.is_finite():
        raise ValueError("not finite")
    return number


def parse_candle(item: Any, market: str) -> CandleRow:
    """One candle object → a market_data row; ``ValueError(reason)`` when it must be rejected."""
    if not isinstance(item, dict):
        raise ValueError("not_an_object")
    if item.get("market") != market:
        raise ValueError("wrong_market")
    try:
        start = datetime.fromisoformat(str(item["candle_date_time_utc"]))
        o, h, lo, c = (_number(item[f]) for f in _PRICE_FIELDS)
        volume = _number(item["candle_acc_trade_volume"])
        value = item.get("candle_acc_trade_price")
        value_krw = None if value is None else _number(value)
    except (KeyError, ValueError, TypeError, InvalidOperation) as exc:
        raise ValueError("malformed_field") from exc
    if min(o, h, lo, c) <= 0:
        raise ValueError("non_positive_price")
    if lo > h or not (lo <= o <= h and lo <= c <= h):
        raise ValueError("inconsistent_range")
    if volume < 0 or (value_krw is not None and value_krw < 0):
        raise ValueError("negative_volume")
    if start.second or start.microsecond:
        raise ValueError("off_grid_time")
    start = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
    return CandleRow(market, INTERVAL, start, o, h, lo, c, volume, value_krw)


def parse_candles(payload: Any, market: str) -> tuple[list[CandleRow], dict[str, int]]:
    """Validated rows oldest first, and the number rejected per reason."""
    if not isinstance(payload, list):
        raise UpbitError("malformed", f"candles for {market}: expected a JSON array")
    rows: list[CandleRow] = []
    rejected: dict[str, int] = {}
    for item in payload:
        try:
            rows.append(parse_candle(item, market))
        except ValueError as exc:
            reason = str(exc)
            rejected[reason] = rejected.get(reason, 0) + 1
    rows.sort(key=lambda r: r.ts)
    return rows, rejected


def decode_json(text: str) -> Any:
    """JSON with decimals kept exact (prices never pass through binary floats)."""
    try:
        return json.loads(text, parse_float=Decimal)
    except ValueError as exc:
        raise UpbitError("malformed", "response is not valid JSON") from exc


# ---------------------------------------------------------------- request budget


class RequestBudget:
    """At most ``per_second`` requests per window; ``None`` disables pacing (replays) but a
    429 or an unexplained ``sec=0`` still holds the next send for a window.

    A slot is counted from its send until a window after its *response*: the exchange counts
    requests when they arrive, which is after we send and before we hear back, so counting
    from the response keeps any ``per_second + 1`` arrivals at least a window apart however
    late a request was delivered (a loaded machine or network cannot cause a 429).

    Each slot stores its expiry time (infinite while in flight), and "still counted" and
    "time left" are both read from that one number: a slot counted as active always has
    time left, so a full budget never grants, and a wait is never rounded down to nothing.
    """

    def __init__(self, clock: Clock, per_second: int | None) -> None:
        self.clock = clock
        self.per_second = per_second
        self._slots: list[list[float]] = []  # [expires_at]; inf while the request is in flight
        self._hold_until = 0.0
        self._lock = asyncio.Lock()

    def hold(self, seconds: float) -> None:
        self._hold_until = max(self._hold_until, self.clock.monotonic() + seconds)

    def _active(self, now: float) -> list[list[float]]:
        self._slots = [s for s in self._slots if s[0] > now]
        return self._slots

    def observe(self, remaining: int) -> None:
        """``sec=0`` that our own sends do not explain means someone else shares the budget."""
        if remaining > 0:
            return
        ours = len(self._active(self.clock.monotonic()))
        if self.per_second is None or ours < self.per_second:
            self.hold(_WINDOW_S)

    def done(self, slot: list[float] | None) -> None:
        """The response arrived: the slot now expires a window from here."""
        if slot is not None:
            slot[0] = self.clock.monotonic() + _WINDOW_S

    async def acquire(self) -> list[float] | None:
        if self.per_second is None and self._hold_until <= self.clock.monotonic():
            return None
        async with self._lock:
            while True:
                now = self.clock.monotonic()
                wait = self._hold_until - now
                if self.per_second is not None:
                    active = self._active(now)
                    if len(active) >= self.per_second:
                        soonest = min(s[0] for s in active)
                        # All in flight: poll briefly until a response frees a slot.
                        wait = max(wait, soonest - now if soonest != math.inf else _POLL_S)
                if wait <= 0:
                    if self.per_second is None:
                        return None
                    slot = [math.inf]
                    self._slots.append(slot)
                    return slot
                # A clock that counts whole microseconds must move, or this loop would spin.
                await self.clock.sleep(max(wait, _MIN_SLEEP_S))


# ---------------------------------------------------------------- client


@dataclass(frozen=True)
class Page:
    rows: list[CandleRow]
    received: int


class UpbitClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        *,
        clock: Clock,
        metrics: Metrics,
        timeout_s: float = 5.0,
        requests_per_second: int | None = 10,
        max_retries: int = 3,
        retry_base_s: float = 0.5,
        rng: random.Random | None = None,
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.clock = clock
        self.metrics = metrics
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.budget = RequestBudget(clock, requests_per_second)
        self.max_retries = max_retries
        self.retry_base_s = retry_base_s
        self.rng = rng or random.Random()
        self.blocked_until = 0.0
        self.requests = 0

    async def candles(self, market: str, *, to: datetime | None, count: int) -> Page:
        """One page of 1-minute candles strictly before ``to``, validated, oldest first."""
        if not 1 <= count <= MAX_COUNT:
            raise ValueError(f"count must be 1..{MAX_COUNT}")
        params = {"market": market, "count": str(count)}
        if to is not None:
            params["to"] = format_to(to)
        payload = await self._get_json("/v1/candles/minutes/1", params)
        try:
            rows, rejected = parse_candles(payload, market)
        except UpbitError as exc:
            self.metrics.dependency_errors.labels(dependency="upbit", kind=exc.kind).inc()
            raise
        for reason, n in rejected.items():
            self.metrics.candles_rejected.labels(reason=reason).inc(n)
            log.warning("candles_rejected", symbol=market, reason=reason, count=n)
        return Page(rows, len(payload))

    async def listed_markets(self) -> set[str]:
        """Every market code Upbit lists now (``/v1/market/all``)."""
        payload = await self._get_json("/v1/market/all", {"is_details": "false"})
        if not isinstance(payload, list):
            raise UpbitError("malformed", "market list: expected a JSON array")
        return {m["market"] for m in payload if isinstance(m, dict) and "market" in m}

    async def _get_json(self, path: str, params: dict[str, str]) -> Any:
        attempt = 0
        while True:
            try:
                return await self._attempt(path, params)
            except UpbitBlocked:
                raise
            except UpbitError as exc:
                self.metrics.dependency_errors.labels(dependency="upbit", kind=exc.kind).inc()
                if exc.kind in ("malformed", "http_4xx") or attempt >= self.max_retries:
                    raise
                attempt += 1
                delay = self._backoff(attempt, exc)
                log.info("upbit_retry", path=path, kind=exc.kind, attempt=attempt, delay_s=delay)
                await self.clock.sleep(delay)

    def _backoff(self, attempt: int, exc: UpbitError) -> float:
        if exc.kind == "rate_limited":
            return 0.0  # the budget already holds the next send for a full window
        base = self.retry_base_s * (2 ** (attempt - 1))
        return base * self.rng.uniform(0.5, 1.5)

    def _check_block(self) -> None:
        remaining = self.blocked_until - self.clock.monotonic()
        if remaining > 0:
            raise UpbitBlocked(self.blocked_until, f"blocked by Upbit for {remaining:.0f}s more")
        if self.blocked_until:
            self.blocked_until = 0.0
            self.metrics.upbit_blocked.set(0)
            log.info("upbit_block_over")

    async def _attempt(self, path: str, params: dict[str, str]) -> Any:
        self._check_block()
        slot = await self.budget.acquire()
        self.requests += 1
        try:
            async with self.session.get(
                self.base_url + path, params=params, timeout=self.timeout
            ) as resp:
                body = await resp.text()
                status, headers = resp.status, resp.headers
        except TimeoutError as exc:
            self._count("timeout")
            raise UpbitError("timeout", f"{path} timed out") from exc
        except aiohttp.ClientError as exc:
            self._count("connection")
            raise UpbitError("connection", f"{path}: {type(exc).__name__}") from exc
        finally:
            self.budget.done(slot)  # also on cancellation: a slot never stays in flight
        remaining = parse_remaining_req(headers.get("Remaining-Req"))
        if remaining is not None:
            self.budget.observe(remaining[1])
        return self._interpret(path, status, headers, body)

    def _interpret(self, path: str, status: int, headers: Any, body: str) -> Any:
        if status == 200:
            self._count("ok")
            return decode_json(body)
        if status == 429:
            self._count("rate_limited")
            self.budget.hold(_WINDOW_S)
            raise UpbitError("rate_limited", f"{path}: 429 Too Many Requests")
        if status == 418:
            self._count("blocked")
            seconds = parse_block_seconds(headers.get("Retry-After"), body)
            self.blocked_until = self.clock.monotonic() + seconds
            self.metrics.upbit_blocked.set(1)
            self.metrics.dependency_errors.labels(dependency="upbit", kind="blocked").inc()
            log.error("upbit_blocked", block_s=seconds)
            raise UpbitBlocked(self.blocked_until, f"{path}: 418, blocked for {seconds:.0f}s")
        kind = "http_5xx" if status >= 500 else "http_4xx"
        self._count(kind)
        raise UpbitError(kind, f"{path}: HTTP {status}: {body[:200]}")

    def _count(self, outcome: str) -> None:
        self.metrics.upbit_requests.labels(outcome=outcome).inc()


def client_from_settings(
    session: aiohttp.ClientSession, settings: Any, clock: Clock, metrics: Metrics
) -> UpbitClient:
    cfg = settings.app.upbit
    return UpbitClient(
        session,
        cfg.base_url,
        clock=clock,
        metrics=metrics,
        timeout_s=cfg.timeout_s,
        requests_per_second=cfg.requests_per_second,
        max_retries=cfg.max_retries,
    )


def unknown_symbols(configured: Sequence[str], listed: set[str]) -> list[str]:
    """Configured markets Upbit does not list (unknown or delisted), in config order."""
    return [s for s in configured if s not in listed]
