-- prep_metric_xmau_type: which xMAU each metric measures (reference section 8): the one definition of the rule that
-- turns a metric dictionary's performance_indicator_type flags (is_umau, is_smau, is_gmau, is_paid_gmau) into xMAU
-- types. Self-Managed metrics come from dim_ping_metric (Service Ping), SaaS metrics from dim_event_metric (events),
-- both read at query time, so a changed flag applies without a replay. A metric with two flags (gmau and paid_gmau)
-- has one row per type. Paid GMAU is a type of Self-Managed metrics only: SaaS Paid GMAU would need the paying
-- namespaces' users counted once across namespaces, which the 'saas' scope cannot split. Paid GMAU counts only
-- installations on a paid tier: its readers apply that per ping (rpt_xmau_self_managed_monthly).
-- Grain: one row per delivery x metrics_path x xmau_type. Class: Public (definitions only).
CREATE VIEW IF NOT EXISTS prep_metric_xmau_type
(
    delivery     String COMMENT 'Self-Managed (a dim_ping_metric metric) or SaaS (a dim_event_metric metric)',
    metrics_path String COMMENT 'metrics_path of dim_ping_metric, or key_path of dim_event_metric',
    xmau_type    String COMMENT 'UMAU, SMAU, GMAU or Paid GMAU (Self-Managed only)'
)
AS SELECT delivery, metrics_path, xmau_type
FROM
(
    SELECT 'Self-Managed' AS delivery, metrics_path, is_umau, is_smau, is_gmau, is_paid_gmau
    FROM dim_ping_metric FINAL
    UNION ALL
    SELECT 'SaaS' AS delivery, key_path AS metrics_path, is_umau, is_smau, is_gmau, toUInt8(0) AS is_paid_gmau
    FROM dim_event_metric FINAL
)
ARRAY JOIN arrayFilter(t -> t != '', [
    if(is_umau = 1, 'UMAU', ''),
    if(is_smau = 1, 'SMAU', ''),
    if(is_gmau = 1, 'GMAU', ''),
    if(is_paid_gmau = 1, 'Paid GMAU', '')
]) AS xmau_type
COMMENT 'Public. Grain: one row per delivery x metrics_path x xmau_type. The xMAU types (UMAU, SMAU, GMAU, Paid GMAU) each metric of dim_ping_metric (Self-Managed) and dim_event_metric (SaaS) measures, from their flags.';
