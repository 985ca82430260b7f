-- A use-case report for product and customer success, from the installations' last ping of each month (as in
-- 060_rpt_version_lag_monthly.sql).
-- rpt_stage_adoption_monthly: the stages each installation uses: a stage is adopted in a month when any 28-day
-- metric of that stage is above 0 in the installation's last ping of the month (error markers never count).
-- Grain: one row per installation x month x adopted product_stage. Class: Orange (per installation).
CREATE VIEW IF NOT EXISTS rpt_stage_adoption_monthly
(
    ping_created_date_month Date COMMENT 'calendar month',
    installation_id         String COMMENT 'md5(uuid|hostname)',
    dim_crm_account_id      String COMMENT 'CRM account; empty when unknown',
    product_tier            String COMMENT 'Free, Starter, Premium, Ultimate',
    product_stage           LowCardinality(String) COMMENT 'the adopted stage',
    metrics_with_usage      UInt64 COMMENT '28-day metrics of the stage above 0',
    max_metric_value        Float64 COMMENT 'largest of those values'
)
AS SELECT
    p.ping_created_date_month AS ping_created_date_month,
    m.installation_id AS installation_id,
    any(s.dim_crm_account_id) AS dim_crm_account_id,
    any(p.product_tier) AS product_tier,
    m.product_stage AS product_stage,
    count() AS metrics_with_usage,
    max(assumeNotNull(m.metric_value)) AS max_metric_value
FROM fct_ping_instance_metric AS m FINAL
INNER JOIN
(
    SELECT ping_id, ping_created_date_month, product_tier FROM dim_ping_instance WHERE is_last_ping_of_month = 1
) AS p ON m.ping_id = p.ping_id
LEFT JOIN (SELECT ping_id, dim_crm_account_id FROM prep_ping_subscription) AS s ON m.ping_id = s.ping_id
WHERE m.is_defined = 1 AND m.time_frame = '28d' AND m.product_stage != '' AND m.metric_value > 0
GROUP BY ping_created_date_month, installation_id, product_stage
COMMENT 'Orange. Grain: one row per installation x month x adopted stage (a 28-day metric of the stage above 0).';
