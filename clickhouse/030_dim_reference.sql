-- Reference data: licenses (CustomersDot), subscriptions and billing accounts (Zuora), CRM accounts, Denomas.com
-- namespaces, and the manual license -> subscription/account mappings customer success maintains.
-- Loaded from CSV (`denomas-usage reference load`) and from the compacted usage.ref.* topics (reference agent).
-- Every table: one row per natural id after FINAL. The newest updated_at wins (ties: the later insert); a
-- deletion (topic tombstone) is a row with is_deleted = 1, which FINAL hides together with all older versions.
-- Read them with FINAL.

-- dim_license. Grain: one row per dim_license_id. Class: Yellow (seats, plan) + license key hashes (never keys).
CREATE TABLE IF NOT EXISTS dim_license
(
    dim_license_id      String,
    license_md5         String COMMENT 'md5 of the license key; empty when CustomersDot has only the sha256',
    license_sha256      String COMMENT 'sha256 of the license key; empty when CustomersDot has only the md5',
    dim_subscription_id String COMMENT 'Zuora subscription; empty for trials',
    license_user_count  Int64,
    license_plan        String,
    is_trial            UInt8,
    starts_at           Nullable(Date),
    expires_at          Nullable(Date),
    updated_at          DateTime64(3, 'UTC'),
    is_deleted          UInt8
)
ENGINE = ReplacingMergeTree(updated_at, is_deleted)
ORDER BY dim_license_id
COMMENT 'Yellow. Grain: one row per license (dim_license_id); read with FINAL.';

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

-- dim_namespace. Grain: one row per Denomas.com top-level namespace_id. Class: Orange.
CREATE TABLE IF NOT EXISTS dim_namespace
(
    namespace_id        UInt64,
    namespace_name      String,
    plan                String,
    dim_subscription_id String,
    dim_crm_account_id  String,
    created_at          Nullable(DateTime64(3, 'UTC')),
    updated_at          DateTime64(3, 'UTC'),
    is_deleted          UInt8
)
ENGINE = ReplacingMergeTree(updated_at, is_deleted)
ORDER BY namespace_id
COMMENT 'Orange. Grain: one row per namespace (namespace_id); read with FINAL.';

-- dim_license_account_mapping: the manual license -> subscription (-> account) mapping, like the reference
-- model's license_md5_to_subscription_mapping seed. Used only where CustomersDot names no subscription for a
-- license, or the subscription resolves to no account. Grain: one row per license_hash (md5 or sha256). Orange.
CREATE TABLE IF NOT EXISTS dim_license_account_mapping
(
    license_hash        String COMMENT 'license md5 (32 hex) or sha256 (64 hex)',
    dim_subscription_id String,
    dim_crm_account_id  String,
    note                String,
    updated_at          DateTime64(3, 'UTC'),
    is_deleted          UInt8
)
ENGINE = ReplacingMergeTree(updated_at, is_deleted)
ORDER BY license_hash
COMMENT 'Orange. Grain: one row per license hash (license_hash); read with FINAL.';
