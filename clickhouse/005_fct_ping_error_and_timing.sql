-- fct_ping_error: failure reports instances send to /usage_ping_errors when their ping could not be built.
-- Grain: one row per report (report_id = hash of uuid + time + message). Class: Orange (hostname).
CREATE TABLE IF NOT EXISTS fct_ping_error
(
    report_id     UInt64,
    instance_uuid String,
    hostname      String,
    version       String,
    message       String,
    elapsed_s     Nullable(Float64),
    reported_at   Nullable(DateTime64(3, 'UTC')),
    received_at   DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY (instance_uuid, report_id)
COMMENT 'Orange. Grain: one row per Service Ping error report.';

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
