-- requires-extension: timescaledb
-- market_data becomes a hypertable where TimescaleDB exists; a plain table otherwise.
CREATE EXTENSION IF NOT EXISTS timescaledb;
SELECT create_hypertable('market_data', 'ts', chunk_time_interval => interval '7 days',
                         migrate_data => true, if_not_exists => true);
