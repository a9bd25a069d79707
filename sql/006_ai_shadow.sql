-- Shadow outcomes of AI-reviewed entry candidates: what the exit rules would have done had
-- the entry been taken at the candidate's price. Written once the simulated exit is known,
-- for approved and rejected candidates alike, so `coinpilot ai-report` can compare them.
CREATE TABLE ai_shadow_outcomes (
    decision_id  bigint PRIMARY KEY REFERENCES agent_decisions (id) ON DELETE CASCADE,
    symbol       varchar(20) NOT NULL,
    entry_ts     timestamptz NOT NULL,
    entry_price  numeric     NOT NULL CHECK (entry_price > 0),
    exit_ts      timestamptz NOT NULL,
    exit_price   numeric     NOT NULL CHECK (exit_price > 0),
    exit_reason  varchar(20) NOT NULL,
    pnl_pct      numeric     NOT NULL,   -- net of both fees
    evaluated_at timestamptz NOT NULL DEFAULT now()
);
