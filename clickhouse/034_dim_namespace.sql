-- Reference data like dim_license (030): one row per natural id after FINAL; deletions are rows with is_deleted = 1.
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
