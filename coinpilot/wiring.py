"""Registers every service and HTTP route installer with the app (imported by `run`).

Each capability adds one factory here: ``SERVICE_FACTORIES.append(lambda deps: [...])``,
or an HTTP installer ``HTTP_INSTALLERS.append(lambda deps: installer)``, where
``installer(app: aiohttp.web.Application)`` adds routes. Nothing else needs to change
to plug a service into the daemon.
"""

from coinpilot.app import HTTP_INSTALLERS, SERVICE_FACTORIES

# Scheduled jobs (regime, volatility, daily report) and the Discord outbox sender.
from coinpilot.services.scheduler import outbox_sender_factory, scheduler_factory

SERVICE_FACTORIES.append(outbox_sender_factory)
SERVICE_FACTORIES.append(scheduler_factory)

# Market data: closed 1-minute candles from Upbit (start-up backfill, then every minute).
from coinpilot.services.collector import collector_factory  # noqa: E402

SERVICE_FACTORIES.append(collector_factory)

# Read-only dashboard and its JSON API (refuses a public bind without a token).
from coinpilot.web.routes import install as dashboard_installer  # noqa: E402

HTTP_INSTALLERS.append(dashboard_installer)

# The bot loop: exits, entries, risk, sizing, AI step and the paper ledger every minute.
from coinpilot.services.bot import bot_factory  # noqa: E402

SERVICE_FACTORIES.append(bot_factory)

# The one-daemon lock, re-verified between cycles (a lost lock stops trading).
from coinpilot.services.daemon_lock import lock_watch_factory  # noqa: E402

SERVICE_FACTORIES.append(lock_watch_factory)
