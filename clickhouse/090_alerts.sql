-- alerts: one row per alert. Grain: alert_id (= rule x scope x the period it opened in).
-- The evaluator writes the open version when an alert opens and the resolved version when it resolves;
-- state_rank (1 open, 2 resolved) is the version, so the resolved row wins whatever the insert order and a
-- redelivered evaluation changes nothing. Read with FINAL.
-- Class: Orange (scope ids are installations, namespaces, subscriptions and accounts of customers).
CREATE TABLE IF NOT EXISTS alerts
(
    alert_id         String,
    rule             LowCardinality(String),
    scope_type       LowCardinality(String) COMMENT 'instance, subscription, account or namespace',
    scope_id         String COMMENT 'installation_id, dim_subscription_id, dim_crm_account_id, namespace id or instance uuid',
    signal_source    LowCardinality(String) COMMENT 'service_ping, seat_link or events',
    signal           String COMMENT 'what was measured, e.g. service_ping: active_user_count',
    condition_type   LowCardinality(String) COMMENT 'relative_drop, absolute_drop or below_band',
    state            LowCardinality(String) COMMENT 'open or resolved',
    state_rank       UInt8 COMMENT 'version: 1 open, 2 resolved',
    opened_period    Date COMMENT 'week (Monday) or day whose value opened the alert',
    opened_value     Float64,
    baseline         Float64 COMMENT 'the value it dropped from: previous comparable period, or the band median',
    threshold        Float64 COMMENT 'the level the condition fired at',
    resolved_period  Nullable(Date),
    resolved_value   Nullable(Float64),
    opened_at        DateTime64(3, 'UTC') COMMENT 'when the evaluator detected the drop',
    resolved_at      Nullable(DateTime64(3, 'UTC')),
    event            String COMMENT 'the latest JSON event published on usage.alerts for this alert'
)
ENGINE = ReplacingMergeTree(state_rank)
PARTITION BY toYYYYMM(opened_period)
ORDER BY (rule, scope_type, scope_id, alert_id)
COMMENT 'Orange. Grain: one row per alert (rule x scope x opening period); resolved replaces open. Read with FINAL.';
