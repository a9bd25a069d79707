-- requires-extension: vector
-- Reserved for agent memory; created only where pgvector is available.
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE IF NOT EXISTS agent_memory (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_type varchar(20) NOT NULL,
    context    jsonb,
    decision   text,
    outcome    varchar(20),
    embedding  vector(1536),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS agent_memory_type ON agent_memory (agent_type);
