-- alert_delivery: webhook deliveries. Grain: destination x event_id (event_id = alert_id:state).
-- status: delivered, pending (parked, retried by the leader worker at next_attempt_at) or dead (gave up or
-- refused; the event also went to usage.dlq). version = 2 * attempts (+1 once final), so the newest try wins.
-- Class: Orange (the event names the scope).
CREATE TABLE IF NOT EXISTS alert_delivery
(
    destination      LowCardinality(String),
    event_id         String,
    alert_id         String,
    status           LowCardinality(String) COMMENT 'delivered, pending or dead',
    attempts         UInt32,
    http_status      UInt16 COMMENT '0 when there was no HTTP answer',
    last_error       String,
    next_attempt_at  DateTime64(3, 'UTC'),
    event            String COMMENT 'the JSON event, kept to retry a parked delivery',
    kafka_partition  UInt32 COMMENT 'where the event is on usage.alerts (for the dead-letter record)',
    kafka_offset     UInt64,
    updated_at       DateTime64(3, 'UTC'),
    version          UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (destination, event_id)
COMMENT 'Orange. Grain: one row per destination x alert event (delivery status). Read with FINAL.';
