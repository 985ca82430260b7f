-- check_results: every result of every trusted-data check run (`denomas-usage check`, the worker's schedule).
-- Grain: one row per run x check x scope (scope: a partition of a topic, a source x reason, empty for one-table
-- checks). Results are history, never replaced: the newest run of a check is its current state.
-- Class: public (names, counts and offsets; messages never quote row values of Orange/Yellow columns).
CREATE TABLE IF NOT EXISTS check_results
(
    run_id      String COMMENT 'one id per run of the selected checks',
    checked_at  DateTime64(3, 'UTC'),
    check_name  String,
    kind        LowCardinality(String) COMMENT 'unique, not_null, accepted_values, relationships, row_count, golden, freshness, completeness, dead_letter_rate, xmau_change',
    table_name  String COMMENT 'the table, view or topic checked',
    scope       String COMMENT 'partition, source/stage, ... ; empty when the check has one result',
    severity    LowCardinality(String) COMMENT 'error: a failure fails the run; warn: reported only',
    status      LowCardinality(String) COMMENT 'pass, warn, fail, or error (the check itself could not run)',
    observed    Nullable(Float64) COMMENT 'the measured value: offending rows, age in seconds, offset, rate, change',
    threshold   String COMMENT 'what the observed value was compared with',
    message     String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(checked_at)
ORDER BY (check_name, scope, checked_at)
COMMENT 'Public. Grain: one row per check run x check x scope. Trusted-data results (history).';
