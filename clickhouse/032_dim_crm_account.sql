-- Reference data like dim_license (030): one row per natural id after FINAL; deletions are rows with is_deleted = 1.
-- dim_crm_account. Grain: one row per dim_crm_account_id. Class: Orange (customer data).
CREATE TABLE IF NOT EXISTS dim_crm_account
(
    dim_crm_account_id        String,
    account_name              String,
    dim_parent_crm_account_id String,
    crm_account_type          String,
    billing_country           String,
    updated_at                DateTime64(3, 'UTC'),
    is_deleted                UInt8
)
ENGINE = ReplacingMergeTree(updated_at, is_deleted)
ORDER BY dim_crm_account_id
COMMENT 'Orange. Grain: one row per CRM account (dim_crm_account_id); read with FINAL.';
