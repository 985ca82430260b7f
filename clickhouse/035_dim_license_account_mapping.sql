-- Reference data like dim_license (030): one row per natural id after FINAL; deletions are rows with is_deleted = 1.
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
