-- dim_app_release: the Denomas releases Version Check compares instances against.
-- Grain: one row per released version (major.minor.patch). Operators add and correct rows with
-- `denomas-usage releases load FILE.csv`; the newest load of a version wins (ReplacingMergeTree on
-- updated_at; read with FINAL). Seeded from schemas/releases.csv when empty.
-- Class: public.
CREATE TABLE IF NOT EXISTS dim_app_release
(
    version      String,
    major        UInt16,
    minor        UInt16,
    patch        UInt16,
    release_date Date,
    is_security  UInt8 COMMENT '1: a security release (fixes vulnerabilities in older versions)',
    updated_at   DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (major, minor, patch)
COMMENT 'public. Grain: one row per Denomas release version.';
