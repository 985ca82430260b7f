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
