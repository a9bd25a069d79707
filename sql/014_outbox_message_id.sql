-- The id Discord gave the message (?wait=true answers with it): proof of delivery, kept
-- with the row.
ALTER TABLE outbox ADD COLUMN discord_message_id text;
