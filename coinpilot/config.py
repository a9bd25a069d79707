"""Configuration: one YAML file for tuning, the environment for secrets and URLs.

Rules this module keeps:
- every model is frozen and forbids unknown keys, so a typo in the YAML stops start-up;
- numbers are finite and every field has a range a running daemon can live with;
- ``load_config`` is the one validation `run` and `check-config` both go through;
- a bad value raises ``ConfigError`` naming the field path (``regimes.BULL.entry.rsi_14_max``);
- secrets are ``SecretStr`` and never appear in ``repr``, logs or ``check-config`` output;
- money is ``Decimal``; strategy thresholds are floats because the indicators are floats.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from coinpilot.errors import ConfigError

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "config" / "coinpilot.yaml"

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Period = Annotated[int, Field(ge=2, le=1000)]
Seconds = Annotated[float, Field(gt=0.0, le=3600.0)]
PositiveFraction = Annotated[float, Field(gt=0.0, le=1.0)]
Rsi = Annotated[float, Field(ge=0.0, le=100.0)]


class Model(BaseModel):
    # inf and nan are refused everywhere: `interval_s: .inf` would make a busy loop.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class EntryParams(Model):
    """Entry thresholds of one regime (SPEC §2.3, C1 values in the shipped YAML)."""

    rsi_period: Period = 14
    rsi_short_period: Period = 7
    rsi_14_max: Rsi
    rsi_7_trigger: Rsi
    rsi_7_recover: Rsi
    rsi_7_recovery_lookback: Period = 5
    min_rsi_7_bounce_pct: float | None = Field(None, ge=0.0, le=100.0)
    ma_condition: Literal["crossover", "proximity", "proximity_or_above", "none"]
    ma_period: Period = 20
    ma_proximity_pct: float = Field(0.97, gt=0.0, le=2.0)
    bb_enabled: bool = False
    bb_period: Period = 20
    bb_std: float = Field(2.0, gt=0.0, le=10.0)
    bb_touch_lookback: int = Field(30, ge=1, le=1000)
    bb_recovery_sustain_candles: int = Field(1, ge=1, le=1000)
    require_price_above_bb_lower: bool = False
    volume_period: int = Field(20, ge=1, le=1000)
    volume_ratio: float | None = Field(None, ge=0.0, le=1000.0)
    volume_min_ratio: float | None = Field(None, ge=0.0, le=1000.0)
    volume_surge_check: bool = False
    volume_surge_ratio: float = Field(2.0, gt=0.0, le=1000.0)
    volume_surge_window: int = Field(3, ge=1, le=1000)

    @model_validator(mode="after")
    def _check(self) -> EntryParams:
        if self.bb_recovery_sustain_candles >= self.bb_touch_lookback:
            raise ValueError("bb_recovery_sustain_candles must be below bb_touch_lookback")
        return self

    def candles_needed(self) -> list[tuple[str, int]]:
        """Closed candles each setting needs before its indicator has a value to compare."""
        return [
            ("rsi_period", self.rsi_period + 1),
            ("rsi_short_period", self.rsi_short_period + self.rsi_7_recovery_lookback),
            ("ma_period", self.ma_period + 1),
            ("bb_period", self.bb_period + self.bb_touch_lookback),
            ("volume_period", self.volume_period + self.volume_surge_window),
        ]


class ExitParams(Model):
    """Exit thresholds of one regime (SPEC §2.4). Percentages are fractions: 0.03 = 3 %."""

    take_profit_pct: PositiveFraction
    stop_loss_pct: PositiveFraction
    trailing_stop_pct: PositiveFraction
    trailing_stop_activation_pct: Fraction
    rsi_overbought: Rsi
    rsi_exit_min_profit_pct: float = Field(ge=-1.0, le=1.0)
    time_limit_hours: float = Field(gt=0.0, le=24.0 * 365)


class RegimeParams(Model):
    entry: EntryParams
    exit: ExitParams
    position_size_ratio: Fraction


class RegimeDetection(Model):
    ma_fast_period: Period = 50
    ma_slow_period: Period = 200
    bull_threshold_pct: float = Field(2.0, ge=-100.0, le=100.0)
    bear_threshold_pct: float = Field(-2.0, ge=-100.0, le=100.0)
    min_hourly_candles: int = Field(200, ge=2, le=5000)
    redis_ttl_s: int = Field(7200, ge=60, le=7 * 86400)

    @model_validator(mode="after")
    def _check(self) -> RegimeDetection:
        if self.ma_fast_period >= self.ma_slow_period:
            raise ValueError("ma_fast_period must be below ma_slow_period")
        if self.bear_threshold_pct > self.bull_threshold_pct:
            raise ValueError("bear_threshold_pct must not exceed bull_threshold_pct")
        if self.min_hourly_candles < self.ma_slow_period:
            raise ValueError("min_hourly_candles must be at least ma_slow_period")
        return self


class RiskLimits(Model):
    """Risk limits (SPEC §8.2 with DECISIONS: on equity, KST trading day)."""

    initial_balance_krw: Decimal = Field(Decimal("10000000"), gt=0, le=Decimal("1e15"))
    max_position_size: PositiveFraction = 0.05
    max_total_exposure: PositiveFraction = 0.20
    max_concurrent_positions: int = Field(3, ge=1, le=1000)
    max_daily_loss: PositiveFraction = 0.05
    max_daily_trades: int = Field(10, ge=1, le=100_000)
    cooldown_after_consecutive_losses: int = Field(3, ge=1, le=1000)
    cooldown_hours: float = Field(2.0, ge=0.0, le=24.0 * 30)
    high_volatility_factor: PositiveFraction = 0.5
    fee_buffer: Fraction = 0.002


class FillParams(Model):
    """Upbit-faithful paper fills shared by the live ledger and the backtester."""

    fee_rate: Decimal = Field(Decimal("0.0005"), ge=0, lt=1)
    slippage: Decimal = Field(Decimal("0.0005"), ge=0, lt=1)
    min_order_krw: Decimal = Field(Decimal("5000"), ge=0, le=Decimal("1e12"))
    quantity_decimals: int = Field(8, ge=0, le=12)


class HttpConfig(Model):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        return bind_host(value)


class UpbitConfig(Model):
    base_url: str = "https://api.upbit.com"
    # The candle stream; None: the base URL's host with wss/ws and /websocket/v1.
    ws_url: str | None = None
    timeout_s: float = Field(5.0, gt=0, le=120)
    requests_per_second: int = Field(10, ge=1, le=10)
    max_retries: int = Field(3, ge=0, le=10)


class CollectorConfig(Model):
    interval_s: float = Field(60.0, ge=1, le=600)
    offset_s: float = Field(2.0, ge=0, lt=60)
    candles_per_request: int = Field(200, ge=1, le=200)
    backfill_days: float = Field(9.0, gt=0, le=3650)
    recent_candles: int = Field(5, ge=2, le=200)
    source: Literal["websocket", "rest"] = "websocket"
    # A streamed minute with no later one is closed this long after its end.
    close_grace_s: float = Field(2.0, ge=0.5, le=30)
    # Ping interval; a missing pong within half of it drops the connection (Upbit idles 120 s).
    ws_ping_interval_s: float = Field(20.0, ge=1, le=100)
    ws_reconnect_min_s: float = Field(1.0, gt=0, le=60)
    ws_reconnect_max_s: float = Field(30.0, ge=1, le=600)

    @model_validator(mode="after")
    def _check(self) -> CollectorConfig:
        if self.ws_reconnect_min_s > self.ws_reconnect_max_s:
            raise ValueError("ws_reconnect_min_s must not exceed ws_reconnect_max_s")
        return self


class BotConfig(Model):
    interval_s: float = Field(60.0, ge=1, le=3600)
    offset_s: float = Field(6.0, ge=0, lt=60)
    candle_window: int = Field(200, ge=40, le=5000)
    min_candles: int = Field(40, ge=2)
    max_candle_age_s: Seconds = 120.0
    status_ttl_s: int = Field(300, ge=10, le=86400)
    symbol_timeout_s: Seconds = 20.0
    late_symbol_s: Seconds = 20.0
    drain_budget_s: float = Field(6.0, gt=0, le=600)

    @model_validator(mode="after")
    def _check(self) -> BotConfig:
        if self.min_candles > self.candle_window:
            raise ValueError("min_candles must not exceed candle_window")
        return self


class PrefilterConfig(Model):
    """AI pre-filter (SPEC §10.3)."""

    enabled: bool = True
    min_context_candles: int = Field(12, ge=0, le=1000)
    max_downtrend_ratio: Fraction = 0.85
    min_rebound_pct: float = Field(0.4, ge=-100.0, le=100.0)
    min_volume_recovery_ratio: float = Field(0.7, ge=0.0, le=1000.0)
    bear_feature_window: int = Field(8, ge=2, le=1000)


class GuardrailConfig(Model):
    """AI guardrails (SPEC §11): budgets, cooldowns and error streaks."""

    reject_cooldown_minutes: tuple[int, int, int] = (5, 10, 15)
    reject_cooldown_window_min: int = Field(30, ge=1, le=10_080)
    max_calls_per_hour: int = Field(20, ge=0, le=100_000)
    max_calls_per_day: int = Field(120, ge=0, le=1_000_000)
    credit_block_minutes: int = Field(60, ge=1, le=10_080)
    error_streak_threshold: int = Field(5, ge=1, le=1000)
    error_block_minutes: int = Field(30, ge=1, le=10_080)


class ModelPrice(Model):
    """USD per million tokens, for the cost recorded with each decision (list prices)."""

    input_per_mtok: Decimal = Field(ge=0)
    output_per_mtok: Decimal = Field(ge=0)  # thinking tokens are billed as output
    cache_write_per_mtok: Decimal = Field(ge=0)
    cache_read_per_mtok: Decimal = Field(ge=0)


class ModelSettings(Model):
    """Request settings of one model id (what it accepts differs: EXTERNAL_APIS §9.A.4)."""

    max_tokens: int = Field(1024, ge=64)  # thinking counts against it: size it for both
    effort: Literal["low", "medium", "high", "xhigh", "max"] | None = None  # None: not sent
    thinking: Literal["adaptive", "between_tools", "disabled"] | None = None  # None: default


def _current_prices() -> dict[str, ModelPrice]:
    """List prices of the default models (EXTERNAL_APIS §9.A.1), so the defaults are priced."""
    d = Decimal
    return {
        "claude-sonnet-5-5": ModelPrice(
            input_per_mtok=d("2"), output_per_mtok=d("10"),
            cache_write_per_mtok=d("2.5"), cache_read_per_mtok=d("0.10"),
        ),
        "claude-haiku-5-5": ModelPrice(
            input_per_mtok=d("0.10"), output_per_mtok=d("0.50"),
            cache_write_per_mtok=d("0.125"), cache_read_per_mtok=d("0.01"),
        ),
    }  # fmt: skip


class AiConfig(Model):
    mode: Literal["auto", "llm", "off", "replay"] = "auto"
    models: dict[Literal["dev", "prod"], str] = Field(
        default_factory=lambda: {"dev": "claude-haiku-5-5", "prod": "claude-sonnet-5-5"}  # type: ignore[arg-type]
    )
    prices: dict[str, ModelPrice] = Field(default_factory=_current_prices)
    model_settings: dict[str, ModelSettings] = Field(default_factory=dict)
    on_unavailable: Literal["reject", "rules_only"] = "reject"
    timeout_s: float = Field(60.0, gt=0, le=600)
    attempt_timeout_s: float = Field(25.0, gt=0, le=600)
    max_attempts: int = Field(2, ge=1, le=5)
    max_concurrency: int = Field(3, ge=1, le=100)
    min_confidence: int = Field(60, ge=0, le=100)
    context_hours: int = Field(24, ge=1, le=24 * 30)
    context_lookback_hours: int = Field(36, ge=1, le=24 * 60)
    model_check_timeout_s: float = Field(10.0, gt=0, le=600)
    prefilter: PrefilterConfig = PrefilterConfig()
    guardrails: GuardrailConfig = GuardrailConfig()

    @model_validator(mode="after")
    def _priced(self) -> AiConfig:
        missing = {"dev", "prod"} - set(self.models)
        if missing:
            raise ValueError(f"ai.models: set {' and '.join(sorted(missing))} (LLM_MODE picks one)")
        for role, model in self.models.items():
            if model not in self.prices:
                raise ValueError(
                    f"ai.prices.{model}: missing; ai.models.{role} is {model} and every "
                    "configured model needs input_per_mtok, output_per_mtok, "
                    "cache_write_per_mtok and cache_read_per_mtok"
                )
        return self

    def settings_for(self, model: str) -> ModelSettings:
        return self.model_settings.get(model, ModelSettings())


class VolatilityConfig(Model):
    threshold_pct: float = Field(2.0, gt=0, le=100)
    lookback_candles: int = Field(1000, ge=100, le=100_000)
    min_candles: int = Field(500, ge=100, le=100_000)
    min_returns: int = Field(100, ge=10, le=100_000)

    @model_validator(mode="after")
    def _check(self) -> VolatilityConfig:
        if self.min_candles > self.lookback_candles:
            raise ValueError("min_candles must not exceed lookback_candles")
        if self.min_returns >= self.min_candles:
            raise ValueError("min_returns must be below min_candles")
        return self


class ScheduleConfig(Model):
    regime_minute: int = Field(1, ge=0, le=59)
    volatility_time_utc: str = "00:05"
    report_time_local: str = "22:00"
    regime_misfire_grace_s: int = Field(300, ge=1, le=86400)
    volatility_misfire_grace_s: int = Field(3600, ge=1, le=86400)
    report_misfire_grace_s: int = Field(7200, ge=1, le=86400)

    @field_validator("volatility_time_utc", "report_time_local")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        hh, _, mm = value.partition(":")
        if not (hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60):
            raise ValueError("expected HH:MM")
        return value


class ReportConfig(Model):
    """The daily report's summary model. gpt-6-luna is a reasoning model: no temperature,
    a reasoning effort, and an output cap that covers reasoning and answer together."""

    openai_model: str = "gpt-6-luna"
    reasoning_effort: Literal["none", "low", "medium", "high", "xhigh", "max"] | None = "low"
    temperature: float | None = Field(None, ge=0, le=2)  # only for non-reasoning models
    max_completion_tokens: int = Field(1024, ge=16, le=100_000)
    timeout_s: float = Field(30.0, gt=0, le=600)


class NotifyConfig(Model):
    enabled: bool = True
    poll_interval_s: float = Field(2.0, gt=0, le=600)
    # Failed sends are retried with backoff until the row is this old, then given up on.
    max_age_h: float = Field(24.0, gt=0, le=24 * 30)
    backoff_base_s: float = Field(1.0, ge=0, le=3600)
    backoff_max_s: float = Field(1800.0, ge=0, le=86400)
    timeout_s: float = Field(10.0, gt=0, le=120)  # connecting and sending the request
    # Waiting for Discord's answer once the message is sent: giving up early would send the
    # message again although Discord may have accepted it.
    reply_timeout_s: float = Field(120.0, gt=0, le=600)


class HealthConfig(Model):
    # Newest candle older than this (since it closed) makes /health degraded.
    max_candle_age_s: float = Field(180.0, ge=60, le=86400)


class LogConfig(Model):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["auto", "json", "console"] = "auto"


class AppConfig(Model):
    """Everything the YAML file may say. Unknown keys are an error."""

    symbols: tuple[str, ...] = ("KRW-BTC", "KRW-ETH", "KRW-XRP", "KRW-SOL", "KRW-DOGE")
    timezone: str = "Asia/Seoul"
    strategy_name: str = "AdaptiveMeanReversion"
    state_dir: str = "./var"
    http: HttpConfig = HttpConfig()
    upbit: UpbitConfig = UpbitConfig()
    collector: CollectorConfig = CollectorConfig()
    bot: BotConfig = BotConfig()
    regime_detection: RegimeDetection = RegimeDetection()
    # Keys are validated below; typed as str so every Mapping[str, RegimeParams] accepts it.
    regimes: dict[str, RegimeParams]
    risk: RiskLimits = RiskLimits()
    fills: FillParams = FillParams()
    ai: AiConfig = AiConfig()
    volatility: VolatilityConfig = VolatilityConfig()
    schedules: ScheduleConfig = ScheduleConfig()
    report: ReportConfig = ReportConfig()
    notify: NotifyConfig = NotifyConfig()
    health: HealthConfig = HealthConfig()
    log: LogConfig = LogConfig()

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one symbol is required")
        for sym in value:
            if not SYMBOL_RE.match(sym):
                raise ValueError(f"{sym!r} is not an upper-case KRW market such as KRW-BTC")
        if len(set(value)) != len(value):
            raise ValueError("symbols must be unique")
        return value

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("regimes")
    @classmethod
    def _all_regimes(cls, value: dict[str, RegimeParams]) -> dict[str, RegimeParams]:
        missing = {"BULL", "SIDEWAYS", "BEAR"} - set(value)
        if missing:
            raise ValueError(f"missing regimes: {', '.join(sorted(missing))}")
        unknown = set(value) - {"BULL", "SIDEWAYS", "BEAR"}
        if unknown:
            raise ValueError(
                f"unknown regimes: {', '.join(sorted(unknown))} (BULL, SIDEWAYS, BEAR)"
            )
        return value

    @field_validator("state_dir")
    @classmethod
    def _state_dir(cls, value: str) -> str:
        if not value or "\0" in value:
            raise ValueError("must be a directory path")
        return value

    @model_validator(mode="after")
    def _fits_together(self) -> AppConfig:
        """Rules across sections: take profit pays for the round trip, periods fit the window."""
        fills = self.fills
        round_trip = 2 * (fills.fee_rate + fills.slippage)
        window = self.bot.candle_window
        for name, regime in self.regimes.items():
            where = f"regimes.{name}"
            tp = regime.exit.take_profit_pct
            if Decimal(str(tp)) <= round_trip:
                raise ValueError(
                    f"{where}.exit.take_profit_pct: {tp:g} is not above the round-trip cost "
                    f"{round_trip.normalize():f} (2 x (fills.fee_rate + fills.slippage)): "
                    "every take profit would lose money"
                )
            for field, needed in regime.entry.candles_needed():
                if needed > window:
                    raise ValueError(
                        f"{where}.entry.{field}: needs {needed} closed candles, more than "
                        f"bot.candle_window ({window})"
                    )
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


SYMBOL_RE = re.compile(r"^KRW-[A-Z0-9]{1,16}$")
HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")


def bind_host(value: str) -> str:
    """An IP address (``[::1]`` is taken as ``::1``) or a host name; never spaces or URLs."""
    host = value.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not HOST_RE.match(host):
        raise ValueError("expected an IP address or a host name such as 127.0.0.1")
    return host


def is_loopback(host: str) -> bool:
    """True only for addresses that cannot be reached from another machine."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        # A host name other than localhost may resolve anywhere: treat it as exposed.
        return False


