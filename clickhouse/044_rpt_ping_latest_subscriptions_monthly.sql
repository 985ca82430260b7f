-- The paid subscriptions that could send Service Ping each month: the denominators of estimated xMAU
-- (reference rpt_ping_latest_subscriptions_monthly, section 2.14, and the handbook's "active subscription":
-- active in billing, OR it sent a ping that month).
--
-- Where the population comes from (one rule for the whole warehouse, decided at query time):
--   * reference data, when dim_subscription holds any row: subscriptions with status Active or Cancelled whose
--     tier is not Free or Storage, active in month M when toStartOfMonth(term_start_date) <= M and the term ends
--     in a later month (a term ending in M is replaced by its renewal in M, so a renewal never counts twice);
--     seats = dim_subscription.seats. A subscription a ping maps to that is not active that month still counts
--     (is_missing_from_population = 1) if dim_subscription knows it, with its seats, as in the reference
--     (missing_subs); one dim_subscription does not know is dropped, as the reference drops subscriptions
--     without charges.
--   * otherwise the license fields the pings carry: every subscription id a non-trial ping reported
--     (license_subscription_id), active from the month of its earliest license_starts_at to before the month of
--     its latest license_expires_at, seats = license_user_count of the newest such ping. This still finds
--     subscriptions that stopped pinging (churned installations) while their license runs, which is what
--     "not reporting" has to count; it cannot know paid subscriptions that never sent a ping at all.
-- Pings map to subscriptions through prep_ping_subscription (license md5 OR sha256 -> subscription, else the id
-- the instance reported). Months: every calendar month that has a ping.

-- prep_ping_subscription_population_monthly. Grain: one row per month x subscription. Class: Yellow (seats).
CREATE VIEW IF NOT EXISTS prep_ping_subscription_population_monthly
(
    ping_created_date_month   Date COMMENT 'calendar month',
    latest_subscription_id    String COMMENT 'subscription id',
    licensed_user_count       Int64 COMMENT 'seats of the subscription (Yellow)',
    is_missing_from_population UInt8 COMMENT '1: not active in billing that month, counted because one of its installations pinged',
    population_source         String COMMENT 'reference (dim_subscription) or pings (license fields of the pings)'
)
AS WITH
    (SELECT count() FROM dim_subscription FINAL) > 0 AS has_reference,
    subscriptions AS
    (
        SELECT dim_subscription_id AS subscription_id, seats, term_start_date AS starts_at, term_end_date AS ends_at
        FROM prep_subscription_account
        WHERE (SELECT count() FROM dim_subscription FINAL) > 0
          AND subscription_status IN ('Active', 'Cancelled') AND lower(product_tier) NOT IN ('free', 'storage')
        UNION ALL
        SELECT license_subscription_id, ifNull(argMax(license_user_count, (recorded_at, ping_id)), 0),
               min(license_starts_at), max(license_expires_at)
        FROM fct_ping_instance FINAL
        WHERE (SELECT count() FROM dim_subscription FINAL) = 0 AND license_subscription_id != '' AND license_trial = 0
        GROUP BY license_subscription_id
    )
SELECT
    c.ping_created_date_month AS ping_created_date_month,
    c.subscription_id AS latest_subscription_id,
    any(s.seats) AS licensed_user_count,
    toUInt8(min(c.missing)) AS is_missing_from_population,
    if(has_reference, 'reference', 'pings') AS population_source
FROM
(
    SELECT m.ping_created_date_month AS ping_created_date_month, s.subscription_id AS subscription_id, 0 AS missing
    FROM (SELECT DISTINCT ping_created_date_month FROM dim_ping_instance) AS m
    CROSS JOIN subscriptions AS s
    WHERE s.starts_at IS NOT NULL AND toStartOfMonth(assumeNotNull(s.starts_at)) <= m.ping_created_date_month
      AND (s.ends_at IS NULL OR toStartOfMonth(assumeNotNull(s.ends_at)) > m.ping_created_date_month)
    UNION ALL
    SELECT DISTINCT p.ping_created_date_month, r.dim_subscription_id, 1
    FROM dim_ping_instance AS p
    INNER JOIN prep_ping_subscription AS r ON p.ping_id = r.ping_id
    WHERE p.is_last_ping_of_month = 1 AND r.dim_subscription_id != ''
) AS c
INNER JOIN subscriptions AS s ON c.subscription_id = s.subscription_id
GROUP BY ping_created_date_month, latest_subscription_id
COMMENT 'Yellow. Grain: one row per month x subscription. Paid subscriptions that could send Service Ping that month, with seats: from dim_subscription (Active/Cancelled, not Free/Storage, term covering the month) when it has rows, else from the license fields pings carry; plus any subscription an installation pinged for that month.';

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
