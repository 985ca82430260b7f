-- A use-case report for product and customer success, from the installations' last ping of each month (as in
-- 060_rpt_version_lag_monthly.sql).
-- rpt_version_lag_account_monthly: the same per CRM account. Grain: one row per dim_crm_account_id x month
-- (installations without an account are left out). Class: Orange (accounts).
CREATE VIEW IF NOT EXISTS rpt_version_lag_account_monthly
(
    ping_created_date_month    Date COMMENT 'calendar month',
    dim_crm_account_id         String COMMENT 'CRM account',
    account_name               String COMMENT 'CRM account name (Orange); empty when dim_crm_account lacks it',
    installations              UInt64 COMMENT 'installations of the account that pinged that month',
    far_behind_installations   UInt64 COMMENT 'of those, installations 3 or more minors behind',
    max_minors_behind          UInt64 COMMENT 'the account''s worst lag',
    oldest_version             String COMMENT 'version of its installation furthest behind'
)
AS SELECT
    l.ping_created_date_month AS ping_created_date_month,
    l.dim_crm_account_id AS dim_crm_account_id,
    any(a.account_name) AS account_name,
    count() AS installations,
    countIf(l.is_far_behind = 1) AS far_behind_installations,
    max(l.minors_behind) AS max_minors_behind,
    argMax(l.version, (l.minors_behind, l.installation_id)) AS oldest_version
FROM rpt_version_lag_monthly AS l
LEFT JOIN (SELECT dim_crm_account_id, account_name FROM dim_crm_account FINAL) AS a
    ON l.dim_crm_account_id = a.dim_crm_account_id
WHERE l.dim_crm_account_id != ''
GROUP BY ping_created_date_month, dim_crm_account_id
COMMENT 'Orange. Grain: one row per CRM account x month. Per CRM account: installations that pinged, how many are 3 or more minor releases behind, the worst lag and the oldest version.';
