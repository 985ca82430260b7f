-- fct_ping_instance_metric_monthly: the monthly value of every 28-day and all-time metric per installation
-- (reference fct_ping_instance_metric_monthly, section 2.9).
-- Grain: one row per installation x metrics_path x calendar month (UTC) of recorded_at.
-- Rules:
--   * only the installation's last ping of the month counts (dim_ping_instance.is_last_ping_of_month);
--   * only dictionary metrics with time_frame 28d or all; error markers never count: a metric whose last ping of
--     the month carried an error marker has no row that month;
--   * 28d: monthly_metric_value = the value reported in that last ping;
--   * all: monthly_metric_value = value - the value at the previous month's last ping that reported one (LAG over
--     this view's rows, as the reference does: a month with an error marker is skipped), floored at 0 (a counter
--     reset never yields a negative month). The first month an installation reports has no previous value and
--     counts its whole all-time value, as in the reference; previous_metric_value shows which case applies;
--   * only rows whose value_kind is 'number' count: the reference keeps only numeric values in its marts
--     (IS_REAL(metric_value), TRY_TO_DECIMAL(...) >= 0), so a boolean sent for a 28d/all metric (stored as 1/0) and a
--     flagged value (negative, too_large; metric_value NULL) never make a monthly value or an all-time delta. Items of
--     lists never reach this view: their paths (x[0]) are never a dictionary key_path, and rows are defined by the
--     exact path (docs/ping_marts.md).
-- Plain view: late or redelivered pings change the last ping and the deltas at once, exact before merges
-- (FINAL); the reference needs a 31-day delete+insert window and a delete post-hook for the same effect.
-- Class: Orange (usage per installation).
CREATE VIEW IF NOT EXISTS fct_ping_instance_metric_monthly
(
    installation_id                  String COMMENT 'md5(uuid|hostname)',
    metrics_path                     String COMMENT 'dotted payload path of the metric',
    ping_created_date_month          Date COMMENT 'calendar month (UTC) of the last ping',
    ping_id                          UInt64 COMMENT 'the installation''s last ping of the month',
    recorded_at                      DateTime64(3, 'UTC') COMMENT 'recorded_at of that ping',
    time_frame                       LowCardinality(String) COMMENT '28d or all',
    product_section                  LowCardinality(String) COMMENT 'product section owning the metric',
    product_stage                    LowCardinality(String) COMMENT 'product stage owning the metric',
    product_group                    LowCardinality(String) COMMENT 'product group owning the metric',
    metric_value                     Float64 COMMENT 'value reported in the last ping of the month (never an error marker)',
    previous_metric_value            Nullable(Float64) COMMENT 'all-time only: value at the previous month''s last ping with a value; NULL if none',
    previous_ping_created_date_month Nullable(Date) COMMENT 'all-time only: the month previous_metric_value comes from',
    monthly_metric_value             Float64 COMMENT '28d: metric_value; all: max(metric_value - previous_metric_value, 0)'
)
AS SELECT
    installation_id,
    metrics_path,
    ping_created_date_month,
    ping_id,
    recorded_at,
    time_frame,
    product_section,
    product_stage,
    product_group,
    metric_value,
    if(time_frame = 'all', previous_value, NULL) AS previous_metric_value,
    if(time_frame = 'all', previous_month, NULL) AS previous_ping_created_date_month,
    if(time_frame = 'all', greatest(metric_value - ifNull(previous_value, 0), 0), metric_value) AS monthly_metric_value
FROM
(
    SELECT
        m.installation_id AS installation_id,
        m.metrics_path AS metrics_path,
        p.ping_created_date_month AS ping_created_date_month,
        m.ping_id AS ping_id,
        m.recorded_at AS recorded_at,
        m.time_frame AS time_frame,
        m.product_section AS product_section,
        m.product_stage AS product_stage,
        m.product_group AS product_group,
        assumeNotNull(m.metric_value) AS metric_value,
        lagInFrame(toNullable(assumeNotNull(m.metric_value)), 1, NULL) OVER w AS previous_value,
        lagInFrame(toNullable(p.ping_created_date_month), 1, NULL) OVER w AS previous_month
    FROM fct_ping_instance_metric AS m FINAL
    INNER JOIN
    (
        SELECT ping_id, ping_created_date_month FROM dim_ping_instance WHERE is_last_ping_of_month = 1
    ) AS p ON m.ping_id = p.ping_id
    WHERE m.is_defined = 1 AND m.time_frame IN ('28d', 'all') AND m.value_kind = 'number'
      AND m.metric_value IS NOT NULL
    WINDOW w AS (PARTITION BY m.installation_id, m.metrics_path ORDER BY m.recorded_at, m.ping_id
                 ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)
)
COMMENT 'Orange. Grain: one row per installation x metrics_path x month. Monthly value of every dictionary metric with time frame 28d or all, from the installation''s last ping of the month: 28d as reported; all-time as the delta to the previous month''s last ping that reported a value, floored at 0 (the first month counts the whole value). Error markers never count: such a metric has no row that month. Only numbers count: booleans and flagged values (value_kind) never do.';
