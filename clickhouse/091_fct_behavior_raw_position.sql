-- Where each Snowplow event came from on the raw topic: the partition and offset of the collector's request record
-- that held it (one record per request and user), so the completeness check (streams/checks/completeness.py) finds
-- every raw Snowplow offset that landed by position. -1 where unknown: rows written before this migration or by a
-- replay; the check then reads such records back and looks for their event ids.
ALTER TABLE fct_behavior_structured_event
    ADD COLUMN IF NOT EXISTS kafka_partition Int32 DEFAULT -1
        COMMENT 'partition of usage.raw.snowplow the event arrived on; -1 = unknown',
    ADD COLUMN IF NOT EXISTS kafka_offset Int64 DEFAULT -1
        COMMENT 'offset of its request record on that partition; -1 = unknown';
