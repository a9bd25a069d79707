"""The outbox sender against a local Discord fake and the real PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import asyncpg
import pytest
from structlog.testing import capture_logs

from coinpilot.adapters.outbox import enqueue
from coinpilot.clock import SystemClock
from coinpilot.config import Settings
from coinpilot.observability import Health, Metrics
from coinpilot.services.outbox_sender import OutboxSender, outbox_summary
from tests.fakes.discord import FakeDiscord, start_fake_discord

QUICK = {"poll_interval_s": 0.1, "backoff_base_s": 0.0, "timeout_s": 1.0, "reply_timeout_s": 5.0}


@pytest.fixture
async def discord() -> AsyncIterator[FakeDiscord]:
    fake, runner = await start_fake_discord()
    yield fake
    fake.release.set()
    await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def make_sender(
    settings: Settings, pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> OutboxSender:
    return OutboxSender(
        settings=settings,
        pool=pool,
        http=http,
        clock=SystemClock(),
        health=Health(),
        metrics=Metrics(),
    )


def outbox_id(received: Any) -> int:
    return int(received.payload["embeds"][0]["footer"]["text"].rsplit("#", 1)[1])


async def drain_until(sender: OutboxSender, pool: asyncpg.Pool, *, guard_s: float = 20.0) -> None:
    """Drain repeatedly until nothing is pending (the guard only stops a broken sender)."""

    async def loop() -> None:
        while await pool.fetchval("SELECT count(*) FROM outbox WHERE status = 'pending'"):
            await sender.drain()
            await asyncio.sleep(0.05)

    await asyncio.wait_for(loop(), timeout=guard_s)


async def statuses(pool: asyncpg.Pool) -> dict[int, tuple[str, int]]:
    rows = await pool.fetch("SELECT id, status, attempts FROM outbox ORDER BY id")
    return {r["id"]: (r["status"], r["attempts"]) for r in rows}


async def test_each_row_delivered_once_with_no_mentions(
    pool: asyncpg.Pool,
    discord: FakeDiscord,
    http: aiohttp.ClientSession,
    make_settings: Callable[..., Settings],
) -> None:
    """Pending rows of every kind are posted once with wait=true and empty allowed_mentions."""
    url = discord.add_hook()
    settings = make_settings(env={"COINPILOT_DISCORD_WEBHOOK_URL": url}, notify=QUICK)
    ids = [
        await enqueue(pool, kind, {"symbol": "KRW-BTC", "message": f"@everyone {kind}"})
        for kind in ("trade", "ai-decision", "risk", "regime-change", "system")
    ]
    sent = await make_sender(settings, pool, http).drain()
    assert sent == len(ids)
    assert sorted(outbox_id(r) for r in discord.delivered) == ids
    assert all(r.wait and r.payload["allowed_mentions"] == {"parse": []} for r in discord.delivered)
    assert set((await statuses(pool)).values()) == {("sent", 1)}


async def test_route_429_waits_retry_after_and_delivers_once(
    pool: asyncpg.Pool,
    discord: FakeDiscord,
    http: aiohttp.ClientSession,
    make_settings: Callable[..., Settings],
) -> None:
    """A 429 with retry_after 2 s is honoured: one delivery, at least 2 s after the 429."""
    url = discord.add_hook()
    discord.fail_next(url, 429, retry_after=2.0)
    settings = make_settings(env={"COINPILOT_DISCORD_WEBHOOK_URL": url}, notify=QUICK)
    row = await enqueue(pool, "trade", {"symbol": "KRW-BTC", "side": "BUY"})
    await drain_until(make_sender(settings, pool, http), pool)
    limited, delivered = discord.requests
    assert (limited.status, delivered.status) == (429, 200)
    assert delivered.at - limited.at >= 2.0
    assert [outbox_id(r) for r in discord.delivered] == [row]
    assert (await statuses(pool))[row] == ("sent", 1)


async def test_route_429_does_not_hold_other_routes(
    pool: asyncpg.Pool,
    discord: FakeDiscord,
    http: aiohttp.ClientSession,
    make_settings: Callable[..., Settings],
) -> None:
    """A per-route 429 delays only that webhook; another kind's webhook keeps sending."""
    trade_url, risk_url = discord.add_hook("1", "a"), discord.add_hook("2", "b")
    discord.fail_next(trade_url, 429, retry_after=30.0)
    env = {
        "COINPILOT_DISCORD_WEBHOOK_URL": trade_url,
        "COINPILOT_DISCORD_WEBHOOK_URL_RISK": risk_url,
    }
    settings = make_settings(env=env, notify=QUICK)
    trades = [await enqueue(pool, "trade", {"n": i}) for i in range(2)]
    risk = await enqueue(pool, "risk", {"type": "COOLDOWN"})
    await make_sender(settings, pool, http).drain()
    assert [r.status for r in discord.requests] == [429, 200]
    assert [outbox_id(r) for r in discord.delivered] == [risk]
    st = await statuses(pool)
    assert [st[t] for t in trades] == [("pending", 0), ("pending", 0)]


