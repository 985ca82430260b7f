-- Reference data like dim_license (030): one row per natural id after FINAL; deletions are rows with is_deleted = 1.
-- dim_billing_account. Grain: one row per dim_billing_account_id. Class: Orange (customer data).
CREATE TABLE IF NOT EXISTS dim_billing_account
(
    dim_billing_account_id String,
    dim_crm_account_id     String,
    billing_account_name   String,
    currency               String,
    updated_at             DateTime64(3, 'UTC'),
    is_deleted             UInt8
)
ENGINE = ReplacingMergeTree(updated_at, is_deleted)
ORDER BY dim_billing_account_id
COMMENT 'Orange. Grain: one row per billing account (dim_billing_account_id); read with FINAL.';
