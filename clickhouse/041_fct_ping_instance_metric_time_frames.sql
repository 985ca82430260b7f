-- Time-frame variants of fct_ping_instance_metric (reference fct_ping_instance_metric_7_day, _28_day, _all_time,
-- _none_null). Grain of each: one row per ping x metrics_path, like the fact they filter.
-- The reference attaches time_frame by joining the metric dictionary: an INNER join for _7_day/_28_day/_all_time
-- (only dictionary metrics), a LEFT join for _none_null (time_frame 'none' or no definition at all).
-- Our agent attaches the same dictionary attributes at ingest, with the dictionary's lookup rules (exact path, path
-- without list indices, object prefix), so the join is the is_defined flag: is_defined = 1 is the INNER join,
-- is_defined = 0 is the LEFT join's NULL time_frame. A changed dictionary reaches these rows by a replay.
-- Plain views over the fact with FINAL: exact before merges, nothing to refresh.
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
AS SELECT ping_id, installation_id, recorded_at, metrics_path, metric_value, error_value, is_defined, time_frame,
       data_source, product_section, product_stage, product_group, tier, performance_indicator_type, metric_status
FROM fct_ping_instance_metric FINAL
WHERE is_defined = 1 AND time_frame = '7d'
COMMENT 'Orange. Grain: one row per ping x metrics_path. 7-day metrics (time_frame 7d, defined in the dictionary).';

CREATE VIEW IF NOT EXISTS fct_ping_instance_metric_28_day
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
AS SELECT ping_id, installation_id, recorded_at, metrics_path, metric_value, error_value, is_defined, time_frame,
       data_source, product_section, product_stage, product_group, tier, performance_indicator_type, metric_status
FROM fct_ping_instance_metric FINAL
WHERE is_defined = 1 AND time_frame = '28d'
COMMENT 'Orange. Grain: one row per ping x metrics_path. 28-day metrics (time_frame 28d, defined in the dictionary).';

CREATE VIEW IF NOT EXISTS fct_ping_instance_metric_all_time
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
AS SELECT ping_id, installation_id, recorded_at, metrics_path, metric_value, error_value, is_defined, time_frame,
       data_source, product_section, product_stage, product_group, tier, performance_indicator_type, metric_status
FROM fct_ping_instance_metric FINAL
WHERE is_defined = 1 AND time_frame = 'all'
COMMENT 'Orange. Grain: one row per ping x metrics_path. All-time metrics (time_frame all, defined in the dictionary).';

CREATE VIEW IF NOT EXISTS fct_ping_instance_metric_none_null
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
AS SELECT ping_id, installation_id, recorded_at, metrics_path, metric_value, error_value, is_defined, time_frame,
       data_source, product_section, product_stage, product_group, tier, performance_indicator_type, metric_status
FROM fct_ping_instance_metric FINAL
WHERE is_defined = 0 OR time_frame = 'none'
COMMENT 'Orange. Grain: one row per ping x metrics_path. Metrics with time_frame none or without a definition.';