async def test_global_429_pauses_every_route(
    pool: asyncpg.Pool,
    discord: FakeDiscord,
    http: aiohttp.ClientSession,
    make_settings: Callable[..., Settings],
) -> None:
    """A global 429 stops all sending until retry_after has passed, then both routes send."""
    trade_url, risk_url = discord.add_hook("1", "a"), discord.add_hook("2", "b")
    discord.fail_next(trade_url, 429, retry_after=0.5, global_=True)
    env = {
        "COINPILOT_DISCORD_WEBHOOK_URL": trade_url,
        "COINPILOT_DISCORD_WEBHOOK_URL_RISK": risk_url,
    }
    settings = make_settings(env=env, notify=QUICK)
    ids = [await enqueue(pool, "trade", {"n": 1}), await enqueue(pool, "risk", {"n": 2})]
    sender = make_sender(settings, pool, http)
    await sender.drain()
    assert [r.status for r in discord.requests] == [429]
    await drain_until(sender, pool)
    assert sorted(outbox_id(r) for r in discord.delivered) == ids
    assert discord.delivered[0].at - discord.requests[0].at >= 0.5


async def test_an_outage_of_server_errors_loses_nothing(
    pool: asyncpg.Pool,
    discord: FakeDiscord,
    http: aiohttp.ClientSession,
    make_settings: Callable[..., Settings],
) -> None:
    """Twenty rows through 30 HTTP 500s: retried (no attempt cap) until each is delivered."""
    url = discord.add_hook()
    discord.fail_next(url, 500, times=30)
    settings = make_settings(env={"COINPILOT_DISCORD_WEBHOOK_URL": url}, notify=QUICK)
    ids = [await enqueue(pool, "trade", {"n": i}) for i in range(20)]
    await drain_until(make_sender(settings, pool, http), pool)
    assert [r.status for r in discord.requests].count(500) == 30
    assert sorted(outbox_id(r) for r in discord.delivered) == ids
    assert {s for s, _ in (await statuses(pool)).values()} == {"sent"}


async def test_a_row_failing_past_max_age_is_failed_counted_and_kept(
    pool: asyncpg.Pool,
    discord: FakeDiscord,
    http: aiohttp.ClientSession,
    make_settings: Callable[..., Settings],
) -> None:
    """After notify.max_age_h of failures the row is given up on: 'failed', kept, counted."""
    url = discord.add_hook()
    discord.fail_next(url, 500, times=2)
    settings = make_settings(
        env={"COINPILOT_DISCORD_WEBHOOK_URL": url}, notify={**QUICK, "max_age_h": 1}
    )
    old = await enqueue(pool, "risk", {"type": "DAILY_LOSS"})
    young = await enqueue(pool, "risk", {"type": "DAILY_LOSS"})
    await pool.execute(
        "UPDATE outbox SET created_at = now() - interval '61 minutes' WHERE id = $1", old
    )
    sender = make_sender(settings, pool, http)
    await drain_until(sender, pool)
    rows = {
        r["id"]: r for r in await pool.fetch("SELECT id, status, last_error, attempts FROM outbox")
    }
    assert rows[old]["status"] == "failed"
    assert "notify.max_age_h" in rows[old]["last_error"]
    assert "500" in rows[old]["last_error"]
    assert rows[young]["status"] == "sent"  # its 500 was retried
    expired = sender.metrics.registry.get_sample_value(
        "coinpilot_notifications_total", {"kind": "risk", "outcome": "expired"}
    )
    assert expired == 1


