-- agg_behavior_event_daily: daily aggregate states of structured events, filled by a materialized view.
-- Grain: behavior_date (UTC day of derived_tstamp) x scope x scope_id x event_category x event_action.
-- Scopes (one event feeds every scope it belongs to):
--   instance  : scope_id = instance_id, for events that carry one (self-managed backend events, also gitlab.com's own).
--   namespace : scope_id = ultimate_parent_namespace_id, else namespace_id (decimal text), for SaaS events only
--               (realm 'saas' or deployment_type '.com'): self-managed namespace ids are local to their instance.
--   saas      : scope_id = 'all', every SaaS event (users of gitlab.com as a whole, also those outside a namespace).
-- users: exact set of user_hash (64-bit keyed hash) as a Roaring bitmap; anonymous events (user_hash 0) count as
-- events, never as users. Subscription and account rollups join the namespace rows to dim_namespace at query time.
-- Rows are states: always read with groupBitmapMerge(users) / sum(events) and GROUP BY, never row by row.
-- Class: Orange (user hashes per customer namespace / instance).
CREATE TABLE IF NOT EXISTS agg_behavior_event_daily
(
    behavior_date  Date,
    scope          LowCardinality(String) COMMENT 'instance, namespace or saas',
    scope_id       String COMMENT 'instance uuid, ultimate parent namespace id, or all',
    event_category LowCardinality(String),
    event_action   LowCardinality(String),
    users          AggregateFunction(groupBitmap, UInt64) COMMENT 'distinct non-anonymous user hashes',
    events         SimpleAggregateFunction(sum, UInt64) COMMENT 'number of events, anonymous ones included'
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(behavior_date)
ORDER BY (scope, behavior_date, event_category, event_action, scope_id)
COMMENT 'Orange. Grain: day x scope x scope_id x event_category x event_action (aggregate states, merge on read).';

CREATE MATERIALIZED VIEW IF NOT EXISTS agg_behavior_event_daily_mv TO agg_behavior_event_daily AS
SELECT
    behavior_date,
    tupleElement(event_scope, 1) AS scope,
    tupleElement(event_scope, 2) AS scope_id,
    event_category,
    event_action,
    groupBitmapStateIf(user_hash, user_hash != 0) AS users,
    toUInt64(count()) AS events
FROM fct_behavior_structured_event
ARRAY JOIN arrayFilter(
    s -> tupleElement(s, 2) != '',
    [
        ('instance', instance_id),
        ('namespace', if((realm = 'saas' OR deployment_type = '.com')
                         AND if(ultimate_parent_namespace_id != 0, ultimate_parent_namespace_id, namespace_id) != 0,
                         toString(if(ultimate_parent_namespace_id != 0, ultimate_parent_namespace_id, namespace_id)), '')),
        ('saas', if(realm = 'saas' OR deployment_type = '.com', 'all', ''))
    ]) AS event_scope
WHERE event_type = 'struct' AND event_action != ''
GROUP BY behavior_date, scope, scope_id, event_category, event_action;
