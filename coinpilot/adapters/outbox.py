"""The notification outbox: rows written in the same transaction as what they announce.

A rolled-back trade is never announced; a committed one is never lost (the sender drains
pending rows after commit and survives restarts).
"""

from __future__ import annotations

from typing import Any

import asyncpg

KINDS = ("trade", "ai-decision", "risk", "regime-change", "daily-report", "system")


async def enqueue(
    conn: asyncpg.Connection | asyncpg.Pool, kind: str, payload: dict[str, Any]
) -> int:
    """Queue one notification; call inside the caller's transaction."""
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}; expected one of {KINDS}")
    return int(
        await conn.fetchval(
            "INSERT INTO outbox (kind, payload) VALUES ($1, $2) RETURNING id", kind, payload
        )
    )
