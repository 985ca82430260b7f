-- rpt_xmau_self_managed_monthly: xMAU per month (reference section 8) from Service Ping: UMAU, SMAU, GMAU and Paid GMAU.
-- A metric's xMAU types come from prep_metric_xmau_type (dim_ping_metric's flags, read at query time). Recorded
-- users = the sum, over every installation's last ping of the month, of the flagged metric's monthly value (28-day
-- metrics: the value of that ping; error markers never count). Paid GMAU counts only installations whose last ping
-- of the month is on a paid tier (product_tier != 'Free': paid is the tier, not revenue).
-- Estimated users = the official estimate's uplift ('metric/version check - subscription based estimation', as
-- rpt_ping_metric_totals_w_estimates_monthly computes it) over the same editions and tiers; an edition/tier part
-- without estimate factors (no subscription reported the metric that month) adds no uplift and keeps its recorded
-- users. The column layout is shared with the SaaS part (delivery 'SaaS', from events): rpt_xmau_monthly is a UNION.
-- Read once (the dashboard at 100x took 135 s when each part read the mart and the estimate views again):
--   * only metrics with an xMAU type are read (the filter reaches fct_ping_instance_metric's primary key,
--     metrics_path first); rows of other metrics have no xmau_type, so they never make a row;
--   * the mart is read once, grouped at the grain of the estimate's recorded usage (month x metric x edition x tier
--     x owner), keeping each group's installations (uniqExactState) and reporting subscriptions; recorded users,
--     reporting installations and the official estimate all come from those groups;
--   * only the official grain is computed: reporting = subscriptions on a version with the metric
--     (rpt_ping_subscriptions_on_versions_counts_monthly), total = the month's population
--     (rpt_ping_subscriptions_reported_counts_monthly), joined as rpt_ping_metric_estimate_factors_monthly joins them;
--     a (month, metric) has factors only when a subscription of the population reported it.
-- Values are counts, so the partial sums add up to the same integers.
-- Grain: one row per month x xmau_type x metrics_path (delivery Self-Managed).
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
AS WITH
    (SELECT groupArray(metrics_path) FROM prep_metric_xmau_type WHERE delivery = 'Self-Managed') AS flagged
SELECT
    g.month AS month,
    'Self-Managed' AS delivery,
    x.xmau_type AS xmau_type,
    toString(any(g.product_section)) AS product_section,
    toString(any(g.product_stage)) AS product_stage,
    toString(any(g.product_group)) AS product_group,
    g.metrics_path AS metrics_path,
    toInt64(sum(g.recorded_usage)) AS recorded_users,
    toInt64(sumIf(g.total_usage_with_estimate - g.recorded_usage, g.has_factors = 1)) AS estimated_users,
    recorded_users + estimated_users AS total_users_with_estimate,
    uniqExactMerge(g.installations) AS reporting_installations,
    toUInt8(month < toStartOfMonth(today())) AS is_complete_month
FROM
(
    SELECT
        p.month AS month, p.metrics_path AS metrics_path, p.ping_product_tier AS ping_product_tier,
        p.product_section AS product_section, p.product_stage AS product_stage, p.product_group AS product_group,
        p.recorded_usage AS recorded_usage, p.installations AS installations,
        toUInt8(max(hasAny(p.subscriptions, pop.subscriptions)) OVER (PARTITION BY p.month, p.metrics_path) = 1
                AND f.found = 1) AS has_factors,
        if(f.total_count = 0, 0., f.reporting_count / f.total_count) AS percent_reporting,
        floor(p.recorded_usage + if(percent_reporting = 0, 0.,
                                    p.recorded_usage * (1 - percent_reporting) / percent_reporting) + 0.5)
            AS total_usage_with_estimate
    FROM
    (
        SELECT ping_created_date_month AS month, metrics_path, ping_edition, ping_product_tier,
               ping_edition_product_tier, product_section, product_stage, product_group,
               sum(monthly_metric_value) AS recorded_usage,
               uniqExactState(installation_id) AS installations,
               groupUniqArrayIf(latest_subscription_id, latest_subscription_id != '') AS subscriptions
        FROM mart_ping_instance_metric_monthly
        WHERE has(flagged, metrics_path)
        GROUP BY month, metrics_path, ping_edition, ping_product_tier, ping_edition_product_tier,
                 product_section, product_stage, product_group
    ) AS p
    LEFT JOIN
    (
        SELECT ping_created_date_month, groupArray(latest_subscription_id) AS subscriptions
        FROM prep_ping_subscription_population_monthly
        GROUP BY ping_created_date_month
    ) AS pop ON p.month = pop.ping_created_date_month
    LEFT JOIN
    (
        SELECT v.ping_created_date_month AS ping_created_date_month, v.metrics_path AS metrics_path,
               v.ping_edition AS ping_edition, toInt64(v.total_subscription_count) AS reporting_count,
               toInt64(t.total_subscription_count) AS total_count, toUInt8(1) AS found
        FROM rpt_ping_subscriptions_on_versions_counts_monthly AS v
        INNER JOIN rpt_ping_subscriptions_reported_counts_monthly AS t
            ON v.ping_created_date_month = t.ping_created_date_month AND v.metrics_path = t.metrics_path
           AND v.ping_edition = t.ping_edition
        WHERE has(flagged, v.metrics_path) AND has(flagged, t.metrics_path)
    ) AS f ON p.month = f.ping_created_date_month AND p.metrics_path = f.metrics_path
          AND p.ping_edition = f.ping_edition
) AS g
INNER JOIN (SELECT metrics_path, xmau_type FROM prep_metric_xmau_type WHERE delivery = 'Self-Managed') AS x
    ON g.metrics_path = x.metrics_path
WHERE x.xmau_type != 'Paid GMAU' OR g.ping_product_tier != 'Free'
GROUP BY month, xmau_type, metrics_path
COMMENT 'Yellow. Grain: one row per month x xmau_type x metrics_path. Self-Managed UMAU, SMAU, GMAU and Paid GMAU from dim_ping_metric flags: recorded = sum over installations'' last pings of the month of the flagged 28-day metric (Paid GMAU: paid tiers only), estimated = official estimate uplift, total = both.';
