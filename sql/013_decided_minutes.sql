-- The newest minute the bot has decided, per symbol. Decisions are made minute by minute in
-- order, so this one row says which minutes are done: after a restart the bot continues
-- with the next one instead of deciding a minute twice or skipping it.
CREATE TABLE bot_decided_minutes (
    symbol     varchar(20) PRIMARY KEY,
    minute     timestamptz NOT NULL,
    decided_at timestamptz NOT NULL DEFAULT now()
);
