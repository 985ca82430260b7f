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
