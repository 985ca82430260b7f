-- Reference data (CustomersDot licenses, Zuora subscriptions and billing accounts, CRM accounts, Denomas.com
-- namespaces, customer success's manual license mappings), loaded from CSV (`denomas-usage reference load`) and from
-- the compacted usage.ref.* topics (reference agent). One row per natural id after FINAL: the newest updated_at wins
-- (ties: the later insert); a deletion (topic tombstone) is a row with is_deleted = 1, which FINAL hides together
-- with all older versions. Read with FINAL.
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
