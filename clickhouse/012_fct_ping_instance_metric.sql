-- fct_ping_instance_metric: every numeric (and boolean, as 1/0) leaf of every valid ping.
-- Grain: ping_id x metrics_path. Error markers (-1, -2, -1000, any negative) are kept in error_value
-- with metric_value NULL: they are never counts. Definition attributes are attached by the agent.
-- Class: Orange (ties usage to an installation).
CREATE TABLE IF NOT EXISTS fct_ping_instance_metric
(
    ping_id                    UInt64,
    installation_id            String,
    recorded_at                DateTime64(3, 'UTC'),
    metrics_path               String,
    metric_value               Nullable(Float64) COMMENT 'NULL when the instance reported an error marker',
    error_value                Int32 COMMENT '0, or the negative marker the instance sent (-1 timeout, -2 error, -1000 deprecated)',
    -- how to read the row, and the exact value when metric_value cannot hold it (docs/ping_marts.md, "Service Ping
    -- edge cases")
    value_kind                 LowCardinality(String) DEFAULT if(error_value != 0, 'error_marker', 'number')
        COMMENT 'number (a count), boolean (true/false as 1/0), error_marker (-1, -2, -1000 in error_value), negative (any other negative value), too_large (beyond +-2^53, not exact in Float64); metric_value is NULL for the last three',
    value_text                 String DEFAULT ''
        COMMENT 'negative and too_large rows: the value exactly as the instance sent it; empty otherwise',
    is_defined                 UInt8 COMMENT '1 when the path is in the metric dictionary',
    time_frame                 LowCardinality(String),
    data_source                LowCardinality(String),
    product_section            LowCardinality(String),
    product_stage              LowCardinality(String),
    product_group              LowCardinality(String),
    tier                       Array(LowCardinality(String)),
    performance_indicator_type Array(LowCardinality(String)),
    metric_status              LowCardinality(String)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(recorded_at)
ORDER BY (metrics_path, installation_id, recorded_at, ping_id)
COMMENT 'Orange. Grain: one row per ping x metrics_path. Query with FINAL to be exact before merges.';
