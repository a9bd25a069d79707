"""Errors, sorted by the reaction they need.

    CoinPilotError
    ├── ConfigError      bad configuration: stop start-up with the field named (exit 2)
    ├── TransientError   try again next cycle or within a bounded retry (network, 429, 5xx)
    │   └── DependencyDown   PostgreSQL or Redis unreachable right now
    ├── RejectedError    skip this symbol or row and record why (bad candle, risk rejection)
    └── FatalError       a human is needed: the process exits non-zero

Adapters translate library exceptions into this tree once, at the boundary, with
``raise ... from exc``; services handle each error once, at the loop boundary.
"""


class CoinPilotError(Exception):
    """Base of every error CoinPilot raises on purpose."""


class ConfigError(CoinPilotError):
    """The configuration is invalid; the message names the field path."""


class TransientError(CoinPilotError):
    """A temporary failure; the same work may succeed later."""


class DependencyDown(TransientError):
    """A backing service (database, Redis) cannot be reached."""


class RejectedError(CoinPilotError):
    """Input or an action was refused; skip it and record the reason."""


class FatalError(CoinPilotError):
    """Continuing would be unsafe; the process should stop."""