def _url(value: str, schemes: tuple[str, ...], *, need_host: bool = True) -> str:
    """A URL with one of ``schemes``, a valid port and (usually) a host. The value is a
    secret, so messages never repeat it."""
    try:
        parts = urlsplit(value)
        port = parts.port  # raises on a port that is not a number in 0..65535
        host = parts.hostname
    except ValueError as exc:
        raise ValueError(f"not a valid URL ({exc})") from None
    if parts.scheme not in schemes:
        raise ValueError(f"expected a URL starting with {' or '.join(s + '://' for s in schemes)}")
    if need_host and not host:
        raise ValueError("the URL names no host")
    del port
    return value


class Environment(Model):
    """What comes from the process environment: URLs and secrets."""

    database_url: SecretStr | None = None
    redis_url: SecretStr | None = None
    # Put before every Redis key: lets a second instance (or the test suite) share a server.
    redis_key_prefix: str = ""
    upbit_url: str | None = None
    upbit_ws_url: str | None = None
    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str | None = None
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    discord_webhook_url: SecretStr | None = None
    discord_webhooks: dict[str, SecretStr] = Field(default_factory=dict)
    llm_mode: Literal["dev", "prod"] = "dev"
    http_host: str | None = None
    http_port: int | None = Field(None, ge=0, le=65535)
    dashboard_token: SecretStr | None = None
    state_directory: str | None = None

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            # postgresql:///db?host=/run/postgresql (a Unix socket) names no host: allowed.
            _url(value.get_secret_value(), ("postgresql", "postgres"), need_host=False)
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return value
        url = value.get_secret_value()
        _url(url, ("redis", "rediss", "unix"), need_host=not url.startswith("unix:"))
        parts = urlsplit(url)
        if parts.scheme == "unix":
            if not parts.path:
                raise ValueError("unix:// URL needs the socket path")
        elif parts.path.strip("/") and not parts.path.strip("/").isdigit():
            raise ValueError("the database after the host must be a number, e.g. /0")
        return value

    @field_validator("upbit_url", "anthropic_base_url", "openai_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return None if value is None else _url(value, ("http", "https"))

    @field_validator("discord_webhook_url")
    @classmethod
    def _webhook(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _url(value.get_secret_value(), ("http", "https"))
        return value

    @field_validator("http_host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        return None if value is None else bind_host(value)

    @field_validator("state_directory")
    @classmethod
    def _state_directory(cls, value: str | None) -> str | None:
        if value is not None and "\0" in value:
            raise ValueError("must be a directory path")
        return value


NOTIFY_KINDS = ("trade", "ai-decision", "risk", "regime-change", "daily-report", "system")

ENV_NAMES = {
    "database_url": "COINPILOT_DATABASE_URL",
    "redis_url": "COINPILOT_REDIS_URL",
    "redis_key_prefix": "COINPILOT_REDIS_KEY_PREFIX",
    "upbit_url": "COINPILOT_UPBIT_URL",
    "upbit_ws_url": "COINPILOT_UPBIT_WS_URL",
    "anthropic_api_key": "ANTHROPIC_API_KEY",
    "anthropic_base_url": "ANTHROPIC_BASE_URL",
    "openai_api_key": "OPENAI_API_KEY",
    "openai_base_url": "OPENAI_BASE_URL",
    "discord_webhook_url": "COINPILOT_DISCORD_WEBHOOK_URL",
    "llm_mode": "LLM_MODE",
    "http_host": "COINPILOT_HTTP_HOST",
    "http_port": "COINPILOT_HTTP_PORT",
    "dashboard_token": "COINPILOT_DASHBOARD_TOKEN",
    "state_directory": "STATE_DIRECTORY",
}


class Settings(Model):
    """The effective configuration: YAML merged with the environment."""

    app: AppConfig
    env: Environment
    source: str

    @property
    def ai_mode(self) -> Literal["llm", "off", "replay"]:
        mode = self.app.ai.mode
        if mode == "auto":
            return "llm" if self.env.anthropic_api_key else "off"
        return mode

    @property
    def model_id(self) -> str:
        return self.app.ai.models.get(self.env.llm_mode, self.app.ai.models["dev"])

    @property
    def state_dir(self) -> Path:
        return Path(self.env.state_directory or self.app.state_dir)

    @property
    def redis_key_prefix(self) -> str:
        return self.env.redis_key_prefix

    def webhook_for(self, kind: str) -> SecretStr | None:
        return self.env.discord_webhooks.get(kind) or self.env.discord_webhook_url


def _field_path(loc: tuple[int | str, ...]) -> str:
    # pydantic marks an error in a mapping's key with "[key]": the path already names it.
    return ".".join(str(part) for part in loc if part != "[key]")


def _describe(exc: ValidationError, prefix: str = "") -> str:
    lines = []
    for err in exc.errors(include_url=False):
        path = _field_path(err["loc"])
        msg = err["msg"]
        if not path and not prefix and err["type"] == "value_error":
            # A rule across sections names its own fields.
            lines.append(msg.removeprefix("Value error, "))
            continue
        where = f"{prefix}{path}" if path else prefix.rstrip(".") or "config"
        if err["type"] == "extra_forbidden":
            msg = "unknown key (not allowed)"
        got = err.get("input")
        shown = (
            ""
            if err["type"] in ("extra_forbidden", "missing") or isinstance(got, dict)
            else f" (got {got!r})"
        )
        lines.append(f"{where}: {msg}{shown}")
    return "; ".join(lines)


def _read_env(environ: Mapping[str, str]) -> Environment:
    raw: dict[str, Any] = {}
    for field, name in ENV_NAMES.items():
        value = environ.get(name)
        if value not in (None, ""):
            raw[field] = value
    hooks = {}
    for kind in NOTIFY_KINDS:
        name = f"COINPILOT_DISCORD_WEBHOOK_URL_{kind.upper().replace('-', '_')}"
        value = environ.get(name)
        if value:
            try:
                _url(value, ("http", "https"))
            except ValueError as exc:
                raise ConfigError(f"environment variable {name}: {exc}") from None
            hooks[kind] = value
    raw["discord_webhooks"] = hooks
    try:
        return Environment.model_validate(raw)
    except ValidationError as exc:
        by_field = {v: k for k, v in ENV_NAMES.items()}
        parts = []
        for err in exc.errors(include_url=False):
            field = str(err["loc"][0]) if err["loc"] else ""
            name = ENV_NAMES.get(field, by_field.get(field, field))
            parts.append(f"environment variable {name}: {err['msg'].removeprefix('Value error, ')}")
        raise ConfigError("; ".join(parts)) from None


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """Safe YAML that refuses a key given twice (the second would silently win)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue  # an unhashable key: construct_mapping reports it
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
        return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]


def _parse(chosen: Path) -> dict[Any, Any]:
    try:
        raw = chosen.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {chosen}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{chosen}: not UTF-8 text (byte {exc.start})") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" line {mark.line + 1}:" if mark is not None else ""
        raise ConfigError(f"{chosen}:{where} not valid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{chosen}: not valid YAML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{chosen}: nested too deeply to be a config file") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{chosen}: the top level must be a mapping of keys")
    return data


SECTIONS = tuple(
    name for name, f in AppConfig.model_fields.items() if isinstance(f.default, BaseModel)
)


def load_config(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read the YAML file and the environment and check them: the one validation both
    `run` and `check-config` go through. Raises ConfigError naming the bad field."""
    environ = os.environ if environ is None else environ
    chosen = Path(path or environ.get("COINPILOT_CONFIG") or DEFAULT_CONFIG_PATH)
    data = _parse(chosen)
    for section in SECTIONS:
        if section in data and not isinstance(data[section], dict):
            got = type(data[section]).__name__
            raise ConfigError(f"{section}: must be a mapping of keys (got {got})")
    env = _read_env(environ)
    if env.http_host is not None:
        data.setdefault("http", {})["host"] = env.http_host
    if env.http_port is not None:
        data.setdefault("http", {})["port"] = env.http_port
    if env.upbit_url:
        data.setdefault("upbit", {})["base_url"] = env.upbit_url
    if env.upbit_ws_url:
        data.setdefault("upbit", {})["ws_url"] = env.upbit_ws_url
    settings = Settings(app=parse_app(data), env=env, source=str(chosen))
    require_token_when_exposed(settings)
    return settings


def parse_app(data: Mapping[str, Any]) -> AppConfig:
    """The YAML mapping as an ``AppConfig``, or ConfigError naming the bad field."""
    try:
        return AppConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def require_token_when_exposed(settings: Settings) -> str | None:
    """The configured dashboard token; ConfigError when the bind is public and none is set."""
    token = settings.env.dashboard_token
    value = token.get_secret_value() if token is not None else None
    host = settings.app.http.host
    if not is_loopback(host) and not value:
        raise ConfigError(
            f"http.host: {host!r} is reachable from other machines: set "
            "COINPILOT_DASHBOARD_TOKEN (or bind http.host to 127.0.0.1)"
        )
    if value is not None and len(value) < 16:
        raise ConfigError(
            "environment variable COINPILOT_DASHBOARD_TOKEN: use at least 16 characters"
        )
    return value


def redacted(settings: Settings) -> dict[str, Any]:
    """The effective configuration as plain data with every secret masked."""
    env = settings.env.model_dump(mode="json")
    for key, value in list(env.items()):
        if isinstance(getattr(settings.env, key), SecretStr):
            env[key] = "********"
        elif key == "discord_webhooks":
            env[key] = dict.fromkeys(value, "********")
    return {
        "source": settings.source,
        "ai_mode": settings.ai_mode,
        "model_id": settings.model_id,
        "config": settings.app.model_dump(mode="json"),
        "environment": env,
    }
