-- Estimated usage by the reference model's reporting-rate methods (the four grains: 055).
-- rpt_ping_metric_estimate_factors_monthly: reporting / not reporting counts and percent_reporting per grain.
-- A (month, metric) gets factors only when at least one subscription reported the metric that month (as in the
-- reference, whose factor models are driven by the metric rows of subscriptions). Every paid subscription pings
-- on EE, so the reporting side is counted per metric, and attached to each edition that reported the metric (the
-- reference does the same: "subscriptions will all report on EE").
-- Grain: one row per month x metrics_path x ping_edition x estimation_grain. Class: Yellow.
CREATE VIEW IF NOT EXISTS rpt_ping_metric_estimate_factors_monthly
(
    ping_created_date_month Date COMMENT 'calendar month',
    metrics_path            String COMMENT 'dotted payload path of the metric',
    ping_edition            LowCardinality(String) COMMENT 'CE or EE',
    ping_delivery_type      String COMMENT 'Self-Managed',
    ping_deployment_type    String COMMENT 'Self-Managed',
    estimation_grain        String COMMENT 'metric/version check or reported metric, subscription or seat based',
    reporting_count         Int64 COMMENT 'subscriptions (or seats) counted as reporting',
    not_reporting_count     Int64 COMMENT 'total_count - reporting_count',
    total_count             Int64 COMMENT 'subscriptions (or seats) that could report',
    percent_reporting       Float64 COMMENT 'reporting / (reporting + not_reporting); 0 when both are 0'
)
AS SELECT
    ping_created_date_month, metrics_path, ping_edition,
    'Self-Managed' AS ping_delivery_type,
    'Self-Managed' AS ping_deployment_type,
    estimation_grain, reporting_count,
    total_count - reporting_count AS not_reporting_count,
    total_count,
    if(total_count = 0, 0., reporting_count / total_count) AS percent_reporting
FROM
(
    WITH reported AS
    (
        SELECT r.ping_created_date_month AS ping_created_date_month, r.metrics_path AS metrics_path,
               toInt64(count()) AS subscription_count, sum(pop.licensed_user_count) AS seat_count
        FROM
        (
            SELECT DISTINCT ping_created_date_month, metrics_path, latest_subscription_id
            FROM mart_ping_instance_metric_monthly
            WHERE latest_subscription_id != ''
        ) AS r
        INNER JOIN prep_ping_subscription_population_monthly AS pop
            ON r.ping_created_date_month = pop.ping_created_date_month
           AND r.latest_subscription_id = pop.latest_subscription_id
        GROUP BY ping_created_date_month, metrics_path
    )
    SELECT v.ping_created_date_month AS ping_created_date_month, v.metrics_path AS metrics_path,
           v.ping_edition AS ping_edition, g.1 AS estimation_grain, g.2 AS reporting_count, g.3 AS total_count
    FROM reported AS a
    INNER JOIN rpt_ping_subscriptions_on_versions_counts_monthly AS v
        ON a.ping_created_date_month = v.ping_created_date_month AND a.metrics_path = v.metrics_path
    INNER JOIN rpt_ping_subscriptions_reported_counts_monthly AS t
        ON v.ping_created_date_month = t.ping_created_date_month AND v.metrics_path = t.metrics_path
       AND v.ping_edition = t.ping_edition
    ARRAY JOIN [
        ('metric/version check - subscription based estimation', toInt64(v.total_subscription_count),
         toInt64(t.total_subscription_count)),
        ('metric/version check - seat based estimation', v.total_licensed_users, t.total_licensed_users)
    ] AS g
    UNION ALL
    SELECT t.ping_created_date_month, t.metrics_path, t.ping_edition, g.1, g.2, g.3
    FROM reported AS a
    INNER JOIN rpt_ping_subscriptions_reported_counts_monthly AS t
        ON a.ping_created_date_month = t.ping_created_date_month AND a.metrics_path = t.metrics_path
    ARRAY JOIN [
        ('reported metric - subscription based estimation', a.subscription_count, toInt64(t.total_subscription_count)),
        ('reported metric - seat based estimation', a.seat_count, t.total_licensed_users)
    ] AS g
)
COMMENT 'Yellow. Grain: one row per month x metrics_path x ping_edition x estimation_grain. reporting / not reporting / total subscriptions or seats and percent_reporting for the four methods: metric/version check (official: on a version with the metric) and reported metric (actually reported it), each subscription or seat based.';
