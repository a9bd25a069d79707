"""Logging, Prometheus metrics and service health: what the operator sees.

Metric rules: base units in names (``_seconds``, ``_krw``, ``_usd``), counters end in
``_total``, labels are bounded (symbols come from config, reasons are stable codes).
One registry per app, never the process-wide default, so tests can build many apps.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from structlog.typing import EventDict

SECRET_KEYS = ("api_key", "password", "secret", "token", "webhook_url", "authorization")


def _drop_secrets(_: Any, __: str, event: EventDict) -> EventDict:
    for key in list(event):
        if any(word in key.lower() for word in SECRET_KEYS):
            event[key] = "********"
    return event


# syslog priorities as journald stores them (PRIORITY=); `journalctl -p warning` filters on it.
PRIORITIES = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2}


def _add_priority(_: Any, __: str, event: EventDict) -> EventDict:
    event["priority"] = PRIORITIES.get(event.get("level", "info"), 6)
    return event


def is_journal(stream: Any) -> bool:
    """True when systemd connected this stream to the journal ($JOURNAL_STREAM = dev:inode)."""
    journal = os.environ.get("JOURNAL_STREAM", "")
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return journal == f"{st.st_dev}:{st.st_ino}"


class JournalLineFormatter(logging.Formatter):
    """Stdlib records (asyncpg, apscheduler) under journald: every line gets its ``<N>``."""

    def format(self, record: logging.LogRecord) -> str:
        prio = PRIORITIES.get(record.levelname.lower(), 3)
        return "\n".join(f"<{prio}>{line}" for line in super().format(record).splitlines())


class JournalJSONRenderer:
    """One JSON object per line; under journald prefixed with ``<N>`` so PRIORITY is set."""

    def __init__(self, prefix: bool) -> None:
        self._json = structlog.processors.JSONRenderer()
        self._prefix = prefix

    def __call__(self, logger: Any, name: str, event: EventDict) -> str:
        line = str(self._json(logger, name, event))
        return f"<{event.get('priority', 6)}>{line}" if self._prefix else line


def configure_logging(level: str = "INFO", fmt: str = "auto", stream: Any = None) -> None:
    """JSON lines for journald, a readable console on a terminal. The daemon logs to stdout
    (what journald stores); other commands pass stderr so stdout carries only results."""
    out = sys.stdout if stream is None else stream
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    renderer: Any = (
        JournalJSONRenderer(prefix=is_journal(out))
        if use_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            *([_add_priority] if use_json else []),
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _drop_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level)),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    # Libraries that use stdlib logging (asyncpg, apscheduler) go to stderr at WARNING.
    handler = logging.StreamHandler(sys.stderr)
    if is_journal(sys.stderr):
        handler.setFormatter(JournalLineFormatter("%(name)s %(message)s"))
    logging.basicConfig(level=logging.WARNING, format="%(name)s %(message)s", handlers=[handler])


_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """Every metric CoinPilot exports, on a registry owned by the app."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        # Market data
        self.candles_stored = Counter(
            "coinpilot_candles_stored_total",
            "Closed 1-minute candles upserted",
            ["symbol"],
            registry=r,
        )
        self.candles_rejected = Counter(
            "coinpilot_candles_rejected_total",
            "Candles rejected at the edge",
            ["reason"],
            registry=r,
        )
        self.upbit_requests = Counter(
            "coinpilot_upbit_requests_total",
            "Upbit HTTP requests by outcome",
            ["outcome"],
            registry=r,
        )
        self.upbit_blocked = Gauge(
            "coinpilot_upbit_blocked", "1 while Upbit has blocked us (HTTP 418)", registry=r
        )
        self.candle_age = Gauge(
            "coinpilot_candle_age_seconds",
            "Age of the newest stored closed candle",
            ["symbol"],
            registry=r,
        )
        self.ws_connected = Gauge(
            "coinpilot_upbit_ws_connected", "1 while the candle WebSocket is up", registry=r
        )
        self.ws_disconnects = Counter(
            "coinpilot_upbit_ws_disconnects_total",
            "Candle WebSocket disconnects by reason",
            ["reason"],
            registry=r,
        )
        self.ws_frames = Counter(
            "coinpilot_upbit_ws_messages_total",
            "Candle WebSocket messages by kind (candle, status, error, malformed, ...)",
            ["kind"],
            registry=r,
        )
        self.minute_store_latency = Histogram(
            "coinpilot_minute_store_latency_seconds",
            "From a minute's end to its closed candle committed, by path (websocket, rest)",
            ["kind"],
            buckets=(0.25, 0.5, 1, 2, 3, 5, 10, 30, 60, 120),
            registry=r,
        )
        # Errors of every dependency, by kind
        self.dependency_errors = Counter(
            "coinpilot_dependency_errors_total",
            "Errors talking to a dependency",
            ["dependency", "kind"],
            registry=r,
        )
        # Loops and jobs
        self.loop_duration = Histogram(
            "coinpilot_loop_duration_seconds",
            "Duration of one service cycle",
            ["service"],
            buckets=_LATENCY,
            registry=r,
        )
        self.loop_last_success = Gauge(
            "coinpilot_loop_last_success_timestamp_seconds",
            "Unix time of the last good cycle",
            ["service"],
            registry=r,
        )
        self.job_runs = Counter(
            "coinpilot_job_runs_total", "Scheduled job runs", ["job", "outcome"], registry=r
        )
        self.job_duration = Histogram(
            "coinpilot_job_duration_seconds",
            "Scheduled job duration",
            ["job"],
            buckets=(0.1, 0.5, 1, 5, 15, 60, 300),
            registry=r,
        )
        self.db_query_duration = Histogram(
            "coinpilot_db_query_duration_seconds",
            "Duration of the bot's candle query",
            buckets=_LATENCY,
            registry=r,
        )
        # Trading
        self.entry_decisions = Counter(
            "coinpilot_entry_decisions_total",
            "Per-symbol cycle outcomes by reason code",
            ["reason"],
            registry=r,
        )
        self.trades = Counter("coinpilot_trades_total", "Paper fills", ["side"], registry=r)
        self.minutes_decided = Counter(
            "coinpilot_minutes_decided_total",
            "Closed minutes decided, one per watched symbol and minute",
            registry=r,
        )
        self.minutes_missed = Counter(
            "coinpilot_minutes_missed_total",
            "Closed minutes stored while running but passed over without a decision",
            registry=r,
        )
        self.decision_latency = Histogram(
            "coinpilot_decision_latency_seconds",
            "From a minute's close to its decision",
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            registry=r,
        )
        self.exits = Counter(
            "coinpilot_exits_total", "Position exits by reason", ["reason"], registry=r
        )
        self.symbol_errors = Counter(
            "coinpilot_symbol_errors_total",
            "Unexpected errors while processing a symbol",
            ["symbol"],
            registry=r,
        )
        self.risk_rejections = Counter(
            "coinpilot_risk_rejections_total",
            "Entries refused by the risk manager",
            ["reason"],
            registry=r,
        )
        self.equity = Gauge("coinpilot_equity_krw", "Cash plus marked open positions", registry=r)
        self.cash = Gauge("coinpilot_cash_krw", "Paper cash balance", registry=r)
        self.exposure = Gauge(
            "coinpilot_exposure_krw", "Marked value of open positions", registry=r
        )
        self.open_positions = Gauge("coinpilot_open_positions", "Open positions", registry=r)
        self.daily_pnl = Gauge(
            "coinpilot_daily_pnl_krw", "Today's PnL (realized + unrealized, after fees)", registry=r
        )
        self.trading_halted = Gauge(
            "coinpilot_trading_halted", "1 while today's trading is halted", registry=r
        )
        self.ledger_violation = Gauge(
            "coinpilot_ledger_invariant_violation", "1 when the ledger invariant fails", registry=r
        )
        # AI
        self.ai_requests = Counter(
            "coinpilot_ai_requests_total", "AI pipeline runs that called the model", registry=r
        )
        self.ai_decisions = Counter(
            "coinpilot_ai_decisions_total",
            "AI verdicts by outcome and reason",
            ["outcome", "reason"],
            registry=r,
        )
        self.ai_prefilter_skips = Counter(
            "coinpilot_ai_prefilter_skips_total",
            "Entries skipped by the AI pre-filter",
            ["reason"],
            registry=r,
        )
        self.ai_guardrail_blocks = Counter(
            "coinpilot_ai_guardrail_blocks_total",
            "Entries blocked by AI guardrails",
            ["reason"],
            registry=r,
        )
        self.ai_latency = Histogram(
            "coinpilot_ai_latency_seconds",
            "Latency of one AI pipeline run",
            buckets=(0.5, 1, 2, 5, 10, 20, 30, 40, 60),
            registry=r,
        )
        self.ai_tokens = Counter(
            "coinpilot_ai_tokens_total", "LLM tokens", ["direction"], registry=r
        )
        self.ai_cost = Counter("coinpilot_ai_cost_usd_total", "Estimated LLM cost", registry=r)
        self.ai_context_candles = Histogram(
            "coinpilot_ai_context_candles",
            "Hourly candles in the AI context",
            buckets=(0, 4, 8, 12, 16, 20, 24, 30),
            registry=r,
        )
        self.ai_global_block = Gauge(
            "coinpilot_ai_global_block", "1 while the AI is globally blocked", registry=r
        )
        self.ai_misconfigured = Gauge(
            "coinpilot_ai_misconfigured",
            "1 when the configured model is retired or unknown or refuses our requests",
            registry=r,
        )
        # Jobs' outputs
        self.volatility = Gauge(
            "coinpilot_volatility_pct",
            "GARCH one-step std of 1-minute % returns",
            ["symbol"],
            registry=r,
        )
        self.high_volatility = Gauge(
            "coinpilot_high_volatility",
            "1 when volatility is above the threshold",
            ["symbol"],
            registry=r,
        )
        self.regime = Gauge(
            "coinpilot_regime",
            "1 for the symbol's current regime",
            ["symbol", "regime"],
            registry=r,
        )
        # Notifications
        self.notifications = Counter(
            "coinpilot_notifications_total",
            "Notification deliveries",
            ["kind", "outcome"],
            registry=r,
        )
        self.outbox_backlog = Gauge(
            "coinpilot_outbox_backlog", "Notifications waiting to be sent", registry=r
        )

    def dependency_error(self, dependency: str, kind: str) -> None:
        self.dependency_errors.labels(dependency=dependency, kind=kind).inc()


@dataclass
class ServiceState:
    name: str
    running: bool = False
    last_cycle: datetime | None = None
    last_success: datetime | None = None
    last_error: str | None = None
    degraded_reason: str | None = None


@dataclass
class Health:
    """What each service last did; read by /health, the watchdog and the dashboard."""

    services: dict[str, ServiceState] = field(default_factory=dict)

    def service(self, name: str) -> ServiceState:
        return self.services.setdefault(name, ServiceState(name))

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {
            name: {
                "running": s.running,
                "last_cycle": s.last_cycle.isoformat() if s.last_cycle else None,
                "last_success": s.last_success.isoformat() if s.last_success else None,
                "last_error": s.last_error,
                "degraded": s.degraded_reason,
            }
            for name, s in sorted(self.services.items())
        }
