-- raw_dead_letter: every record a stage could not process, with its original bytes and the reason.
-- Grain: one row per failed record (dead_letter_id = hash of source topic, partition, offset or of the bytes).
-- Class: Orange (original payloads).
CREATE TABLE IF NOT EXISTS raw_dead_letter
(
    dead_letter_id  UInt64,
    source          LowCardinality(String) COMMENT 'service_ping, seat_link, version_check, snowplow, ...',
    stage           LowCardinality(String) COMMENT 'where it failed: collector, validate, normalize, sink',
    reason          String,
    original        String CODEC(ZSTD(3)) COMMENT 'original bytes, unchanged',
    received_at     DateTime64(3, 'UTC'),
    failed_at       DateTime64(3, 'UTC'),
    kafka_topic     LowCardinality(String),
    kafka_partition UInt32,
    kafka_offset    UInt64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY (source, dead_letter_id)
COMMENT 'Orange. Grain: one row per rejected record. The reject table behind the usage.dlq topic.';
