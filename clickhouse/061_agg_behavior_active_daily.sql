-- agg_behavior_active_daily: daily active users and event counts per scope, over every event type
-- (structured events, page views, self-describing events), filled by a materialized view.
-- Grain: behavior_date (UTC day of derived_tstamp) x scope x scope_id. Scopes as in agg_behavior_event_daily.
-- Active users over a 7/28-day window = groupBitmapMerge of the window's daily states, so its cost depends on
-- days x scopes, not on raw event volume. Anonymous events (user_hash 0) count as events, never as users.
-- Class: Orange (user hashes per customer namespace / instance).
CREATE TABLE IF NOT EXISTS agg_behavior_active_daily
(
    behavior_date Date,
    scope         LowCardinality(String) COMMENT 'instance, namespace or saas',
    scope_id      String COMMENT 'instance uuid, ultimate parent namespace id, or all',
    users         AggregateFunction(groupBitmap, UInt64) COMMENT 'distinct non-anonymous user hashes',
    events        SimpleAggregateFunction(sum, UInt64) COMMENT 'number of events, anonymous ones included'
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(behavior_date)
ORDER BY (scope, behavior_date, scope_id)
COMMENT 'Orange. Grain: day x scope x scope_id (aggregate states, merge on read).';

CREATE MATERIALIZED VIEW IF NOT EXISTS agg_behavior_active_daily_mv TO agg_behavior_active_daily AS
SELECT
    behavior_date,
    tupleElement(event_scope, 1) AS scope,
    tupleElement(event_scope, 2) AS scope_id,
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
GROUP BY behavior_date, scope, scope_id;
