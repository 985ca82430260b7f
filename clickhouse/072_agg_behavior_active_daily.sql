-- Recomputed from the facts like agg_behavior_event_daily (071).
-- agg_behavior_active_daily: daily active users and event counts per scope, over every event type.
-- Grain: behavior_date x scope x scope_id. Active users over a 7/28-day window = groupBitmapMerge of the window's
-- daily states (cost: days x scopes, not raw events). Read with FINAL.
-- Class: Orange (user hashes per customer namespace / instance).
CREATE TABLE IF NOT EXISTS agg_behavior_active_daily
(
    behavior_date Date,
    scope         LowCardinality(String) COMMENT 'instance, namespace or saas',
    scope_id      String COMMENT 'instance uuid, ultimate parent namespace id, or all',
    users         AggregateFunction(groupBitmap, UInt64) COMMENT 'distinct non-anonymous user hashes',
    events        UInt64 COMMENT 'number of events, anonymous ones included',
    computed_at   DateTime64(3, 'UTC') COMMENT 'when the day was recomputed from the facts (newest wins)'
)
ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMM(behavior_date)
ORDER BY (scope, behavior_date, scope_id)
COMMENT 'Orange. Grain: day x scope x scope_id. Recomputed from facts; read FINAL.';
