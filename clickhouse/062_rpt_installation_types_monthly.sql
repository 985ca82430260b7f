-- A use-case report for product and customer success, from the installations' last ping of each month (as in
-- 060_rpt_version_lag_monthly.sql).
-- rpt_installation_types_monthly: how installations are deployed, over time.
-- Grain: one row per month x installation_type x ping_edition. Class: public (counts only).
CREATE VIEW IF NOT EXISTS rpt_installation_types_monthly
(
    ping_created_date_month Date COMMENT 'calendar month',
    installation_type       LowCardinality(String) COMMENT 'omnibus-gitlab, gitlab-helm-chart, docker, source, ...',
    ping_edition            LowCardinality(String) COMMENT 'CE or EE',
    installations           UInt64 COMMENT 'installations whose last ping of the month has this type',
    paid_installations      UInt64 COMMENT 'of those, on a paid tier',
    active_users            Int64 COMMENT 'sum of their active user counts',
    share_of_installations  Float64 COMMENT 'installations / all installations that month'
)
AS SELECT
    ping_created_date_month,
    installation_type,
    ping_edition,
    count() AS installations,
    countIf(product_tier != 'Free') AS paid_installations,
    toInt64(sum(ifNull(active_user_count, 0))) AS active_users,
    installations / sum(installations) OVER (PARTITION BY ping_created_date_month) AS share_of_installations
FROM dim_ping_instance
WHERE is_last_ping_of_month = 1
GROUP BY ping_created_date_month, installation_type, ping_edition
COMMENT 'Public. Grain: one row per month x installation_type x ping_edition. Installations by installation type and edition (last ping of the month), paid ones, their active users and share of the month''s installations.';
