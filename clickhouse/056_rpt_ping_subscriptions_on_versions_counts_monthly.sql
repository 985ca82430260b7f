-- Estimated usage by the reference model's reporting-rate methods (the four grains: 055).
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
