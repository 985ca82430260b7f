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
