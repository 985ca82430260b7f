-- alert_scope_state: what the evaluator remembers per rule and scope between landings.
-- Grain: rule x scope_type x scope_id. Newest updated_at wins (one evaluator per scope at a time: the
-- usage.landed topic is keyed by scope). Read with FINAL.
-- Class: Orange (scope ids).
CREATE TABLE IF NOT EXISTS alert_scope_state
(
    rule               LowCardinality(String),
    scope_type         LowCardinality(String),
    scope_id           String,
    evaluated_through  Date COMMENT 'newest period evaluated',
    last_change        Nullable(Date) COMMENT 'period of the last open or resolve',
    last_resolved      Nullable(Date) COMMENT 'start of the cooldown',
    open_alert_id      String COMMENT 'empty when no alert is open',
    open_period        Nullable(Date),
    open_value         Nullable(Float64),
    open_baseline      Nullable(Float64),
    open_threshold     Nullable(Float64),
    open_opened_at     Nullable(DateTime64(3, 'UTC')),
    updated_at         DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (rule, scope_type, scope_id)
COMMENT 'Orange. Grain: one row per rule x scope (evaluator state). Read with FINAL.';
