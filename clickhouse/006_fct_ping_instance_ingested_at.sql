-- When the sink stored each ping: received_at (collector) to ingested_at (queryable) is the pipeline's
-- end-to-end latency, read by the benchmarks and by freshness checks.
ALTER TABLE fct_ping_instance ADD COLUMN IF NOT EXISTS ingested_at DateTime64(3, 'UTC') DEFAULT now64(3);
