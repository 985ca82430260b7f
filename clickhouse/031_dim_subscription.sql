-- Reference data like dim_license (030): one row per natural id after FINAL; deletions are rows with is_deleted = 1.
-- dim_subscription. Grain: one row per dim_subscription_id. Class: Yellow (financial).
CREATE TABLE IF NOT EXISTS dim_subscription
(
    dim_subscription_id    String,
    subscription_name      String,
    dim_crm_account_id     String COMMENT 'empty: the billing account names the CRM account',
    dim_billing_account_id String,
    subscription_status    String,
    product_tier           String,
    seats                  Int64 COMMENT 'licensed seats (Zuora quantity)',
    term_start_date        Nullable(Date),
    term_end_date          Nullable(Date),
    updated_at             DateTime64(3, 'UTC'),
    is_deleted             UInt8
)
ENGINE = ReplacingMergeTree(updated_at, is_deleted)
ORDER BY dim_subscription_id
COMMENT 'Yellow. Grain: one row per subscription (dim_subscription_id); read with FINAL.';
