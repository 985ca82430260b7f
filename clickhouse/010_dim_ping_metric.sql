-- dim_ping_metric: the metric dictionary (schemas/metrics/**.yml), loaded by the worker at start.
-- Grain: one row per metrics_path; the newest load wins (ReplacingMergeTree on loaded_at).
-- Class: public (definitions only).
CREATE TABLE IF NOT EXISTS dim_ping_metric
(
    metrics_path               String,
    description                String,
    time_frame                 LowCardinality(String) COMMENT '7d, 28d, all or none',
    data_source                LowCardinality(String),
    data_category              LowCardinality(String),
    product_section            LowCardinality(String),
    product_stage              LowCardinality(String),
    product_group              LowCardinality(String),
    value_type                 LowCardinality(String),
    metric_status              LowCardinality(String),
    milestone                  String,
    tier                       Array(LowCardinality(String)),
    performance_indicator_type Array(LowCardinality(String)),
    is_smau                    UInt8,
    is_gmau                    UInt8,
    is_paid_gmau               UInt8,
    is_umau                    UInt8,
    loaded_at                  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(loaded_at)
ORDER BY metrics_path
COMMENT 'Public. Grain: one row per metrics_path. Query with FINAL.';
