-- Erasure of a user, a SaaS namespace or a self-managed instance (streams/erase.py, README "Erasure").
-- erasure_pending: the subject of an erasure while it runs (its user_hash, namespace id, instance uuid, the instance's
-- host names, installation ids and ping ids, the affected days), so that every DELETE refers to it by erasure_id
-- and no statement text (system.mutations keeps them) holds the subject. Emptied when the erasure ends; a crashed
-- erasure's rows are removed by the next run for the same subject (by digest).
-- Grain: erasure_id x kind x value. Class: Orange (transient).
CREATE TABLE IF NOT EXISTS erasure_pending
(
    erasure_id     String,
    subject_digest String COMMENT 'digest of the erased subject (erasure_list)',
    kind           LowCardinality(String) COMMENT 'user, namespace, instance, host, installation, ping, day',
    number         UInt64 COMMENT 'numeric values: user_hash, namespace id, ping id',
    text           String COMMENT 'text values: instance uuid, host name, installation id, day',
    started_at     DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY (erasure_id, kind)
COMMENT 'Orange. Grain: one row per value of a running erasure; empty when no erasure runs.';
