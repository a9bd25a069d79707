"""Discord webhook messages: one embed per outbox row, always inside Discord's limits.

Limits (measured after trimming whitespace): title 256, description 4096, ≤ 25 fields,
field name 256 / value 1024, footer 2048, author 256, and 6000 characters summed over the
message. A message over any of them is rejected with 400, so every string is trimmed
here and the total is enforced by shortening the description, then dropping fields.
``allowed_mentions`` is always empty: a payload can never ping anyone.

Payload keys read per kind (others become fields, so nothing is silently lost):
trade {symbol, side, price, quantity, notional, realized_pnl, exit_reason, regime},
ai-decision {symbol, decision, confidence, regime, reason},
risk {type, level, message}, regime-change {symbol, previous, regime, diff_pct},
daily-report {date, lines, summary}, system {event, level, message}.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from coinpilot.domain import money_format

TITLE_MAX = 256
DESCRIPTION_MAX = 4096
FIELDS_MAX = 25
FIELD_NAME_MAX = 256
FIELD_VALUE_MAX = 1024
FOOTER_MAX = 2048
TOTAL_MAX = 6000
ELLIPSIS = "…"

GREEN, RED, ORANGE, YELLOW, BLUE, PURPLE, GREY = (
    0x2ECC71,
    0xE74C3C,
    0xE67E22,
    0xF1C40F,
    0x3498DB,
    0x9B59B6,
    0x95A5A6,
)

KRW_SUFFIXES = ("notional", "pnl", "_krw")
_TITLE_KEYS = ("title",)
_TEXT_KEYS = ("description", "message", "reason", "summary")


def clip(text: Any, limit: int) -> str:
    """Trim whitespace and cut to ``limit`` characters, marking the cut."""
    value = str(text).strip()
    if len(value) <= limit:
        return value
    return value[: limit - 1].rstrip() + ELLIPSIS


def colour(kind: str, payload: Mapping[str, Any]) -> int:
    level = str(payload.get("level", "")).upper()
    if kind == "trade":
        return GREEN if str(payload.get("side", "")).upper() == "BUY" else RED
    if kind == "ai-decision":
        return GREEN if str(payload.get("decision", "")).upper() == "CONFIRM" else ORANGE
    if kind == "risk":
        return RED if level in ("CRITICAL", "ERROR") else YELLOW
    if kind == "regime-change":
        return BLUE
    if kind == "daily-report":
        return PURPLE
    return RED if level in ("CRITICAL", "ERROR") else GREY


def default_title(kind: str, p: Mapping[str, Any]) -> str:
    sym = p.get("symbol", "")
    if kind == "trade":
        return f"{str(p.get('side', 'TRADE')).upper()} {sym}".strip()
    if kind == "ai-decision":
        return f"AI {p.get('decision', 'decision')} {sym}".strip()
    if kind == "risk":
        return f"Risk alert: {p.get('type', 'risk')}"
    if kind == "regime-change":
        return f"Regime {sym}: {p.get('previous', '?')} → {p.get('regime', '?')}"
    if kind == "daily-report":
        return f"CoinPilot daily report ({p.get('date', '')})"
    return f"CoinPilot {p.get('event', 'system')}"


def _description(kind: str, p: Mapping[str, Any]) -> str:
    if kind == "daily-report":
        parts = [
            "\n".join(str(x) for x in p.get("summary") or []),
            "\n".join(str(x) for x in p.get("lines") or []),
        ]
        return "\n\n".join(x for x in parts if x)
    for key in _TEXT_KEYS:
        if p.get(key):
            return str(p[key])
    return ""


def readable(key: str, value: Any) -> str:
    """Numbers as people read them: KRW to the won (PnL signed), prices at the tick,
    quantities to 8 decimals, percentages to 2; anything else (or not a number) as given."""
    if money_format.to_decimal(value) is None:
        return str(value)
    if key.endswith("price"):
        return money_format.price(value)
    if key.endswith("quantity"):
        return money_format.quantity(value)
    if key.endswith("_pct"):
        return money_format.percent(value)
    if key.endswith(KRW_SUFFIXES):
        return money_format.won(value, sign="pnl" in key)
    return str(value)


def _fields(p: Mapping[str, Any], used: set[str]) -> list[dict[str, Any]]:
    out = []
    for key, value in p.items():
        if key in used or value is None or value == "" or isinstance(value, dict | list):
            continue
        name = clip(key.replace("_", " ").capitalize(), FIELD_NAME_MAX) or "-"
        text = clip(readable(key, value), FIELD_VALUE_MAX) or "-"
        out.append({"name": name, "value": text, "inline": True})
    return out[:FIELDS_MAX]


def _size(embed: Mapping[str, Any]) -> int:
    total = len(embed.get("title", "")) + len(embed.get("description", ""))
    total += sum(len(f["name"]) + len(f["value"]) for f in embed.get("fields", []))
    return total + len(embed.get("footer", {}).get("text", ""))


def _fit_total(embed: dict[str, Any]) -> dict[str, Any]:
    excess = _size(embed) - TOTAL_MAX
    if excess > 0 and embed.get("description"):
        keep = max(0, len(embed["description"]) - excess - 1)
        embed["description"] = clip(embed["description"], keep) if keep else ""
    while _size(embed) > TOTAL_MAX and embed.get("fields"):
        embed["fields"].pop()
    if not embed.get("description"):
        embed.pop("description", None)
    return embed


def build_embed(
    kind: str, payload: Mapping[str, Any], *, footer: str, timestamp: str | None = None
) -> dict[str, Any]:
    used = {*_TITLE_KEYS, *_TEXT_KEYS, "lines", "level", "timestamp"}
    embed: dict[str, Any] = {
        "title": clip(payload.get("title") or default_title(kind, payload), TITLE_MAX),
        "description": clip(_description(kind, payload), DESCRIPTION_MAX),
        "color": colour(kind, payload),
        "fields": _fields(payload, used),
        "footer": {"text": clip(footer, FOOTER_MAX)},
    }
    if timestamp:
        embed["timestamp"] = timestamp
    return _fit_total(embed)


def build_message(
    kind: str, payload: Mapping[str, Any], *, footer: str, timestamp: str | None = None
) -> dict[str, Any]:
    """The JSON body of one webhook execution."""
    return {
        "username": "CoinPilot",
        "allowed_mentions": {"parse": []},
        "embeds": [build_embed(kind, payload, footer=footer, timestamp=timestamp)],
    }


def message_size(message: Mapping[str, Any]) -> int:
    """Characters counted against the 6000 limit, summed over every embed."""
    return sum(_size(e) for e in message.get("embeds", []))
