-- Daily behavior aggregates are recomputed from the facts, exactly once whatever the moment of a crash (issue 10),
-- never fed by materialized views: an INSERT into a table with views is not atomic across tables, so a worker killed
-- between the fact part and a view's part would leave the aggregates short. A daily state is a pure function of the
-- facts of its day. The sink stores the facts, then records which days it touched (agg_behavior_day_status.touched_at,
-- engine clock, written after the facts are visible, for every record of the batch, also the ones skipped as already
-- stored), then recomputes every pending day from the facts (streams/event_metrics.py refresh_pending, reading
-- prep_behavior_event_scope) before it acks. A crash anywhere only leaves a day pending: the next run recomputes it.
-- Recomputed rows replace older ones (ReplacingMergeTree(computed_at), computed_at = the start of the recomputing
-- INSERT ... SELECT, so the row that read more facts wins); read with FINAL.
-- agg_behavior_event_daily: daily states of structured events (event_type struct with an action).
-- Grain: behavior_date x scope x scope_id x event_category x event_action. users: exact Roaring bitmap of non-zero
-- user hashes (anonymous events count as events, never as users). Read with FINAL, then groupBitmapMerge / sum.
-- Class: Orange (user hashes per customer namespace / instance).
CREATE TABLE IF NOT EXISTS agg_behavior_event_daily
(
    behavior_date  Date,
    scope          LowCardinality(String) COMMENT 'instance, namespace or saas',
    scope_id       String COMMENT 'instance uuid, ultimate parent namespace id, or all',
    event_category LowCardinality(String),
    event_action   LowCardinality(String),
    users          AggregateFunction(groupBitmap, UInt64) COMMENT 'distinct non-anonymous user hashes',
    events         UInt64 COMMENT 'number of events, anonymous ones included',
    computed_at    DateTime64(3, 'UTC') COMMENT 'when the day was recomputed from the facts (newest wins)'
)
ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMM(behavior_date)
ORDER BY (scope, behavior_date, event_category, event_action, scope_id)
COMMENT 'Orange. Grain: day x scope x scope_id x event_category x event_action. Recomputed from facts; read FINAL.';
