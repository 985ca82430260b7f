-- A use-case report for product and customer success, from the installations' last ping of each month (as in
-- 060_rpt_version_lag_monthly.sql).
-- rpt_active_user_changes_monthly: month-over-month change of each installation's active users (the
-- active_user_count of its last ping of the month) against its last ping of the previous calendar month.
-- Grain: one row per installation x month. A month right after a month without pings has no change (NULL).
-- is_significant_drop: down by 20 % or more. Class: Orange (per installation).
CREATE VIEW IF NOT EXISTS rpt_active_user_changes_monthly
(
    ping_created_date_month     Date COMMENT 'calendar month',
    installation_id             String COMMENT 'md5(uuid|hostname)',
    hostname                    String COMMENT 'hostname (Orange)',
    dim_crm_account_id          String COMMENT 'CRM account; empty when unknown',
    product_tier                LowCardinality(String) COMMENT 'Free, Starter, Premium, Ultimate',
    active_user_count           Nullable(Int64) COMMENT 'active users of the last ping of the month',
    previous_active_user_count  Nullable(Int64) COMMENT 'the same for the previous calendar month; NULL if it has no ping',
    active_user_change          Nullable(Int64) COMMENT 'active_user_count - previous_active_user_count',
    active_user_change_pct      Nullable(Float64) COMMENT 'change / previous * 100; NULL when previous is NULL or 0',
    is_drop                     UInt8 COMMENT '1 when active users went down',
    is_significant_drop         UInt8 COMMENT '1 when they went down by 20 % or more'
)
AS SELECT
    ping_created_date_month, installation_id, hostname, dim_crm_account_id, product_tier, active_user_count,
    previous_active_user_count,
    active_user_count - previous_active_user_count AS active_user_change,
    if(previous_active_user_count = 0, NULL, active_user_change * 100 / previous_active_user_count)
        AS active_user_change_pct,
    toUInt8(ifNull(active_user_change < 0, 0)) AS is_drop,
    toUInt8(ifNull(active_user_change * 5 <= -previous_active_user_count AND active_user_change < 0, 0))
        AS is_significant_drop
FROM
(
    SELECT
        p.ping_created_date_month AS ping_created_date_month,
        p.installation_id AS installation_id,
        p.hostname AS hostname,
        s.dim_crm_account_id AS dim_crm_account_id,
        p.product_tier AS product_tier,
        p.active_user_count AS active_user_count,
        if(lagInFrame(toNullable(p.ping_created_date_month), 1, NULL) OVER w = addMonths(p.ping_created_date_month, -1),
           lagInFrame(p.active_user_count, 1, NULL) OVER w, NULL) AS previous_active_user_count
    FROM (SELECT * FROM dim_ping_instance WHERE is_last_ping_of_month = 1) AS p
    LEFT JOIN (SELECT ping_id, dim_crm_account_id FROM prep_ping_subscription) AS s ON p.ping_id = s.ping_id
    WINDOW w AS (PARTITION BY p.installation_id ORDER BY p.ping_created_date_month
                 ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)
)
COMMENT 'Orange. Grain: one row per installation x month. Active users of the last ping of the month against the previous calendar month''s last ping: change, percent, drop and significant drop (20 % or more).';