async def test_backoff_grows_from_seconds_to_its_cap(
    pool: asyncpg.Pool,
    http: aiohttp.ClientSession,
    make_settings: Callable[..., Settings],
) -> None:
    """Each retry waits base x 2^(n-1) scaled by a jitter factor in [0.5, 1.5), at most
    notify.backoff_max_s: minutes after ten failures, the cap after that."""
    settings = make_settings(notify={"backoff_base_s": 1.0, "backoff_max_s": 1800})
    sender = make_sender(settings, pool, http)
    for attempt in (1, 2, 3, 10):
        delays = {sender.backoff_s(attempt) for _ in range(50)}
        assert len(delays) > 1
        assert all(0.5 * 2 ** (attempt - 1) <= d < 1.5 * 2 ** (attempt - 1) for d in delays)
    assert all(900 <= sender.backoff_s(40) < 2700 for _ in range(50))


async def test_a_slow_reply_is_waited_for_not_sent_again(
    pool: asyncpg.Pool,
    discord: FakeDiscord,
    http: aiohttp.ClientSession,
    make_settings: Callable[..., Settings],
) -> None:
    """Discord accepts but answers after 2.5 s, past the 1 s connect timeout (the reply
    timeout is 5 s): the sender waits for the message id instead of posting again."""
    url = discord.add_hook()
    discord.slow_next(url, 2.5)
    settings = make_settings(env={"COINPILOT_DISCORD_WEBHOOK_URL": url}, notify=QUICK)
    row = await enqueue(pool, "trade", {"side": "BUY"})
    await drain_until(make_sender(settings, pool, http), pool)
    assert [r.status for r in discord.requests] == [200]
    stored = await pool.fetchrow("SELECT status, discord_message_id FROM outbox WHERE id=$1", row)
    assert stored["status"] == "sent"
    assert stored["discord_message_id"] == discord.message_ids[0]


async def test_unknown_webhook_disables_route_and_logs_once(
    pool: asyncpg.Pool,
    discord: FakeDiscord,
    http: aiohttp.ClientSession,
    make_settings: Callable[..., Settings],
) -> None:
    """A 404 disables that webhook after one request; its rows are kept as 'disabled'."""
    gone = f"{discord.base_url}/api/webhooks/999/deleted"
    settings = make_settings(env={"COINPILOT_DISCORD_WEBHOOK_URL": gone}, notify=QUICK)
    for i in range(3):
        await enqueue(pool, "trade", {"n": i})
    with capture_logs() as logs:
        await make_sender(settings, pool, http).drain()
    assert [r.status for r in discord.requests] == [404]
    assert {s for s, _ in (await statuses(pool)).values()} == {"disabled"}
    assert [e["event"] for e in logs].count("webhook_disabled") == 1
    assert all(gone not in str(e) for e in logs)
    # After a restart the dead webhook is not tried again.
    restarted = make_sender(settings, pool, http)
    await restarted.load_disabled_routes()
    await enqueue(pool, "risk", {"n": 4})
    await restarted.drain()
    assert len(discord.requests) == 1
    assert {s for s, _ in (await statuses(pool)).values()} == {"disabled"}


async def test_oversized_payloads_are_never_rejected(
    pool: asyncpg.Pool,
    discord: FakeDiscord,
    http: aiohttp.ClientSession,
    make_settings: Callable[..., Settings],
) -> None:
    """Huge texts and many fields are trimmed so the fake (which enforces limits) accepts."""
    url = discord.add_hook()
    settings = make_settings(env={"COINPILOT_DISCORD_WEBHOOK_URL": url}, notify=QUICK)
    huge: dict[str, Any] = {f"field_{i}": "x" * 3000 for i in range(40)}
    huge.update(title="T" * 1000, reason="r" * 9000, symbol="KRW-BTC", decision="REJECT")
    await enqueue(pool, "ai-decision", huge)
    await enqueue(pool, "system", {"event": "error", "message": "  " + "m" * 5000 + "  "})
    await make_sender(settings, pool, http).drain()
    assert [r.status for r in discord.requests] == [200, 200]


