"""Configuration: one YAML file for tuning, the environment for secrets and URLs.

Rules this module keeps:
- every model is frozen and forbids unknown keys, so a typo in the YAML stops start-up;
- a bad value raises ``ConfigError`` naming the field path (``regimes.BULL.entry.rsi_14_max``);
- secrets are ``SecretStr`` and never appear in ``repr``, logs or ``check-config`` output;
- money is ``Decimal``; strategy thresholds are floats because the indicators are floats.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
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
PositiveFraction = Annotated[float, Field(gt=0.0, le=1.0)]
Rsi = Annotated[float, Field(ge=0.0, le=100.0)]


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EntryParams(Model):
    """Entry thresholds of one regime (SPEC §2.3, C1 values in the shipped YAML)."""

    rsi_period: int = Field(14, ge=2)
    rsi_short_period: int = Field(7, ge=2)
    rsi_14_max: Rsi
    rsi_7_trigger: Rsi
    rsi_7_recover: Rsi
    rsi_7_recovery_lookback: int = Field(5, ge=2)
    min_rsi_7_bounce_pct: float | None = Field(None, ge=0.0)
    ma_condition: Literal["crossover", "proximity", "proximity_or_above", "none"]
    ma_period: int = Field(20, ge=2)
    ma_proximity_pct: float = Field(0.97, gt=0.0, le=2.0)
    bb_enabled: bool = False
    bb_period: int = Field(20, ge=2)
    bb_std: float = Field(2.0, gt=0.0)
    bb_touch_lookback: int = Field(30, ge=1)
    bb_recovery_sustain_candles: int = Field(1, ge=1)
    require_price_above_bb_lower: bool = False
    volume_period: int = Field(20, ge=1)
    volume_ratio: float | None = Field(None, ge=0.0)
    volume_min_ratio: float | None = Field(None, ge=0.0)
    volume_surge_check: bool = False
    volume_surge_ratio: float = Field(2.0, gt=0.0)
    volume_surge_window: int = Field(3, ge=1)

    @model_validator(mode="after")
    def _check(self) -> EntryParams:
        if self.bb_recovery_sustain_candles >= self.bb_touch_lookback:
            raise ValueError("bb_recovery_sustain_candles must be below bb_touch_lookback")
        return self


class ExitParams(Model):
    """Exit thresholds of one regime (SPEC §2.4). Percentages are fractions: 0.03 = 3 %."""

    take_profit_pct: PositiveFraction
    stop_loss_pct: PositiveFraction
    trailing_stop_pct: PositiveFraction
    trailing_stop_activation_pct: Fraction
    rsi_overbought: Rsi
    rsi_exit_min_profit_pct: float = Field(ge=-1.0, le=1.0)
    time_limit_hours: float = Field(gt=0.0)


class RegimeParams(Model):
    entry: EntryParams
    exit: ExitParams
    position_size_ratio: Fraction


class RegimeDetection(Model):
    ma_fast_period: int = Field(50, ge=2)
    ma_slow_period: int = Field(200, ge=2)
    bull_threshold_pct: float = 2.0
    bear_threshold_pct: float = -2.0
    min_hourly_candles: int = Field(200, ge=2)
    redis_ttl_s: int = Field(7200, ge=60)

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

    initial_balance_krw: Decimal = Field(Decimal("10000000"), gt=0)
    max_position_size: PositiveFraction = 0.05
    max_total_exposure: PositiveFraction = 0.20
    max_concurrent_positions: int = Field(3, ge=1)
    max_daily_loss: PositiveFraction = 0.05
    max_daily_trades: int = Field(10, ge=1)
    cooldown_after_consecutive_losses: int = Field(3, ge=1)
    cooldown_hours: float = Field(2.0, ge=0.0)
    high_volatility_factor: PositiveFraction = 0.5
    fee_buffer: Fraction = 0.002


class FillParams(Model):
    """Upbit-faithful paper fills shared by the live ledger and the backtester."""

    fee_rate: Decimal = Field(Decimal("0.0005"), ge=0, lt=1)
    slippage: Decimal = Field(Decimal("0.0005"), ge=0, lt=1)
    min_order_krw: Decimal = Field(Decimal("5000"), ge=0)
    quantity_decimals: int = Field(8, ge=0, le=12)


class HttpConfig(Model):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)


class UpbitConfig(Model):
    base_url: str = "https://api.upbit.com"
    # The candle stream; None: the base URL's host with wss/ws and /websocket/v1.
    ws_url: str | None = None
    timeout_s: float = Field(5.0, gt=0)
    requests_per_second: int = Field(10, ge=1, le=10)
    max_retries: int = Field(3, ge=0, le=10)


class CollectorConfig(Model):
    interval_s: float = Field(60.0, gt=0)
    offset_s: float = Field(2.0, ge=0, lt=60)
    candles_per_request: int = Field(200, ge=1, le=200)
    backfill_days: float = Field(9.0, gt=0)
    recent_candles: int = Field(5, ge=2, le=200)
    source: Literal["websocket", "rest"] = "websocket"
    # A streamed minute with no later one is closed this long after its end.
    close_grace_s: float = Field(2.0, ge=0.5, le=30, allow_inf_nan=False)
    # Ping interval; a missing pong within half of it drops the connection (Upbit idles 120 s).
    ws_ping_interval_s: float = Field(20.0, ge=1, le=100, allow_inf_nan=False)
    ws_reconnect_min_s: float = Field(1.0, gt=0, le=60, allow_inf_nan=False)
    ws_reconnect_max_s: float = Field(30.0, ge=1, le=600, allow_inf_nan=False)

    @model_validator(mode="after")
    def _check(self) -> CollectorConfig:
        if self.ws_reconnect_min_s > self.ws_reconnect_max_s:
            raise ValueError("ws_reconnect_min_s must not exceed ws_reconnect_max_s")
        return self


class BotConfig(Model):
    interval_s: float = Field(60.0, gt=0)
    offset_s: float = Field(6.0, ge=0, lt=60)
    candle_window: int = Field(200, ge=40)
    min_candles: int = Field(40, ge=2)
    max_candle_age_s: float = Field(120.0, gt=0)
    status_ttl_s: int = Field(300, ge=10)
    symbol_timeout_s: float = Field(20.0, gt=0)
    drain_budget_s: float = Field(6.0, gt=0)

    @model_validator(mode="after")
    def _check(self) -> BotConfig:
        if self.min_candles > self.candle_window:
            raise ValueError("min_candles must not exceed candle_window")
        return self


class PrefilterConfig(Model):
    """AI pre-filter (SPEC §10.3)."""

    enabled: bool = True
    min_context_candles: int = Field(12, ge=0)
    max_downtrend_ratio: Fraction = 0.85
    min_rebound_pct: float = 0.4
    min_volume_recovery_ratio: float = Field(0.7, ge=0.0)
    bear_feature_window: int = Field(8, ge=2)


class GuardrailConfig(Model):
    """AI guardrails (SPEC §11): budgets, cooldowns and error streaks."""

    reject_cooldown_minutes: tuple[int, int, int] = (5, 10, 15)
    reject_cooldown_window_min: int = Field(30, ge=1)
    max_calls_per_hour: int = Field(20, ge=0)
    max_calls_per_day: int = Field(120, ge=0)
    credit_block_minutes: int = Field(60, ge=1)
    error_streak_threshold: int = Field(5, ge=1)
    error_block_minutes: int = Field(30, ge=1)


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
    timeout_s: float = Field(60.0, gt=0)
    attempt_timeout_s: float = Field(25.0, gt=0)
    max_attempts: int = Field(2, ge=1, le=5)
    max_concurrency: int = Field(3, ge=1)
    min_confidence: int = Field(60, ge=0, le=100)
    context_hours: int = Field(24, ge=1)
    context_lookback_hours: int = Field(36, ge=1)
    model_check_timeout_s: float = Field(10.0, gt=0)
    prefilter: PrefilterConfig = PrefilterConfig()
    guardrails: GuardrailConfig = GuardrailConfig()

    @model_validator(mode="after")
    def _priced(self) -> AiConfig:
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
    threshold_pct: float = Field(2.0, gt=0)
    lookback_candles: int = Field(1000, ge=100)
    min_candles: int = Field(500, ge=100)
    min_returns: int = Field(100, ge=10)


class ScheduleConfig(Model):
    regime_minute: int = Field(1, ge=0, le=59)
    volatility_time_utc: str = "00:05"
    report_time_local: str = "22:00"
    regime_misfire_grace_s: int = Field(300, ge=1)
    volatility_misfire_grace_s: int = Field(3600, ge=1)
    report_misfire_grace_s: int = Field(7200, ge=1)

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
    max_completion_tokens: int = Field(1024, ge=16)
    timeout_s: float = Field(30.0, gt=0)


class NotifyConfig(Model):
    enabled: bool = True
    poll_interval_s: float = Field(2.0, gt=0)
    max_attempts: int = Field(3, ge=1, le=10)
    backoff_base_s: float = Field(1.0, ge=0)
    timeout_s: float = Field(10.0, gt=0)


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
            if not sym.startswith("KRW-") or sym != sym.upper() or len(sym) > 20:
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

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


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
    return ".".join(str(part) for part in loc)


def _describe(exc: ValidationError, prefix: str = "") -> str:
    lines = []
    for err in exc.errors(include_url=False):
        path = _field_path(err["loc"])
        where = f"{prefix}{path}" if path else prefix.rstrip(".") or "config"
        msg = err["msg"]
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
        value = environ.get(f"COINPILOT_DISCORD_WEBHOOK_URL_{kind.upper().replace('-', '_')}")
        if value:
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
            parts.append(f"environment variable {name}: {err['msg']}")
        raise ConfigError("; ".join(parts)) from None


def load_config(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read the YAML file and the environment; raise ConfigError naming the bad field."""
    environ = os.environ if environ is None else environ
    chosen = Path(path or environ.get("COINPILOT_CONFIG") or DEFAULT_CONFIG_PATH)
    try:
        text = chosen.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {chosen}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{chosen}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{chosen}: the top level must be a mapping of keys")
    env = _read_env(environ)
    if env.http_host is not None:
        data.setdefault("http", {})["host"] = env.http_host
    if env.http_port is not None:
        data.setdefault("http", {})["port"] = env.http_port
    if env.upbit_url:
        data.setdefault("upbit", {})["base_url"] = env.upbit_url
    if env.upbit_ws_url:
        data.setdefault("upbit", {})["ws_url"] = env.upbit_ws_url
    return Settings(app=parse_app(data), env=env, source=str(chosen))


def parse_app(data: Mapping[str, Any]) -> AppConfig:
    """The YAML mapping as an ``AppConfig``, or ConfigError naming the bad field."""
    try:
        return AppConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


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
