-- Erasure of a user, a SaaS namespace or a self-managed instance (streams/erase.py, README "Erasure").
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
