-- rpt_xmau_monthly: xMAU of every delivery in one layout: Self-Managed xMAU (rpt_xmau_self_managed_monthly) UNION
-- SaaS users from the event metrics (agg_event_metric_daily).
-- SaaS rows: users on GitLab.com as a whole ('saas' scope: every SaaS event, a user counted once across
-- namespaces) of each 28-day user metric of dim_event_metric with an xMAU type (prep_metric_xmau_type), on the last day of the month
-- (the last 28 days of the calendar month, as the reference's SaaS xMAU). Nothing is estimated for SaaS (the
-- reference's 'GitLab.com' grain: percent_reporting 1). Paid GMAU needs the paying namespaces' users counted once
-- across namespaces, which the 'saas' scope cannot split, so SaaS has no Paid GMAU rows yet.
-- Grain: one row per month x delivery x xmau_type x metrics_path. Class: Yellow.
CREATE VIEW IF NOT EXISTS rpt_xmau_monthly
(
    month                     Date COMMENT 'calendar month',
    delivery                  String COMMENT 'Self-Managed (Service Ping) or SaaS (events)',
    xmau_type                 String COMMENT 'UMAU, SMAU, GMAU or Paid GMAU (Self-Managed only)',
    product_section           String COMMENT 'product section owning the metric',
    product_stage             String COMMENT 'product stage owning the metric',
    product_group             String COMMENT 'product group owning the metric',
    metrics_path              String COMMENT 'the metric that measures this xMAU',
    recorded_users            Int64 COMMENT 'users the data shows',
    estimated_users           Int64 COMMENT 'uplift for installations that do not report (0 for SaaS)',
    total_users_with_estimate Int64 COMMENT 'recorded_users + estimated_users',
    reporting_installations   UInt64 COMMENT 'installations that reported the metric (0 for SaaS)',
    is_complete_month         UInt8 COMMENT '0 for the current month'
)
AS SELECT month, delivery, xmau_type, product_section, product_stage, product_group, metrics_path, recorded_users,
          estimated_users, total_users_with_estimate, reporting_installations, is_complete_month
FROM rpt_xmau_self_managed_monthly
UNION ALL
SELECT
    toStartOfMonth(v.metric_date) AS month,
    'SaaS' AS delivery,
    x.xmau_type AS xmau_type,
    toString(d.product_section) AS product_section,
    toString(d.product_stage) AS product_stage,
    toString(d.product_group) AS product_group,
    toString(v.key_path) AS metrics_path,
    toInt64(v.value) AS recorded_users,
    toInt64(0) AS estimated_users,
    toInt64(v.value) AS total_users_with_estimate,
    toUInt64(0) AS reporting_installations,
    toUInt8(toStartOfMonth(v.metric_date) < toStartOfMonth(today())) AS is_complete_month
FROM agg_event_metric_daily AS v FINAL
INNER JOIN
(
    SELECT key_path, product_section, product_stage, product_group
    FROM dim_event_metric FINAL
    WHERE time_frame = '28d' AND value_type = 'user'
) AS d ON d.key_path = toString(v.key_path)
INNER JOIN (SELECT metrics_path, xmau_type FROM prep_metric_xmau_type WHERE delivery = 'SaaS') AS x
    ON x.metrics_path = d.key_path
WHERE v.scope = 'saas' AND v.metric_date = toLastDayOfMonth(v.metric_date)
COMMENT 'Yellow. Grain: one row per month x delivery x xmau_type x metrics_path. xMAU of Self-Managed and SaaS.';
