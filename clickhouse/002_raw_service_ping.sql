-- raw_service_ping: what arrived, for audit and replay.
-- Grain: one row per Service Ping (ping_id = hash of instance uuid + recorded_at; a redelivery replaces itself).
-- Class: Orange (the payload holds hostnames, licensee names and license hashes).
CREATE TABLE IF NOT EXISTS raw_service_ping
(
    ping_id         UInt64,
    instance_uuid   String,
    recorded_at     DateTime64(3, 'UTC'),
    received_at     DateTime64(3, 'UTC'),
    kafka_partition UInt32,
    kafka_offset    UInt64,
    payload         String CODEC(ZSTD(3)) COMMENT 'original JSON bytes as the instance sent them'
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(recorded_at)
ORDER BY ping_id
COMMENT 'Orange. Grain: one row per Service Ping. Original payloads, compressed.';
