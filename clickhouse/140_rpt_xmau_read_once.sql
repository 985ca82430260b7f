-- rpt_xmau_self_managed_monthly, the same rows as 046, read once instead of eight times (dashboard at 100x: the
-- view took 135 s). 046 asked mart_ping_instance_metric_monthly for every metric three times (recorded users, the
-- estimates' recorded usage, the subscriptions that reported) and scanned fct_ping_instance_metric FINAL five more
-- times through the estimate views (045: first/last versions once, reported counts twice, because the factors view
-- UNIONs all four estimation grains), each over all ~400 metrics, when xMAU needs only the ~30 flagged ones.
-- Here:
--   * only metrics with an xMAU flag in dim_ping_metric are read (the filter reaches fct_ping_instance_metric's
--     primary key, metrics_path first); rows of other metrics had no xmau_type, so they never made a row;
--   * the mart is read once, grouped at the grain of 045's recorded usage (month x metric x edition x tier x owner
--     x flags), keeping each group's installations (uniqExactState) and reporting subscriptions; recorded users,
--     reporting installations and the official estimate all come from those groups;
--   * only the official grain is computed ('metric/version check - subscription based estimation', the one 046
--     kept): reporting = subscriptions on a version with the metric (045 on_versions), total = the month's
--     population (045 reported_counts), joined as 045 joins them and filtered to the flagged metrics; a
--     (month, metric) has factors only when a subscription of the population reported it (045's `reported`).
-- Values are counts, so the partial sums add up to the same integers. Grain, columns and class as in 046.
CREATE OR REPLACE VIEW rpt_xmau_self_managed_monthly
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
    (SELECT groupArray(metrics_path) FROM dim_ping_metric FINAL
     WHERE is_umau = 1 OR is_smau = 1 OR is_gmau = 1 OR is_paid_gmau = 1) AS flagged
SELECT
    month,
    'Self-Managed' AS delivery,
    xmau_type,
    toString(any(product_section)) AS product_section,
    toString(any(product_stage)) AS product_stage,
    toString(any(product_group)) AS product_group,
    metrics_path,
    toInt64(sum(recorded_usage)) AS recorded_users,
    toInt64(sumIf(total_usage_with_estimate - recorded_usage, has_factors = 1)) AS estimated_users,
    recorded_users + estimated_users AS total_users_with_estimate,
    uniqExactMerge(installations) AS reporting_installations,
    toUInt8(month < toStartOfMonth(today())) AS is_complete_month
FROM
(
    SELECT
        p.month AS month, p.metrics_path AS metrics_path, p.ping_product_tier AS ping_product_tier,
        p.product_section AS product_section, p.product_stage AS product_stage, p.product_group AS product_group,
        p.is_smau AS is_smau, p.is_gmau AS is_gmau, p.is_paid_gmau AS is_paid_gmau, p.is_umau AS is_umau,
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
               is_smau, is_gmau, is_paid_gmau, is_umau,
               sum(monthly_metric_value) AS recorded_usage,
               uniqExactState(installation_id) AS installations,
               groupUniqArrayIf(latest_subscription_id, latest_subscription_id != '') AS subscriptions
        FROM mart_ping_instance_metric_monthly
        WHERE has(flagged, metrics_path)
        GROUP BY month, metrics_path, ping_edition, ping_product_tier, ping_edition_product_tier,
                 product_section, product_stage, product_group, is_smau, is_gmau, is_paid_gmau, is_umau
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
)
ARRAY JOIN arrayFilter(x -> x != '', [
    if(is_umau = 1, 'UMAU', ''),
    if(is_smau = 1, 'SMAU', ''),
    if(is_gmau = 1, 'GMAU', ''),
    if(is_paid_gmau = 1 AND ping_product_tier != 'Free', 'Paid GMAU', '')
]) AS xmau_type
GROUP BY month, xmau_type, metrics_path
COMMENT 'Yellow. Grain: one row per month x xmau_type x metrics_path. Self-Managed UMAU, SMAU, GMAU and Paid GMAU from dim_ping_metric flags: recorded = sum over installations'' last pings of the month of the flagged 28-day metric (Paid GMAU: paid tiers only), estimated = official estimate uplift, total = both.';
