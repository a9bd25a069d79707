-- The operator's controls. One row: whether new entries are paused (exits keep running),
-- read by the bot every cycle, so a running daemon honours a change within one cycle.
CREATE TABLE control_state (
    id             integer     PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    entries_paused boolean     NOT NULL DEFAULT false,
    reason         text,
    changed_by     text,
    changed_at     timestamptz NOT NULL DEFAULT now()
);
INSERT INTO control_state (id) VALUES (1);

-- A paper-account reset starts the account again at the initial balance; the trades before
-- it stay in trading_history, and their totals move here so the ledger invariant still
-- checks every row of the history.
ALTER TABLE account_state
    ADD COLUMN realized_pnl_before_reset numeric NOT NULL DEFAULT 0,
    ADD COLUMN fees_before_reset         numeric NOT NULL DEFAULT 0,
    ADD COLUMN reset_at                  timestamptz;
