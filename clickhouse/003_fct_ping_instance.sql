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
    error_metric_count      UInt32
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(recorded_at)
ORDER BY (installation_id, recorded_at, ping_id)
COMMENT 'Orange/Yellow. Grain: one row per Service Ping.';

-- dim_installation: one row per installation (uuid + hostname), folded from its pings.
CREATE TABLE IF NOT EXISTS dim_installation
(
    installation_id   String,
    instance_uuid     String,
    hostname          String,
    first_ping_at     SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_ping_at      SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
    latest_version    AggregateFunction(argMax, String, DateTime64(3, 'UTC')),
    latest_edition    AggregateFunction(argMax, String, DateTime64(3, 'UTC')),
    latest_installation_type AggregateFunction(argMax, String, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
ORDER BY (installation_id, instance_uuid, hostname)
COMMENT 'Orange. Grain: one row per installation after GROUP BY; read with min/max/argMaxMerge.';

CREATE MATERIALIZED VIEW IF NOT EXISTS dim_installation_mv TO dim_installation AS
SELECT installation_id, instance_uuid, hostname,
       min(recorded_at) AS first_ping_at, max(recorded_at) AS last_ping_at,
       argMaxState(version, recorded_at) AS latest_version,
       argMaxState(toString(edition), recorded_at) AS latest_edition,
       argMaxState(toString(installation_type), recorded_at) AS latest_installation_type
FROM fct_ping_instance
GROUP BY installation_id, instance_uuid, hostname;
