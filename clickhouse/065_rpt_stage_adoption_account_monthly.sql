-- A use-case report for product and customer success, from the installations' last ping of each month (as in
-- 060_rpt_version_lag_monthly.sql).
-- rpt_stage_adoption_account_monthly: stage adoption per CRM account. Grain: one row per dim_crm_account_id x
-- month x product_stage adopted by at least one of its installations. Class: Orange (accounts).
CREATE VIEW IF NOT EXISTS rpt_stage_adoption_account_monthly
(
    ping_created_date_month Date COMMENT 'calendar month',
    dim_crm_account_id      String COMMENT 'CRM account',
    account_name            String COMMENT 'CRM account name (Orange)',
    product_stage           LowCardinality(String) COMMENT 'the adopted stage',
    adopting_installations  UInt64 COMMENT 'installations of the account that adopted the stage',
    account_installations   UInt64 COMMENT 'installations of the account that pinged that month'
)
AS SELECT
    a.ping_created_date_month AS ping_created_date_month,
    a.dim_crm_account_id AS dim_crm_account_id,
    any(n.account_name) AS account_name,
    a.product_stage AS product_stage,
    uniqExact(a.installation_id) AS adopting_installations,
    any(t.installations) AS account_installations
FROM rpt_stage_adoption_monthly AS a
INNER JOIN
(
    SELECT p.ping_created_date_month AS ping_created_date_month, s.dim_crm_account_id AS dim_crm_account_id,
           uniqExact(p.installation_id) AS installations
    FROM dim_ping_instance AS p
    INNER JOIN prep_ping_subscription AS s ON p.ping_id = s.ping_id
    WHERE p.is_last_ping_of_month = 1 AND s.dim_crm_account_id != ''
    GROUP BY ping_created_date_month, dim_crm_account_id
) AS t ON a.ping_created_date_month = t.ping_created_date_month AND a.dim_crm_account_id = t.dim_crm_account_id
LEFT JOIN (SELECT dim_crm_account_id, account_name FROM dim_crm_account FINAL) AS n
    ON a.dim_crm_account_id = n.dim_crm_account_id
GROUP BY ping_created_date_month, dim_crm_account_id, product_stage
COMMENT 'Orange. Grain: one row per CRM account x month x adopted stage.';
