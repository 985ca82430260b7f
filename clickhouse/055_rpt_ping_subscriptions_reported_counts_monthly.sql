-- Estimated usage: how much of each metric's usage Service Ping did not see, by the reference model's
-- reporting-rate methods (sections 2.15-2.18). Four estimation grains:
--   'metric/version check - subscription based estimation' (the official one)
--       reporting = paid subscriptions whose installation is on a version that has the metric
--       (rpt_ping_metric_first_last_versions: first <= version <= last, same pre-release flag)
--   'metric/version check - seat based estimation'    the same, counting seats
--   'reported metric - subscription based estimation' reporting = subscriptions that actually reported the metric
--                                                     (a value, not an error marker, in the last ping of the month)
--   'reported metric - seat based estimation'         the same, counting seats
-- In every grain total = all subscriptions (seats) of the month's population, not_reporting = total - reporting,
-- percent_reporting = reporting / (reporting + not_reporting) (0 when both are 0), and
-- total_usage_with_estimate = ROUND(recorded + recorded * (1 - pct) / pct) (= recorded when pct = 0),
-- estimated_usage = total_usage_with_estimate - recorded, ROUND being half away from zero as in Snowflake.
-- Seats are counted once per subscription, however many installations it has.
-- Plain views (the population: prep_ping_subscription_population_monthly): exact for whatever has landed, nothing to refresh.

-- rpt_ping_subscriptions_reported_counts_monthly: the month's total subscriptions and seats, attached to every
-- (metric, edition) that some ping reported that month (28d and all-time metrics: the ones estimated).
-- Grain: one row per month x metrics_path x ping_edition. Class: Yellow (seat totals).
CREATE VIEW IF NOT EXISTS rpt_ping_subscriptions_reported_counts_monthly
(
    ping_created_date_month  Date COMMENT 'calendar month',
    metrics_path             String COMMENT 'dotted payload path of the metric',
    ping_edition             LowCardinality(String) COMMENT 'CE or EE of the pings that reported it',
    ping_delivery_type       String COMMENT 'Self-Managed',
    ping_deployment_type     String COMMENT 'Self-Managed',
    total_subscription_count UInt64 COMMENT 'paid subscriptions that could report that month',
    total_licensed_users     Int64 COMMENT 'their seats (Yellow)'
)
AS SELECT
    r.ping_created_date_month AS ping_created_date_month,
    r.metrics_path AS metrics_path,
    r.ping_edition AS ping_edition,
    'Self-Managed' AS ping_delivery_type,
    'Self-Managed' AS ping_deployment_type,
    t.total_subscription_count AS total_subscription_count,
    t.total_licensed_users AS total_licensed_users
FROM
(
    SELECT DISTINCT p.ping_created_date_month AS ping_created_date_month, m.metrics_path AS metrics_path,
           p.ping_edition AS ping_edition
    FROM fct_ping_instance_metric AS m FINAL
    INNER JOIN (SELECT ping_id, ping_created_date_month, ping_edition FROM dim_ping_instance) AS p
        ON m.ping_id = p.ping_id
    WHERE m.is_defined = 1 AND m.time_frame IN ('28d', 'all') AND m.metric_value IS NOT NULL
) AS r
INNER JOIN
(
    SELECT ping_created_date_month, count() AS total_subscription_count, sum(licensed_user_count) AS total_licensed_users
    FROM prep_ping_subscription_population_monthly
    GROUP BY ping_created_date_month
) AS t ON r.ping_created_date_month = t.ping_created_date_month
COMMENT 'Yellow. Grain: one row per month x metrics_path x ping_edition. The month''s total subscriptions and seats (the population), attached to every metric and edition some ping reported that month: the denominator of every estimate.';
