-- fct_ping_instance: one row per valid Service Ping, with parsed version, tier and license fields.
-- Grain: ping_id. Deduplicated twice: the sink skips ping_ids already present, and the engine
-- collapses any leftover copy (ReplacingMergeTree; query with FINAL to be exact before merges).
-- Class: Orange (hostname, license hashes), Yellow (license seat counts).
CREATE TABLE IF NOT EXISTS fct_ping_instance
(
    ping_id                 UInt64,
    installation_id         String COMMENT 'md5(uuid|hostname): an installation is uuid + hostname',
    instance_uuid           String,
    hostname                String,
    recorded_at             DateTime64(3, 'UTC'),
    received_at             DateTime64(3, 'UTC'),
    version                 String,
    major_version           UInt16,
    minor_version           UInt16,
    patch_version           UInt16,
    prerelease              LowCardinality(String),
    version_edition         LowCardinality(String),
    edition                 LowCardinality(String),
    main_edition            LowCardinality(String),
    product_tier            LowCardinality(String),
    installation_type       LowCardinality(String),
    active_user_count       Nullable(Int64),
    historical_max_users    Nullable(Int64),
    license_user_count      Nullable(Int64),
    license_billable_users  Nullable(Int64),
    license_md5             String,
    license_sha256          String,
    license_id              Nullable(Int64),
    license_subscription_id String,
    license_plan            LowCardinality(String),
    license_trial           UInt8,
    license_starts_at       Nullable(Date),
    license_expires_at      Nullable(Date),
    license_trial_ends_on   Nullable(Date),
    pg_system_id            Nullable(UInt64),
    metric_count            UInt32,
    error_metric_count      UInt32,
    flagged_metric_count    UInt32 DEFAULT 0
        COMMENT 'metrics of the ping with value_kind negative or too_large (kept as text, never counted)',
    -- when the sink stored the ping: received_at (collector) to ingested_at (queryable) is the pipeline's end-to-end
    -- latency, read by the benchmarks and by freshness checks
    ingested_at             DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(recorded_at)
ORDER BY (installation_id, recorded_at, ping_id)
COMMENT 'Orange/Yellow. Grain: one row per Service Ping.';
