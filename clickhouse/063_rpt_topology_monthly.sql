-- A use-case report for product and customer success, from the installations' last ping of each month (as in
-- 060_rpt_version_lag_monthly.sql).
-- rpt_topology_monthly: size of each installation (topology.nodes[i] of the ping) and its CI runners, and how
-- that changed since its previous reported month (scaling up or down).
-- Grain: one row per installation x month.
-- node_count = distinct i among topology.nodes[i].* paths; total_cpus / total_memory_bytes = sums of
-- node_cpus / node_memory_total_bytes; services = node_services[j] entries over all nodes (service names are
-- strings, not metrics); processes = sum of their process_count. Runner counts are NULL when the instance sent an
-- error marker for them. scaling compares node_count, then total_cpus, with the previous reported month.
-- Class: Orange (per installation).
CREATE VIEW IF NOT EXISTS rpt_topology_monthly
(
    ping_created_date_month    Date COMMENT 'calendar month',
    installation_id            String COMMENT 'md5(uuid|hostname)',
    dim_crm_account_id         String COMMENT 'CRM account; empty when unknown',
    installation_type          String COMMENT 'omnibus-gitlab, gitlab-helm-chart, ...',
    node_count                 UInt64 COMMENT 'nodes in topology.nodes',
    total_cpus                 Float64 COMMENT 'sum of node_cpus',
    total_memory_bytes         Float64 COMMENT 'sum of node_memory_total_bytes',
    services                   UInt64 COMMENT 'service entries (node_services[j]) over all nodes',
    processes                  Float64 COMMENT 'sum of process_count over all services',
    ci_runners                 Nullable(Float64) COMMENT 'counts.ci_runners (all runners); NULL on an error marker',
    active_runners             Nullable(Float64) COMMENT 'instance + group + project type active runners; NULL on an error marker',
    previous_month             Nullable(Date) COMMENT 'previous month the installation reported',
    node_count_change          Nullable(Int64) COMMENT 'node_count - previous node_count',
    total_cpus_change          Nullable(Float64) COMMENT 'total_cpus - previous total_cpus',
    active_runners_change      Nullable(Float64) COMMENT 'active_runners - previous active_runners',
    scaling                    String COMMENT 'up, down or same (nodes, then CPUs) vs the previous month; first for the first'
)
AS SELECT
    ping_created_date_month, installation_id, dim_crm_account_id, installation_type, node_count, total_cpus,
    total_memory_bytes, services, processes, ci_runners, active_runners,
    previous_month,
    if(previous_month IS NULL, NULL, toInt64(node_count) - toInt64(previous_node_count)) AS node_count_change,
    if(previous_month IS NULL, NULL, total_cpus - previous_cpus) AS total_cpus_change,
    if(previous_month IS NULL, NULL, active_runners - previous_active_runners) AS active_runners_change,
    multiIf(previous_month IS NULL, 'first',
            node_count > previous_node_count, 'up', node_count < previous_node_count, 'down',
            total_cpus > previous_cpus, 'up', total_cpus < previous_cpus, 'down', 'same') AS scaling
FROM
(
    SELECT
        *,
        lagInFrame(toNullable(ping_created_date_month), 1, NULL) OVER w AS previous_month,
        lagInFrame(node_count, 1, 0) OVER w AS previous_node_count,
        lagInFrame(total_cpus, 1, 0) OVER w AS previous_cpus,
        lagInFrame(active_runners, 1, NULL) OVER w AS previous_active_runners
    FROM
    (
        SELECT
            p.ping_created_date_month AS ping_created_date_month,
            p.installation_id AS installation_id,
            any(s.dim_crm_account_id) AS dim_crm_account_id,
            any(p.installation_type) AS installation_type,
            uniqExactIf(extract(m.metrics_path, '^topology\\.nodes\\[(\\d+)\\]'),
                        startsWith(m.metrics_path, 'topology.nodes[')) AS node_count,
            sumIf(ifNull(m.metric_value, 0), match(m.metrics_path, '^topology\\.nodes\\[\\d+\\]\\.node_cpus$')) AS total_cpus,
            sumIf(ifNull(m.metric_value, 0), match(m.metrics_path, '^topology\\.nodes\\[\\d+\\]\\.node_memory_total_bytes$'))
                AS total_memory_bytes,
            uniqExactIf(extract(m.metrics_path, '^(topology\\.nodes\\[\\d+\\]\\.node_services\\[\\d+\\])'),
                        match(m.metrics_path, '^topology\\.nodes\\[\\d+\\]\\.node_services\\[\\d+\\]\\.')) AS services,
            sumIf(ifNull(m.metric_value, 0),
                  match(m.metrics_path, '^topology\\.nodes\\[\\d+\\]\\.node_services\\[\\d+\\]\\.process_count$'))
                AS processes,
            anyIf(m.metric_value, m.metrics_path = 'counts.ci_runners') AS ci_runners,
            if(countIf(m.metrics_path IN ('counts.ci_runners_instance_type_active', 'counts.ci_runners_group_type_active',
                                          'counts.ci_runners_project_type_active') AND m.metric_value IS NOT NULL) = 3,
               sumIf(m.metric_value, m.metrics_path IN ('counts.ci_runners_instance_type_active',
                                                        'counts.ci_runners_group_type_active',
                                                        'counts.ci_runners_project_type_active')),
               NULL) AS active_runners
        FROM fct_ping_instance_metric AS m FINAL
        INNER JOIN
        (
            SELECT ping_id, ping_created_date_month, installation_id, installation_type
            FROM dim_ping_instance WHERE is_last_ping_of_month = 1
        ) AS p ON m.ping_id = p.ping_id
        LEFT JOIN (SELECT ping_id, dim_crm_account_id FROM prep_ping_subscription) AS s ON m.ping_id = s.ping_id
        WHERE startsWith(m.metrics_path, 'topology.nodes[') OR startsWith(m.metrics_path, 'counts.ci_runners')
        GROUP BY ping_created_date_month, installation_id
    )
    WINDOW w AS (PARTITION BY installation_id ORDER BY ping_created_date_month ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)
)
COMMENT 'Orange. Grain: one row per installation x month. Nodes (topology.nodes[i]), CPUs, memory, services and processes, CI runners, and their change since the installation''s previous reported month: scaling up, down or same.';
