-- rpt_ping_latest_subscriptions_monthly: each month's population with the installations that reported for it.
-- Grain: one row per month x subscription x installation (installation_id empty when the subscription sent no
-- ping that month). Version and edition are those of the installation's last ping of the month.
-- Class: Yellow (seats) and Orange (installations).
CREATE VIEW IF NOT EXISTS rpt_ping_latest_subscriptions_monthly
(
    ping_created_date_month    Date COMMENT 'calendar month',
    latest_subscription_id     String COMMENT 'subscription id',
    installation_id            String COMMENT 'installation whose last ping of the month maps to the subscription; empty when none',
    ping_delivery_type         String COMMENT 'Self-Managed',
    ping_deployment_type       String COMMENT 'Self-Managed',
    ping_edition               String COMMENT 'CE or EE of that ping; empty when none',
    version_is_prerelease      Nullable(UInt8) COMMENT '1 for pre-release builds; NULL when no ping',
    major_minor_version_id     Nullable(UInt32) COMMENT 'major * 100 + minor of that ping; NULL when no ping',
    instance_user_count        Nullable(Int64) COMMENT 'active users that ping reported',
    licensed_user_count        Int64 COMMENT 'seats of the subscription (Yellow)',
    ping_count                 UInt64 COMMENT 'pings of the installation mapped to the subscription that month',
    has_sent_pings             UInt8 COMMENT '1 when an installation reported for the subscription that month',
    is_missing_from_population UInt8 COMMENT '1: counted only because it pinged (not active in billing that month)',
    population_source          String COMMENT 'reference or pings (see prep_ping_subscription_population_monthly)'
)
AS SELECT
    pop.ping_created_date_month AS ping_created_date_month,
    pop.latest_subscription_id AS latest_subscription_id,
    i.installation_id AS installation_id,
    'Self-Managed' AS ping_delivery_type,
    'Self-Managed' AS ping_deployment_type,
    i.ping_edition AS ping_edition,
    if(i.matched = 1, i.version_is_prerelease, NULL) AS version_is_prerelease,
    if(i.matched = 1, i.major_minor_version_id, NULL) AS major_minor_version_id,
    if(i.matched = 1, i.active_user_count, NULL) AS instance_user_count,
    pop.licensed_user_count AS licensed_user_count,
    i.ping_count AS ping_count,
    i.matched AS has_sent_pings,
    pop.is_missing_from_population AS is_missing_from_population,
    pop.population_source AS population_source
FROM prep_ping_subscription_population_monthly AS pop
LEFT JOIN
(
    SELECT
        p.ping_created_date_month AS ping_created_date_month,
        r.dim_subscription_id AS latest_subscription_id,
        p.installation_id AS installation_id,
        toString(argMaxIf(p.ping_edition, (p.recorded_at, p.ping_id), p.is_last_ping_of_month = 1)) AS ping_edition,
        argMaxIf(p.version_is_prerelease, (p.recorded_at, p.ping_id), p.is_last_ping_of_month = 1) AS version_is_prerelease,
        argMaxIf(p.major_minor_version_id, (p.recorded_at, p.ping_id), p.is_last_ping_of_month = 1) AS major_minor_version_id,
        argMaxIf(p.active_user_count, (p.recorded_at, p.ping_id), p.is_last_ping_of_month = 1) AS active_user_count,
        count() AS ping_count,
        toUInt8(1) AS matched
    FROM dim_ping_instance AS p
    INNER JOIN prep_ping_subscription AS r ON p.ping_id = r.ping_id
    WHERE r.dim_subscription_id != ''
    GROUP BY ping_created_date_month, latest_subscription_id, installation_id
    HAVING countIf(p.is_last_ping_of_month = 1) > 0
) AS i ON pop.ping_created_date_month = i.ping_created_date_month AND pop.latest_subscription_id = i.latest_subscription_id
COMMENT 'Yellow/Orange. Grain: one row per month x subscription x installation (empty installation: no ping that month). Each month''s subscription population with the installations whose last ping of the month maps to them (version, edition, users), or one row without installation when none reported.';
