-- mart_saas_usage_namespace_monthly: SaaS usage per namespace and calendar month, with the same metric names as
-- the instance-level Service Ping where they overlap (redis_hll_counters.<cat>.<event>_monthly = distinct users of
-- that event in the namespace over the last 28 days of the month, *_weekly over its last 7 days, counts.* totals).
-- Grain: month x namespace_id x metrics_path. A month appears once the data horizon reached its last day.
-- Class: Orange (usage per customer namespace).
CREATE VIEW IF NOT EXISTS mart_saas_usage_namespace_monthly
(
    month           Date,
    namespace_id    UInt64,
    metrics_path    String,
    time_frame      String,
    value_type      String,
    product_section String,
    product_stage   String,
    product_group   String,
    metric_value    UInt64,
    window_end_date Date
)
AS SELECT
    toStartOfMonth(v.metric_date) AS month,
    toUInt64(v.scope_id) AS namespace_id,
    toString(v.key_path) AS metrics_path,
    toString(d.time_frame) AS time_frame,
    toString(d.value_type) AS value_type,
    toString(d.product_section) AS product_section,
    toString(d.product_stage) AS product_stage,
    toString(d.product_group) AS product_group,
    v.value AS metric_value,
    v.metric_date AS window_end_date
FROM agg_event_metric_daily AS v FINAL
LEFT JOIN (SELECT * FROM dim_event_metric FINAL) AS d ON d.key_path = v.key_path
WHERE v.scope = 'namespace' AND v.metric_date = toLastDayOfMonth(v.metric_date)
COMMENT 'Orange. Grain: month x namespace_id x metrics_path (value on the last day of the month).';
