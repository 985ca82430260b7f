-- Estimated usage by the reference model's reporting-rate methods (the four grains: 055).
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
