-- Core schema. Money and quantities are NUMERIC (exact); every timestamp is timestamptz (UTC).

CREATE TABLE market_data (
    symbol      varchar(20)  NOT NULL,
    interval    varchar(10)  NOT NULL,
    ts          timestamptz  NOT NULL,          -- candle start
    open_price  numeric      NOT NULL CHECK (open_price > 0),
    high_price  numeric      NOT NULL CHECK (high_price > 0),
    low_price   numeric      NOT NULL CHECK (low_price > 0),
    close_price numeric      NOT NULL CHECK (close_price > 0),
    volume      numeric      NOT NULL CHECK (volume >= 0),
    value_krw   numeric,
    PRIMARY KEY (symbol, interval, ts),
    CHECK (low_price <= high_price)
);

-- One row: the paper account. Cash, realized PnL and fees move only inside ledger transactions.
CREATE TABLE account_state (
    id                 integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    initial_balance    numeric NOT NULL CHECK (initial_balance > 0),
    cash               numeric NOT NULL CHECK (cash >= 0),
    realized_pnl       numeric NOT NULL DEFAULT 0,   -- gross of fees
    fees_paid          numeric NOT NULL DEFAULT 0 CHECK (fees_paid >= 0),
    consecutive_losses integer NOT NULL DEFAULT 0,   -- survives the day boundary
    cooldown_until     timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- Open positions only; the primary key is the one-open-position-per-symbol rule.
CREATE TABLE positions (
    symbol          varchar(20) PRIMARY KEY,
    quantity        numeric     NOT NULL CHECK (quantity > 0),
    avg_price       numeric     NOT NULL CHECK (avg_price > 0),   -- fill price incl. slippage
    cost_basis      numeric     NOT NULL CHECK (cost_basis > 0),  -- quantity * avg_price
    regime          varchar(10) NOT NULL,
    high_water_mark numeric     NOT NULL,
    opened_at       timestamptz NOT NULL,
    entry_trade_id  uuid,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE trading_history (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    idempotency_key text        NOT NULL UNIQUE,   -- symbol|candle ts|side
    symbol          varchar(20) NOT NULL,
    side            varchar(4)  NOT NULL CHECK (side IN ('BUY', 'SELL')),
    order_type      varchar(10) NOT NULL DEFAULT 'MARKET',
    status          varchar(10) NOT NULL DEFAULT 'FILLED',
    price           numeric     NOT NULL CHECK (price > 0),
    quantity        numeric     NOT NULL CHECK (quantity > 0),
    notional        numeric     NOT NULL,           -- price * quantity
    fee             numeric     NOT NULL DEFAULT 0,
    realized_pnl    numeric,                        -- SELL: (price - avg) * qty, gross of fees
    entry_price     numeric,                        -- SELL: the position's average price
    strategy_name   varchar(50) NOT NULL,
    regime          varchar(10),
    high_water_mark numeric,
    exit_reason     varchar(30),
    signal_info     jsonb,
    candle_ts       timestamptz NOT NULL,
    executed_at     timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX trading_history_symbol_time ON trading_history (symbol, executed_at DESC);
CREATE INDEX trading_history_time ON trading_history (executed_at DESC);

-- Risk state of one trading day (a calendar day in the configured time zone, KST by default).
CREATE TABLE daily_risk_state (
    trade_date        date PRIMARY KEY,
    opening_equity    numeric NOT NULL,
    realized_pnl      numeric NOT NULL DEFAULT 0,
    fees_paid         numeric NOT NULL DEFAULT 0,
    trade_count       integer NOT NULL DEFAULT 0,
    buy_count         integer NOT NULL DEFAULT 0,
    sell_count        integer NOT NULL DEFAULT 0,
    is_trading_halted boolean NOT NULL DEFAULT false,
    halt_reason       text,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE risk_audit (
    id               bigserial PRIMARY KEY,
    violation_type   varchar(50) NOT NULL,
    symbol           varchar(20),
    description      text,
    details          jsonb,
    related_order_id uuid REFERENCES trading_history (id),
    ts               timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX risk_audit_time ON risk_audit (ts DESC);

CREATE TABLE regime_history (
    id             bigserial PRIMARY KEY,
    symbol         varchar(20) NOT NULL,
    regime         varchar(10) NOT NULL,
    ma_fast        numeric,
    ma_slow        numeric,
    diff_pct       numeric,
    hourly_candles integer NOT NULL DEFAULT 0,
    detected_at    timestamptz NOT NULL
);
CREATE INDEX regime_history_symbol_time ON regime_history (symbol, detected_at DESC);

CREATE TABLE agent_decisions (
    id                bigserial PRIMARY KEY,
    symbol            varchar(20) NOT NULL,
    strategy_name     varchar(50) NOT NULL,
    decision          varchar(20) NOT NULL,           -- CONFIRM or REJECT (final verdict)
    reason_code       varchar(40),
    reasoning         text,
    confidence        integer,
    model_used        varchar(80),
    price_at_decision numeric,
    regime            varchar(10),
    candle_ts         timestamptz,
    latency_ms        integer,
    input_tokens      integer,
    output_tokens     integer,
    cost_usd          numeric,
    input_hash        varchar(64),
    request           jsonb,
    raw_output        jsonb,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agent_decisions_symbol_time ON agent_decisions (symbol, created_at DESC);
CREATE INDEX agent_decisions_time ON agent_decisions (created_at DESC);
CREATE INDEX agent_decisions_hash ON agent_decisions (input_hash);

-- Notifications, written in the same transaction as what they announce, sent after commit.
CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    kind            varchar(20) NOT NULL,
    payload         jsonb       NOT NULL,
    status          varchar(10) NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sent', 'failed', 'disabled')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz
);
CREATE INDEX outbox_pending ON outbox (next_attempt_at) WHERE status = 'pending';

-- Last run of each scheduled job, for /health, the dashboard and `coinpilot status`.
CREATE TABLE job_runs (
    job         varchar(40) PRIMARY KEY,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz,
    status      varchar(10) NOT NULL,
    detail      text
);
