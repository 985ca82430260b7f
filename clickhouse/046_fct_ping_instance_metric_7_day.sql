-- fct_ping_instance_metric_7_day: a time-frame variant of fct_ping_instance_metric (reference
-- fct_ping_instance_metric_7_day, _28_day, _all_time, _none_null), with its columns but value_kind and value_text.
-- Each of the four views lists the columns again for their comments: ClickHouse views cannot share a column list.
-- Grain: one row per ping x metrics_path, like the fact it filters.
-- The reference attaches time_frame by joining the metric dictionary: an INNER join for _7_day/_28_day/_all_time
-- (only dictionary metrics), a LEFT join for _none_null (time_frame 'none' or no definition at all). The agent
-- attaches the same attributes at ingest with the dictionary's lookup rules, so that join is the is_defined flag.
-- A changed dictionary reaches these rows by a replay. A plain view over the fact with FINAL: exact before merges.
-- Class: Orange (usage per installation).
CREATE VIEW IF NOT EXISTS fct_ping_instance_metric_7_day
(
    ping_id                    UInt64 COMMENT 'id of the ping',
    installation_id            String COMMENT 'md5(uuid|hostname)',
    recorded_at                DateTime64(3, 'UTC') COMMENT 'when the instance built the ping',
    metrics_path               String COMMENT 'dotted payload path of the metric, list items as [i]',
    metric_value               Nullable(Float64) COMMENT 'value; NULL when the instance sent an error marker',
    error_value                Int32 COMMENT '0, or the negative marker sent (-1 timeout, -2 error, -1000 deprecated)',
    is_defined                 UInt8 COMMENT '1 when the metric dictionary defines the path',
    time_frame                 LowCardinality(String) COMMENT '7d, 28d, all or none (from the dictionary)',
    data_source                LowCardinality(String) COMMENT 'database, redis, redis_hll, system, ... (from the dictionary)',
    product_section            LowCardinality(String) COMMENT 'product section owning the metric',
    product_stage              LowCardinality(String) COMMENT 'product stage owning the metric',
    product_group              LowCardinality(String) COMMENT 'product group owning the metric',
    tier                       Array(LowCardinality(String)) COMMENT 'tiers the metric is available in',
    performance_indicator_type Array(LowCardinality(String)) COMMENT 'xMAU tags at ingest: smau, gmau, paid_gmau, umau, ...',
    metric_status              LowCardinality(String) COMMENT 'active, removed, ... (from the dictionary)'
)
AS SELECT * EXCEPT (value_kind, value_text)
FROM fct_ping_instance_metric FINAL
WHERE is_defined = 1 AND time_frame = '7d'
COMMENT 'Orange. Grain: one row per ping x metrics_path. 7-day metrics (time_frame 7d, defined in the dictionary).';
