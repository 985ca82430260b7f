-- raw_service_ping_part: pieces of the original payload of a ping whose normalized record was cut into parts to fit
-- the topic's record limit (streams/agents/service_ping.py, split_record). The sink stores each part's piece and
-- metric rows as they come; with the last part it joins the pieces into raw_service_ping and then writes the ping
-- row, so a ping counts as stored only when all of it is. Pieces are kept 30 days (redelivery and debugging).
-- Grain: one row per raw record (Kafka position) x part. Class: Orange (original payloads).
CREATE TABLE IF NOT EXISTS raw_service_ping_part
(
    ping_id         UInt64 COMMENT 'id of the ping',
    kafka_partition UInt32 COMMENT 'partition of the raw record the parts were cut from',
    kafka_offset    UInt64 COMMENT 'offset of that raw record',
    part            UInt32 COMMENT '0-based index of the part',
    parts           UInt32 COMMENT 'how many parts the record was cut into',
    piece           String CODEC(ZSTD(3)) COMMENT 'this part''s slice of the original JSON',
    stored_at       DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'when the sink stored the piece'
)
ENGINE = ReplacingMergeTree
ORDER BY (ping_id, kafka_partition, kafka_offset, part)
TTL toDateTime(stored_at) + INTERVAL 30 DAY
COMMENT 'Orange. Grain: one row per raw Service Ping record x part. Payload pieces of pings cut into parts.';