async def test_two_senders_never_send_a_row_twice(
    pool: asyncpg.Pool,
    discord: FakeDiscord,
    http: aiohttp.ClientSession,
    make_settings: Callable[..., Settings],
) -> None:
    """Concurrent senders on one database each claim different rows (SKIP LOCKED)."""
    url = discord.add_hook()
    settings = make_settings(env={"COINPILOT_DISCORD_WEBHOOK_URL": url}, notify=QUICK)
    ids = [await enqueue(pool, "trade", {"n": i}) for i in range(30)]
    a, b = make_sender(settings, pool, http), make_sender(settings, pool, http)
    counts = await asyncio.gather(a.drain(), b.drain())
    assert sum(counts) == len(ids)
    assert Counter(outbox_id(r) for r in discord.delivered) == Counter(ids)


SENDER_SCRIPT = textwrap.dedent("""
    import asyncio, sys
    import aiohttp
    from coinpilot.adapters import db
    from coinpilot.clock import SystemClock
    from coinpilot.config import load_config
    from coinpilot.observability import Health, Metrics
    from coinpilot.services.outbox_sender import OutboxSender, outbox_summary

    async def main(dsn, cfg, url):
        settings = load_config(cfg, environ={"COINPILOT_DISCORD_WEBHOOK_URL": url})
        pool = await db.create_pool(dsn)
        async with aiohttp.ClientSession() as http:
            sender = OutboxSender(settings=settings, pool=pool, http=http,
                                  clock=SystemClock(), health=Health(), metrics=Metrics())
            await sender.drain()

    asyncio.run(main(*sys.argv[1:4]))
""")


async def test_rows_left_by_a_killed_sender_are_delivered_exactly_once(
    pool: asyncpg.Pool,
    db_dsn: str,
    discord: FakeDiscord,
    http: aiohttp.ClientSession,
    make_settings: Callable[..., Settings],
) -> None:
    """A sender process killed mid-send leaves rows that a fresh sender delivers once each."""
    url = discord.add_hook()
    settings = make_settings(env={"COINPILOT_DISCORD_WEBHOOK_URL": url}, notify=QUICK)
    ids = [
        await enqueue(pool, kind, {"n": i})
        for i, kind in enumerate(("trade", "trade", "risk", "ai-decision", "system"))
    ]
    discord.stall_next(url)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SENDER_SCRIPT,
        db_dsn,
        settings.source,
        url,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    await asyncio.wait_for(discord.stalled.wait(), timeout=60)
    proc.kill()
    await proc.wait()
    discord.release.set()
    assert discord.delivered == []
    assert (await statuses(pool))[ids[0]] == ("pending", 1)
    await drain_until(make_sender(settings, pool, http), pool)
    assert Counter(outbox_id(r) for r in discord.delivered) == Counter(ids)
    assert {s for s, _ in (await statuses(pool)).values()} == {"sent"}


async def test_service_announces_start_and_stop(
    pool: asyncpg.Pool,
    discord: FakeDiscord,
    http: aiohttp.ClientSession,
    make_settings: Callable[..., Settings],
) -> None:
    """As a daemon service the sender posts a start notice, then a stop notice on shutdown."""
    url = discord.add_hook()
    settings = make_settings(env={"COINPILOT_DISCORD_WEBHOOK_URL": url}, notify=QUICK)
    sender = make_sender(settings, pool, http)
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    for _ in range(400):  # the first cycle runs right after start-up
        if discord.delivered:
            break
        await asyncio.sleep(0.05)
    assert sender.state.running
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    events = [r.payload["embeds"][0]["title"] for r in discord.delivered]
    assert events == ["CoinPilot start", "CoinPilot stop"]
    assert sender.metrics.outbox_backlog._value.get() == 0
    assert not sender.state.running


