-- prep_subscription_account: each subscription with its CRM account, else its billing account's; step 3 of the
-- license -> subscription -> account rule (prep_license_match). Grain: one row per dim_subscription_id. Yellow.
CREATE VIEW IF NOT EXISTS prep_subscription_account
AS SELECT
    s.dim_subscription_id AS dim_subscription_id,
    s.subscription_name AS subscription_name,
    s.subscription_status AS subscription_status,
    s.product_tier AS product_tier,
    s.seats AS seats,
    s.term_start_date AS term_start_date,
    s.term_end_date AS term_end_date,
    s.dim_billing_account_id AS dim_billing_account_id,
    if(s.dim_crm_account_id != '', s.dim_crm_account_id, b.dim_crm_account_id) AS dim_crm_account_id
FROM dim_subscription AS s FINAL
LEFT JOIN
(
    SELECT dim_billing_account_id, dim_crm_account_id FROM dim_billing_account FINAL
    WHERE dim_billing_account_id != ''
) AS b ON s.dim_billing_account_id = b.dim_billing_account_id
COMMENT 'Yellow. Grain: one row per subscription, CRM account resolved through the billing account if needed.';
