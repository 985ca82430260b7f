-- mart_ping_instance_metric_monthly: fct_ping_instance_metric_monthly with the last ping's attributes (version,
-- edition, tier), its subscription and CRM account (prep_ping_subscription: license md5 OR sha256 -> subscription,
-- else the subscription id the instance reported) and the metric's current xMAU flags from dim_ping_metric
-- (read at query time, so a changed flag applies without a replay; flags sit on plain 28d paths, so the
-- exact-path join is complete). Reference mart_ping_instance_metric_monthly (section 2.12).
-- Grain: one row per installation x metrics_path x month.
-- Class: Orange (usage per installation and account).
CREATE VIEW IF NOT EXISTS mart_ping_instance_metric_monthly
(
    installation_id           String COMMENT 'md5(uuid|hostname)',
    metrics_path              String COMMENT 'dotted payload path of the metric',
    ping_created_date_month   Date COMMENT 'calendar month (UTC) of the last ping',
    ping_id                   UInt64 COMMENT 'the installation''s last ping of the month',
    recorded_at               DateTime64(3, 'UTC') COMMENT 'recorded_at of that ping',
    time_frame                LowCardinality(String) COMMENT '28d or all',
    product_section           LowCardinality(String) COMMENT 'product section owning the metric',
    product_stage             LowCardinality(String) COMMENT 'product stage owning the metric',
    product_group             LowCardinality(String) COMMENT 'product group owning the metric',
    metric_value              Float64 COMMENT 'value reported in the last ping of the month',
    monthly_metric_value      Float64 COMMENT '28d: metric_value; all: the month''s delta, floored at 0',
    instance_uuid             String COMMENT 'instance uuid',
    hostname                  String COMMENT 'hostname (Orange)',
    version                   String COMMENT 'version of the last ping',
    major_minor_version_id    UInt32 COMMENT 'major * 100 + minor',
    version_is_prerelease     UInt8 COMMENT '1 for pre-release builds',
    ping_edition              LowCardinality(String) COMMENT 'CE or EE',
    ping_product_tier         LowCardinality(String) COMMENT 'Free, Starter, Premium, Ultimate',
    ping_edition_product_tier String COMMENT 'ping_edition - ping_product_tier',
    installation_type         LowCardinality(String) COMMENT 'omnibus-gitlab, gitlab-helm-chart, docker, ...',
    instance_user_count       Nullable(Int64) COMMENT 'active users the last ping reported',
    ping_delivery_type        String COMMENT 'Self-Managed (SaaS usage comes from events, not from pings)',
    ping_deployment_type      String COMMENT 'Self-Managed',
    latest_subscription_id    String COMMENT 'subscription of the ping''s license; empty when none',
    dim_crm_account_id        String COMMENT 'CRM account of that subscription; empty when unknown (Orange)',
    is_smau                   UInt8 COMMENT 'metric is tagged smau in dim_ping_metric',
    is_gmau                   UInt8 COMMENT 'metric is tagged gmau in dim_ping_metric',
    is_paid_gmau              UInt8 COMMENT 'metric is tagged paid_gmau in dim_ping_metric',
    is_umau                   UInt8 COMMENT 'metric is tagged umau in dim_ping_metric'
)
AS SELECT
    f.installation_id AS installation_id,
    f.metrics_path AS metrics_path,
    f.ping_created_date_month AS ping_created_date_month,
    f.ping_id AS ping_id,
    f.recorded_at AS recorded_at,
    f.time_frame AS time_frame,
    f.product_section AS product_section,
    f.product_stage AS product_stage,
    f.product_group AS product_group,
    f.metric_value AS metric_value,
    f.monthly_metric_value AS monthly_metric_value,
    p.instance_uuid AS instance_uuid,
    p.hostname AS hostname,
    p.version AS version,
    p.major_minor_version_id AS major_minor_version_id,
    p.version_is_prerelease AS version_is_prerelease,
    p.ping_edition AS ping_edition,
    p.product_tier AS ping_product_tier,
    p.ping_edition_product_tier AS ping_edition_product_tier,
    p.installation_type AS installation_type,
    p.active_user_count AS instance_user_count,
    'Self-Managed' AS ping_delivery_type,
    'Self-Managed' AS ping_deployment_type,
    s.dim_subscription_id AS latest_subscription_id,
    s.dim_crm_account_id AS dim_crm_account_id,
    d.is_smau AS is_smau,
    d.is_gmau AS is_gmau,
    d.is_paid_gmau AS is_paid_gmau,
    d.is_umau AS is_umau
FROM fct_ping_instance_metric_monthly AS f
INNER JOIN (SELECT * FROM dim_ping_instance WHERE is_last_ping_of_month = 1) AS p ON f.ping_id = p.ping_id
LEFT JOIN (SELECT ping_id, dim_subscription_id, dim_crm_account_id FROM prep_ping_subscription) AS s
    ON f.ping_id = s.ping_id
LEFT JOIN
(
    SELECT metrics_path, is_smau, is_gmau, is_paid_gmau, is_umau FROM dim_ping_metric FINAL
) AS d ON f.metrics_path = d.metrics_path
COMMENT 'Orange. Grain: one row per installation x metrics_path x month. fct_ping_instance_metric_monthly with the last ping''s version, edition and tier, its subscription and CRM account (license md5 or sha256), and the metric''s current xMAU flags from dim_ping_metric. The model for monthly analysis.';