async def test_exhausted_bucket_pauses_the_route_before_a_429(
    pool: asyncpg.Pool,
    discord: FakeDiscord,
    http: aiohttp.ClientSession,
    make_settings: Callable[..., Settings],
) -> None:
    """X-RateLimit-Remaining 0 holds the next send until the bucket resets, so no 429 comes."""
    url = discord.add_hook()
    discord.bucket_exhausted = True
    settings = make_settings(env={"COINPILOT_DISCORD_WEBHOOK_URL": url}, notify=QUICK)
    ids = [await enqueue(pool, "trade", {"n": i}) for i in range(2)]
    sender = make_sender(settings, pool, http)
    assert await sender.drain() == 1
    await drain_until(sender, pool)
    assert [outbox_id(r) for r in discord.delivered] == ids
    assert all(r.status == 200 for r in discord.requests)


async def test_kinds_without_a_webhook_are_kept_as_disabled(
    pool: asyncpg.Pool,
    http: aiohttp.ClientSession,
    make_settings: Callable[..., Settings],
) -> None:
    """With no webhook configured rows are marked 'disabled' (kept), logged once per kind."""
    settings = make_settings(notify=QUICK)
    for _ in range(3):
        await enqueue(pool, "trade", {"side": "BUY"})
    with capture_logs() as logs:
        await make_sender(settings, pool, http).drain()
    assert set((await statuses(pool)).values()) == {("disabled", 1)}
    assert [e["event"] for e in logs].count("notify_unrouted") == 1
    summary = await outbox_summary(pool)
    assert summary["counts"] == {"disabled": 3}
    assert [r["last_error"] for r in summary["undelivered"]] == ["no webhook configured"] * 3


async def test_rows_of_a_dead_webhook_are_sent_after_the_url_is_replaced(
    pool: asyncpg.Pool,
    discord: FakeDiscord,
    http: aiohttp.ClientSession,
    make_settings: Callable[..., Settings],
) -> None:
    """404: rows kept 'disabled', counted; a restart with a new URL sends them."""
    gone = f"{discord.base_url}/api/webhooks/999/deleted"
    settings = make_settings(env={"COINPILOT_DISCORD_WEBHOOK_URL": gone}, notify=QUICK)
    ids = [await enqueue(pool, "trade", {"n": i}) for i in range(3)]
    first = make_sender(settings, pool, http)
    await first.startup()
    await drain_until(first, pool)
    assert {s for s, _ in (await statuses(pool)).values()} == {"disabled"}
    disabled = first.metrics.registry.get_sample_value(
        "coinpilot_notifications_total", {"kind": "trade", "outcome": "disabled"}
    )
    assert disabled == 3
    url = discord.add_hook()
    fixed = make_settings(env={"COINPILOT_DISCORD_WEBHOOK_URL": url}, notify=QUICK)
    second = make_sender(fixed, pool, http)
    await second.startup()
    await drain_until(second, pool)
    trades = [outbox_id(r) for r in discord.delivered if r.payload["embeds"][0]["footer"]]
    assert set(ids) <= set(trades)
    assert {s for s, _ in (await statuses(pool)).values()} == {"sent"}


async def test_rows_kept_while_no_webhook_was_set_are_sent_once_one_is(
    pool: asyncpg.Pool,
    discord: FakeDiscord,
    http: aiohttp.ClientSession,
    make_settings: Callable[..., Settings],
) -> None:
    await enqueue(pool, "trade", {"side": "BUY"})
    await make_sender(make_settings(notify=QUICK), pool, http).drain()
    assert {s for s, _ in (await statuses(pool)).values()} == {"disabled"}
    url = discord.add_hook()
    later = make_sender(
        make_settings(env={"COINPILOT_DISCORD_WEBHOOK_URL": url}, notify=QUICK), pool, http
    )
    await later.startup()
    await drain_until(later, pool)
    assert "sent" in {s for s, _ in (await statuses(pool)).values()}
    assert "disabled" not in {s for s, _ in (await statuses(pool)).values()}
