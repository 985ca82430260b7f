-- xMAU per month (reference section 8): UMAU, SMAU, GMAU and Paid GMAU.
-- A metric's xMAU types come from dim_ping_metric's performance_indicator_type flags (is_umau, is_smau, is_gmau,
-- is_paid_gmau), read at query time. Recorded users = the sum, over every installation's last ping of the month,
-- of the flagged metric's monthly value (28-day metrics: the value of that ping; error markers never count).
-- Paid GMAU counts only installations whose last ping of the month is on a paid tier (product_tier != 'Free':
-- paid is the tier, not revenue). A metric with two flags (gmau and paid_gmau) appears once per type.
-- Estimated users = the official estimate's uplift ('metric/version check - subscription based estimation' in
-- rpt_ping_metric_totals_w_estimates_monthly) over the same editions and tiers; an edition/tier part without
-- estimate factors (no subscription reported the metric that month) adds no uplift and keeps its recorded users.
-- The column layout is shared with the SaaS part (delivery 'SaaS', from events) so rpt_xmau_monthly is a UNION.

-- rpt_xmau_self_managed_monthly. Grain: one row per month x xmau_type x metrics_path (delivery Self-Managed).
-- Class: Yellow (the estimate is derived from subscription seat aggregates; no installation is named).
CREATE VIEW IF NOT EXISTS rpt_xmau_self_managed_monthly
(
    month                     Date COMMENT 'calendar month',
    delivery                  String COMMENT 'Self-Managed here; SaaS rows come from events',
    xmau_type                 String COMMENT 'UMAU, SMAU, GMAU or Paid GMAU',
    product_section           String COMMENT 'product section owning the metric',
    product_stage             String COMMENT 'product stage owning the metric',
    product_group             String COMMENT 'product group owning the metric',
    metrics_path              String COMMENT 'the metric that measures this xMAU',
    recorded_users            Int64 COMMENT 'sum of the metric over the installations'' last pings of the month',
    estimated_users           Int64 COMMENT 'uplift for installations that do not report (official estimation grain)',
    total_users_with_estimate Int64 COMMENT 'recorded_users + estimated_users',
    reporting_installations   UInt64 COMMENT 'installations whose last ping of the month reported the metric',
    is_complete_month         UInt8 COMMENT '0 for the current month: its last pings may still change'
)
AS SELECT
    r.month AS month,
    'Self-Managed' AS delivery,
    r.xmau_type AS xmau_type,
    r.product_section AS product_section,
    r.product_stage AS product_stage,
    r.product_group AS product_group,
    r.metrics_path AS metrics_path,
    r.recorded_users AS recorded_users,
    toInt64(e.estimated_users) AS estimated_users,
    r.recorded_users + toInt64(e.estimated_users) AS total_users_with_estimate,
    r.reporting_installations AS reporting_installations,
    toUInt8(r.month < toStartOfMonth(today())) AS is_complete_month
FROM
(
    SELECT
        ping_created_date_month AS month,
        xmau_type,
        toString(any(product_section)) AS product_section,
        toString(any(product_stage)) AS product_stage,
        toString(any(product_group)) AS product_group,
        metrics_path,
        toInt64(sum(monthly_metric_value)) AS recorded_users,
        uniqExact(installation_id) AS reporting_installations
    FROM mart_ping_instance_metric_monthly
    ARRAY JOIN arrayFilter(t -> t != '', [
        if(is_umau = 1, 'UMAU', ''),
        if(is_smau = 1, 'SMAU', ''),
        if(is_gmau = 1, 'GMAU', ''),
        if(is_paid_gmau = 1 AND ping_product_tier != 'Free', 'Paid GMAU', '')
    ]) AS xmau_type
    GROUP BY month, xmau_type, metrics_path
) AS r
LEFT JOIN
(
    SELECT ping_created_date_month AS month, xmau_type, metrics_path, sum(estimated_usage) AS estimated_users
    FROM rpt_ping_metric_totals_w_estimates_monthly
    ARRAY JOIN arrayFilter(t -> t != '', [
        if(is_umau = 1, 'UMAU', ''),
        if(is_smau = 1, 'SMAU', ''),
        if(is_gmau = 1, 'GMAU', ''),
        if(is_paid_gmau = 1 AND ping_product_tier != 'Free', 'Paid GMAU', '')
    ]) AS xmau_type
    WHERE estimation_grain = 'metric/version check - subscription based estimation'
    GROUP BY month, xmau_type, metrics_path
) AS e ON r.month = e.month AND r.xmau_type = e.xmau_type AND r.metrics_path = e.metrics_path
COMMENT 'Yellow. Grain: one row per month x xmau_type x metrics_path. Self-Managed UMAU, SMAU, GMAU and Paid GMAU from dim_ping_metric flags: recorded = sum over installations'' last pings of the month of the flagged 28-day metric (Paid GMAU: paid tiers only), estimated = official estimate uplift, total = both.';

-- rpt_xmau_monthly: xMAU of every delivery, one layout. Here the Self-Managed part. The SaaS part (users by
-- stage from events) joins as UNION ALL of rows with delivery = 'SaaS', estimated_users = 0 (SaaS usage is
-- complete: nothing to estimate, as the reference's 'GitLab.com' grain) and reporting_installations = 0. It reads
-- tables created after this file (062-063), so it is the ready, tested hook clickhouse/hooks/rpt_xmau_monthly_saas.sql
-- (CREATE OR REPLACE VIEW of this view), to be applied as a migration in the 060-069 range.
-- Grain: one row per month x delivery x xmau_type x metrics_path. Class: Yellow.
CREATE VIEW IF NOT EXISTS rpt_xmau_monthly
(
    month                     Date COMMENT 'calendar month',
    delivery                  String COMMENT 'Self-Managed (Service Ping) or SaaS (events)',
    xmau_type                 String COMMENT 'UMAU, SMAU, GMAU or Paid GMAU',
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
COMMENT 'Yellow. Grain: one row per month x delivery x xmau_type x metrics_path. xMAU per delivery in one layout: Self-Managed from Service Ping (recorded + estimated), SaaS from events once the SaaS hook is applied (recorded only).';
