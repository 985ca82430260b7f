-- fct_ping_metric_timing: how long each metric took to collect (/usage_ping_metadata, 15.0+).
-- Grain: report x metrics_path. Class: Orange (instance uuid).
CREATE TABLE IF NOT EXISTS fct_ping_metric_timing
(
    report_id     UInt64,
    instance_uuid String,
    metrics_path  String,
    time_elapsed_s Nullable(Float64),
    error         String,
    received_at   DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY (instance_uuid, metrics_path, report_id)
COMMENT 'Orange. Grain: one row per metadata report x metric.';
