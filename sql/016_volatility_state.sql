-- The volatility job's latest verdict per symbol. Redis holds the same for the bot's hot
-- path; this row is the truth it falls back to when a key is missing (Redis restarted empty)
-- or Redis is down, so a high-volatility symbol is never sized at full by accident.
CREATE TABLE volatility_state (
    symbol         varchar(20)      PRIMARY KEY,
    volatility_pct double precision NOT NULL,
    is_high        boolean          NOT NULL,
    status         varchar(20)      NOT NULL,
    computed_at    timestamptz      NOT NULL
);
