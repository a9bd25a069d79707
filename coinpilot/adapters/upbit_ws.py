"""Upbit's public candle WebSocket: the stream URL, the request and the frames (no I/O).

Wire facts (EXTERNAL_APIS §1.8–§1.12): ``wss://<host>/websocket/v1``; one request is a JSON
array (ticket, ``candle.1m`` with the codes, format); frames are binary or text UTF-8 JSON
holding one candle (DEFAULT or SIMPLE keys) or an array of them (the LIST formats); the
server also sends ``{"status":"UP"}`` and ``{"error":{...}}`` objects. A candle frame has
no "closed" flag: the minute a candle belongs to is closed by the caller.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from coinpilot.adapters.marketdata import CandleRow
from coinpilot.adapters.upbit import parse_candle

STREAM_PATH = "/websocket/v1"
CANDLE_TYPE = "candle.1m"
_SIMPLE = {
    "ty": "type",
    "cd": "code",
    "cdttmu": "candle_date_time_utc",
    "cdttmk": "candle_date_time_kst",
    "op": "opening_price",
    "hp": "high_price",
    "lp": "low_price",
    "tp": "trade_price",
    "catv": "candle_acc_trade_volume",
    "catp": "candle_acc_trade_price",
    "tms": "timestamp",
    "st": "stream_type",
}


def stream_url(base_url: str, override: str | None = None) -> str:
    """The stream URL: ``override`` when given, else the REST host's with ws(s) and §1.8's path."""
    if override:
        return override
    parts = urlsplit(base_url)
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise ValueError(f"cannot derive a WebSocket URL from {base_url!r}")
    return f"{scheme}://{parts.netloc}{STREAM_PATH}"


def subscribe_message(codes: Sequence[str], ticket: str | None = None) -> str:
    """One request for ``candle.1m`` of ``codes`` with a snapshot, in the SIMPLE format."""
    return json.dumps(
        [
            {"ticket": ticket or f"coinpilot-{uuid.uuid4().hex[:12]}"},
            {"type": CANDLE_TYPE, "codes": list(codes)},
            {"format": "SIMPLE"},
        ],
        separators=(",", ":"),
    )


@dataclass(frozen=True)
class Frame:
    """What one frame held: candle rows, status answers, errors, and rejected candles."""

    candles: list[CandleRow]
    status: int = 0
    errors: tuple[str, ...] = ()
    rejected: tuple[str, ...] = ()
    other: int = 0


class MalformedFrame(ValueError):
    pass


def _object(item: dict[str, Any]) -> dict[str, Any]:
    return {_SIMPLE.get(k, k): v for k, v in item.items()} if "ty" in item else item


def parse_frame(data: bytes | str) -> Frame:
    """Decode one frame; ``MalformedFrame`` when it is not UTF-8 JSON at all."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        payload = json.loads(text, parse_float=Decimal)
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedFrame("not UTF-8 JSON") from exc
    items = payload if isinstance(payload, list) else [payload]
    candles: list[CandleRow] = []
    status = other = 0
    errors: list[str] = []
    rejected: list[str] = []
    for raw in items:
        if not isinstance(raw, dict):
            rejected.append("not_an_object")
            continue
        if "status" in raw:
            status += 1
        elif "error" in raw:
            error = raw["error"] if isinstance(raw["error"], dict) else {}
            errors.append(f"{error.get('name', '?')}: {error.get('message', '')}")
        else:
            item = _object(raw)
            if item.get("type") != CANDLE_TYPE:
                other += 1
                continue
            code = item.get("code")
            try:
                candles.append(parse_candle({**item, "market": code}, str(code)))
            except ValueError as exc:
                rejected.append(str(exc))
    return Frame(candles, status, tuple(errors), tuple(rejected), other)
