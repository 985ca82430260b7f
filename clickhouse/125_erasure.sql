-- Erasure of a user, a SaaS namespace or a self-managed instance (streams/erase.py, README "Erasure").
--
-- erasure_list: what the agents must never store again, consulted by every sink before it writes (a replay of the
-- raw topics must not bring an erased subject back). A subject is kept only as a digest under the erasure key
-- (blake2b-128 keyed with a key derived from DENOMAS_HASH_KEY, of "kind:value": value = the user's keyed hash, the
-- namespace id, the instance uuid, a host name). Without the secret an entry can be neither tested against a
-- candidate id nor joined to the user_hash values of other tables, exports or backups.
-- Grain: kind x subject_digest. Class: Orange (pseudonymous subjects).
CREATE TABLE IF NOT EXISTS erasure_list
(
    kind           LowCardinality(String) COMMENT 'user, namespace, instance or host',
    subject_digest String COMMENT 'hex blake2b-128 of kind:value under the erasure key; never the id or its user_hash',
    listed_at      DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(listed_at)
ORDER BY (kind, subject_digest)
COMMENT 'Orange. Grain: one row per erased subject (kind, digest). Consulted by the sinks before they store.';

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

-- erasure_log: what each erasure removed, per table, without anything that identifies the subject.
-- Grain: erasure_id x table_name ('' = the summary row: days recomputed). Class: Public.
CREATE TABLE IF NOT EXISTS erasure_log
(
    erasure_id      String COMMENT 'random id of the run',
    kind            LowCardinality(String) COMMENT 'user, namespace or instance',
    started_at      DateTime64(3, 'UTC'),
    finished_at     DateTime64(3, 'UTC'),
    table_name      String COMMENT 'table rows were removed from; empty on the summary row',
    rows_deleted    UInt64,
    days_recomputed UInt32 COMMENT 'summary row: behavior days whose derived tables were recomputed'
)
ENGINE = MergeTree
ORDER BY (started_at, erasure_id, table_name)
COMMENT 'Public. Grain: one row per erasure x table (and a summary row). No id or hash of the subject.';
