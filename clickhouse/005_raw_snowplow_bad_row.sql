-- raw_snowplow_bad_row: Snowplow events and requests that could not be used, shaped like Snowplow bad rows.
-- Grain: one row per bad event (request_id + event_index + stage of the collector receipt; the dead letter id
-- where a record carries no receipt). A view over raw_dead_letter, which keeps one row per failed Kafka record:
-- a replay of the raw topic adds dead letters there but no rows here.
-- reason holds the bad row JSON {schema, data: {processor, failure: {timestamp, messages}, payload}}; the payload
-- bytes themselves are raw_dead_letter.original (with any ip parameter blanked by the collector).
-- Class: Orange (original payloads).
CREATE VIEW IF NOT EXISTS raw_snowplow_bad_row AS
SELECT
    JSONExtractString(reason, 'schema') AS bad_row_type,
    JSONExtractString(reason, 'data', 'processor', 'artifact') AS processor_artifact,
    JSONExtractString(reason, 'data', 'processor', 'version') AS processor_version,
    JSONExtract(reason, 'data', 'failure', 'messages', 'Array(String)') AS failure_messages,
    JSONExtractString(reason, 'data', 'payload', 'request_id') AS request_id,
    JSONExtractInt(reason, 'data', 'payload', 'event_index') AS event_index,
    JSONExtractString(reason, 'data', 'payload', 'collector_tstamp') AS collector_tstamp,
    JSONExtractString(reason, 'data', 'payload', 'useragent') AS useragent,
    stage,
    original,
    reason AS bad_row,
    received_at,
    failed_at,
    dead_letter_id,
    kafka_topic,
    kafka_partition,
    kafka_offset
FROM raw_dead_letter FINAL
WHERE source = 'snowplow'
ORDER BY received_at, kafka_topic, kafka_partition, kafka_offset
LIMIT 1 BY if(request_id = '', toString(dead_letter_id), request_id), event_index, stage
COMMENT 'Orange. Grain: one row per bad Snowplow event (request_id, event_index, stage). View over raw_dead_letter.';
