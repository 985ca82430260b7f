-- Which days the recompute of the daily behavior aggregates has pending (071).
-- agg_behavior_day_status: per behavior_date, when events of the day were last stored (touched_at) and the start of
-- the last recompute that covered it (refreshed_from). A day is pending while max(touched_at) > max(refreshed_from).
-- Grain: one row per behavior_date (aggregate state: read with max() GROUP BY behavior_date).
-- Class: public (dates only).
CREATE TABLE IF NOT EXISTS agg_behavior_day_status
(
    behavior_date  Date,
    touched_at     SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
    refreshed_from SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
ORDER BY behavior_date
COMMENT 'Public. Grain: one row per behavior_date (last stored, last recomputed).';
