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
-- Plain views (see 044 for the population): exact for whatever has landed, nothing to refresh.

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

-- rpt_ping_subscriptions_on_versions_counts_monthly: subscriptions (and their seats) with an installation on a
-- version inside the metric's [first, last] version window of an edition. Subscriptions without a ping that month
-- have no version and count as not on a version with the metric.
-- Grain: one row per month x metrics_path x ping_edition (the edition of the version window). Class: Yellow.
CREATE VIEW IF NOT EXISTS rpt_ping_subscriptions_on_versions_counts_monthly
(
    ping_created_date_month  Date COMMENT 'calendar month',
    metrics_path             String COMMENT 'dotted payload path of the metric',
    ping_edition             LowCardinality(String) COMMENT 'edition whose version window was used',
    ping_delivery_type       String COMMENT 'Self-Managed',
    ping_deployment_type     String COMMENT 'Self-Managed',
    total_subscription_count UInt64 COMMENT 'subscriptions on a version with the metric',
    total_licensed_users     Int64 COMMENT 'their seats (Yellow)'
)
AS SELECT
    ping_created_date_month,
    metrics_path,
    ping_edition,
    'Self-Managed' AS ping_delivery_type,
    'Self-Managed' AS ping_deployment_type,
    count() AS total_subscription_count,
    sum(licensed_user_count) AS total_licensed_users
FROM
(
    SELECT DISTINCT
        s.ping_created_date_month AS ping_created_date_month,
        v.metrics_path AS metrics_path,
        v.ping_edition AS ping_edition,
        s.latest_subscription_id AS latest_subscription_id,
        s.licensed_user_count AS licensed_user_count
    FROM
    (
        SELECT ping_created_date_month, latest_subscription_id, licensed_user_count,
               assumeNotNull(version_is_prerelease) AS version_is_prerelease,
               assumeNotNull(major_minor_version_id) AS major_minor_version_id
        FROM rpt_ping_latest_subscriptions_monthly
        WHERE has_sent_pings = 1
    ) AS s
    INNER JOIN rpt_ping_metric_first_last_versions AS v
        ON s.version_is_prerelease = v.version_is_prerelease
       AND s.major_minor_version_id >= v.first_major_minor_version_id_with_counter
       AND s.major_minor_version_id <= v.last_major_minor_version_id_with_counter
)
GROUP BY ping_created_date_month, metrics_path, ping_edition
COMMENT 'Yellow. Grain: one row per month x metrics_path x ping_edition. Subscriptions (and seats) with an installation on a version inside the metric''s first..last version window of that edition: the numerator of the metric/version check estimates.';

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

-- rpt_ping_metric_totals_w_estimates_monthly: recorded usage (sum of monthly values over the installations' last
-- pings of the month) next to the estimated usage and the total with the estimate.
-- Grain: one row per month x metrics_path x ping_edition x ping_product_tier x estimation_grain.
-- Recorded usage of a (month, metric, edition) without factors (no subscription reported the metric) has no row
-- here, as in the reference (INNER join); rpt_xmau_monthly keeps such usage as recorded.
-- Class: Yellow (derived from seat counts).
CREATE VIEW IF NOT EXISTS rpt_ping_metric_totals_w_estimates_monthly
(
    ping_created_date_month   Date COMMENT 'calendar month',
    metrics_path              String COMMENT 'dotted payload path of the metric',
    ping_delivery_type        String COMMENT 'Self-Managed',
    ping_deployment_type      String COMMENT 'Self-Managed',
    ping_edition              LowCardinality(String) COMMENT 'CE or EE',
    ping_product_tier         LowCardinality(String) COMMENT 'Free, Starter, Premium, Ultimate',
    ping_edition_product_tier String COMMENT 'ping_edition - ping_product_tier',
    product_section           LowCardinality(String) COMMENT 'product section owning the metric',
    product_stage             LowCardinality(String) COMMENT 'product stage owning the metric',
    product_group             LowCardinality(String) COMMENT 'product group owning the metric',
    is_smau                   UInt8 COMMENT 'metric tagged smau',
    is_gmau                   UInt8 COMMENT 'metric tagged gmau',
    is_paid_gmau              UInt8 COMMENT 'metric tagged paid_gmau',
    is_umau                   UInt8 COMMENT 'metric tagged umau',
    estimation_grain          String COMMENT 'which reporting-rate method',
    reporting_count           Int64 COMMENT 'subscriptions (or seats) counted as reporting',
    not_reporting_count       Int64 COMMENT 'subscriptions (or seats) not reporting',
    percent_reporting         Float64 COMMENT 'reporting / (reporting + not_reporting)',
    recorded_usage            Float64 COMMENT 'sum of monthly_metric_value over the last pings of the month',
    estimated_usage           Float64 COMMENT 'total_usage_with_estimate - recorded_usage',
    total_usage_with_estimate Float64 COMMENT 'ROUND(recorded / percent_reporting); recorded when percent_reporting is 0'
)
AS SELECT
    f.ping_created_date_month AS ping_created_date_month,
    f.metrics_path AS metrics_path,
    f.ping_delivery_type AS ping_delivery_type,
    f.ping_deployment_type AS ping_deployment_type,
    f.ping_edition AS ping_edition,
    f.ping_product_tier AS ping_product_tier,
    f.ping_edition_product_tier AS ping_edition_product_tier,
    f.product_section AS product_section,
    f.product_stage AS product_stage,
    f.product_group AS product_group,
    f.is_smau AS is_smau,
    f.is_gmau AS is_gmau,
    f.is_paid_gmau AS is_paid_gmau,
    f.is_umau AS is_umau,
    e.estimation_grain AS estimation_grain,
    e.reporting_count AS reporting_count,
    e.not_reporting_count AS not_reporting_count,
    e.percent_reporting AS percent_reporting,
    f.recorded_usage AS recorded_usage,
    total_usage_with_estimate - f.recorded_usage AS estimated_usage,
    floor(f.recorded_usage + if(e.percent_reporting = 0, 0.,
                                f.recorded_usage * (1 - e.percent_reporting) / e.percent_reporting) + 0.5)
        AS total_usage_with_estimate
FROM
(
    SELECT ping_created_date_month, metrics_path, ping_delivery_type, ping_deployment_type, ping_edition,
           ping_product_tier, ping_edition_product_tier, product_section, product_stage, product_group,
           is_smau, is_gmau, is_paid_gmau, is_umau, sum(monthly_metric_value) AS recorded_usage
    FROM mart_ping_instance_metric_monthly
    GROUP BY ping_created_date_month, metrics_path, ping_delivery_type, ping_deployment_type, ping_edition,
             ping_product_tier, ping_edition_product_tier, product_section, product_stage, product_group,
             is_smau, is_gmau, is_paid_gmau, is_umau
) AS f
INNER JOIN rpt_ping_metric_estimate_factors_monthly AS e
    ON f.ping_created_date_month = e.ping_created_date_month AND f.metrics_path = e.metrics_path
   AND f.ping_edition = e.ping_edition
COMMENT 'Yellow. Grain: one row per month x metrics_path x ping_edition x ping_product_tier x estimation_grain. Recorded usage (sum of monthly values over the last pings of the month) next to estimated_usage and total_usage_with_estimate = ROUND(recorded / percent_reporting), per estimation method. Official xMAU: estimation_grain metric/version check - subscription based estimation.';
