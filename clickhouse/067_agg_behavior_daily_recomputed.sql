-- Daily behavior aggregates recomputed from the facts, exactly once whatever the moment of a crash (issue 10).
--
-- Before: materialized views fed agg_behavior_event_daily / agg_behavior_active_daily / agg_behavior_stored_day in
-- the same INSERT as fct_behavior_structured_event. An INSERT into a table with views is not atomic across tables:
-- a worker killed between the fact part and a view's part left the aggregates short, and the sink's "skip event ids
-- already stored" rule then never repaired them (or a retry counted them twice).
-- Now a daily state is a pure function of the facts of its day: derived = f(facts). The sink stores the facts, then
-- records which days it touched (agg_behavior_day_status.touched_at, engine clock, written after the facts are
-- visible, for every record of the batch, also the ones skipped as already stored), then recomputes every pending
-- day from the facts (streams/event_metrics.py refresh_pending) before it acks. A crash anywhere only leaves a day
-- pending: the next run recomputes it again. Recomputed rows replace older ones (ReplacingMergeTree(computed_at),
-- computed_at = the start of the recomputing INSERT ... SELECT, so the row that read more facts wins); read with FINAL.
-- The history of these tables is rebuilt from the facts: every stored day is marked pending below.
DROP VIEW IF EXISTS agg_behavior_event_daily_mv;
DROP VIEW IF EXISTS agg_behavior_active_daily_mv;
DROP VIEW IF EXISTS agg_behavior_stored_day_mv;
DROP TABLE IF EXISTS agg_behavior_stored_day;
DROP TABLE IF EXISTS agg_behavior_event_daily;
DROP TABLE IF EXISTS agg_behavior_active_daily;

-- prep_behavior_event_scope: each stored event once per scope it counts for. The one definition of the scope rule:
--   instance  : scope_id = instance_id, for events that carry one (self-managed backend events, also gitlab.com's own).
--   namespace : scope_id = ultimate_parent_namespace_id, else namespace_id (decimal text), for SaaS events only
--               (realm 'saas' or deployment_type '.com'): self-managed namespace ids are local to their instance.
--   saas      : scope_id = 'all', every SaaS event (users of gitlab.com as a whole, also those outside a namespace).
-- Class: Orange (user hashes per customer namespace / instance).
CREATE VIEW IF NOT EXISTS prep_behavior_event_scope AS
SELECT
    behavior_date,
    tupleElement(event_scope, 1) AS scope,
    tupleElement(event_scope, 2) AS scope_id,
    event_type,
    event_category,
    event_action,
    user_hash
FROM fct_behavior_structured_event FINAL
ARRAY JOIN arrayFilter(
    s -> tupleElement(s, 2) != '',
    [
        ('instance', instance_id),
        ('namespace', if((realm = 'saas' OR deployment_type = '.com')
                         AND if(ultimate_parent_namespace_id != 0, ultimate_parent_namespace_id, namespace_id) != 0,
                         toString(if(ultimate_parent_namespace_id != 0, ultimate_parent_namespace_id, namespace_id)), '')),
        ('saas', if(realm = 'saas' OR deployment_type = '.com', 'all', ''))
    ]) AS event_scope;

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

INSERT INTO agg_behavior_day_status (behavior_date, touched_at, refreshed_from)
SELECT DISTINCT behavior_date, now64(3, 'UTC'), toDateTime64(0, 3, 'UTC') FROM fct_behavior_structured_event;
