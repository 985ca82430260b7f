-- How to read each fct_ping_instance_metric row, and the exact value when metric_value cannot hold it
-- (docs/ping_marts.md, "Service Ping edge cases"). Rows written before this migration read value_kind from
-- error_value (error_marker or number); their booleans show as number until a replay rewrites them.
ALTER TABLE fct_ping_instance_metric
    ADD COLUMN IF NOT EXISTS value_kind LowCardinality(String) DEFAULT if(error_value != 0, 'error_marker', 'number')
        COMMENT 'number (a count), boolean (true/false as 1/0), error_marker (-1, -2, -1000 in error_value), negative (any other negative value), too_large (beyond +-2^53, not exact in Float64); metric_value is NULL for the last three'
        AFTER error_value,
    ADD COLUMN IF NOT EXISTS value_text String DEFAULT ''
        COMMENT 'negative and too_large rows: the value exactly as the instance sent it; empty otherwise'
        AFTER value_kind;

ALTER TABLE fct_ping_instance
    ADD COLUMN IF NOT EXISTS flagged_metric_count UInt32 DEFAULT 0
        COMMENT 'metrics of the ping with value_kind negative or too_large (kept as text, never counted)'
        AFTER error_metric_count;
