-- agg_event_metric_daily: every event metric (schemas/event_metrics) for every window end day, per scope.
-- Grain: key_path x scope x scope_id x metric_date (the UTC day the 7d/28d window ends on: D-6..D or D-27..D;
-- for time_frame all, every day up to D). Only non-zero values are stored: a missing row means 0.
-- Written by streams.event_metrics.refresh_pending (the worker's timer) for the end days that the event days stored
-- since its last run affect (a late event on day d rewrites d..d+27), from the daily states in agg_behavior_event_daily:
-- the cost is days x scopes x events, never raw event volume. Recomputed rows replace older ones (computed_at).
-- Class: Orange (usage per customer namespace / instance).
CREATE TABLE IF NOT EXISTS agg_event_metric_daily
(
    key_path    LowCardinality(String),
    scope       LowCardinality(String) COMMENT 'instance, namespace or saas',
    scope_id    String,
    metric_date Date COMMENT 'last day of the window',
    value       UInt64,
    computed_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMM(metric_date)
ORDER BY (scope, key_path, scope_id, metric_date)
COMMENT 'Orange. Grain: key_path x scope x scope_id x metric_date. Query with FINAL.';
