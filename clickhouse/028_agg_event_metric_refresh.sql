-- agg_event_metric_refresh: one row per refresh run: which end days it recomputed and the data horizon then.
-- Grain: one row per refresh. The next refresh also fills the days between the previous horizon and the new one.
-- Class: public (operational metadata).
CREATE TABLE IF NOT EXISTS agg_event_metric_refresh
(
    refreshed_at    DateTime64(3, 'UTC'),
    first_end_date  Date,
    last_end_date   Date COMMENT 'the data horizon: newest behavior_date in the daily states (capped at today)',
    touched_days    Array(Date),
    metrics         UInt32,
    stored_through  DateTime64(3, 'UTC') COMMENT 'refresh_pending: event days stored up to this time are covered'
)
ENGINE = MergeTree
ORDER BY refreshed_at
COMMENT 'Public. Grain: one row per refresh of agg_event_metric_daily.';
