-- dim_event_metric: event metric definitions (schemas/event_metrics/**.yml), written by
-- streams.event_metrics.sync_event_metric_definitions (the worker at start, and every rebuild).
-- Grain: one row per key_path; the newest load wins (ReplacingMergeTree on loaded_at).
-- Class: public (definitions only).
CREATE TABLE IF NOT EXISTS dim_event_metric
(
    key_path                   String,
    description                String,
    time_frame                 LowCardinality(String) COMMENT '7d, 28d or all',
    value_type                 LowCardinality(String) COMMENT 'user (distinct users), event (number of events), boolean (indicator)',
    operator                   LowCardinality(String) COMMENT 'OR: any of the events; AND: users who did every event (power users)',
    events                     Array(String) COMMENT 'event_category:event_action of each event',
    product_section            LowCardinality(String),
    product_stage              LowCardinality(String),
    product_group              LowCardinality(String),
    metric_status              LowCardinality(String),
    tier                       Array(LowCardinality(String)),
    performance_indicator_type Array(LowCardinality(String)),
    is_smau                    UInt8,
    is_gmau                    UInt8,
    is_paid_gmau               UInt8,
    is_umau                    UInt8,
    loaded_at                  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(loaded_at)
ORDER BY key_path
COMMENT 'Public. Grain: one row per event metric key_path. Query with FINAL.';
