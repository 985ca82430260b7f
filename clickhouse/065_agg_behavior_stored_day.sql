-- agg_behavior_stored_day: when events of each behavior_date were last stored (engine clock at insert), filled by a
-- materialized view, so the metric refresher finds the days a batch touched whoever wrote it (sink, replay, backfill).
-- Grain: one row per behavior_date (aggregate state: read with max(last_stored_at) GROUP BY behavior_date).
-- Class: public (dates only).
CREATE TABLE IF NOT EXISTS agg_behavior_stored_day
(
    behavior_date  Date,
    last_stored_at SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
    events         SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
ORDER BY behavior_date
COMMENT 'Public. Grain: one row per behavior_date (when its events were last stored, how many).';

CREATE MATERIALIZED VIEW IF NOT EXISTS agg_behavior_stored_day_mv TO agg_behavior_stored_day AS
SELECT behavior_date, max(now64(3, 'UTC')) AS last_stored_at, toUInt64(count()) AS events
FROM fct_behavior_structured_event
GROUP BY behavior_date;
