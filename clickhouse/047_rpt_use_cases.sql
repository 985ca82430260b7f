-- Use-case reports for product and customer success, all from the installations' last ping of each month
-- (dim_ping_instance.is_last_ping_of_month). Plain views: exact for whatever has landed, nothing to refresh.
-- Accounts come from prep_ping_subscription (license md5 OR sha256 -> subscription -> CRM account); an
-- installation without a mapped account has dim_crm_account_id = ''.

-- rpt_version_lag_monthly: how far each installation is behind the newest version.
-- Grain: one row per installation x month.
-- minors_behind = how many major.minor releases newer than the installation's were available by the end of the
-- month: from dim_app_release (release_date <= last day of the month) when it lists any release, otherwise the
-- major.minor versions any installation reported by then (pre-releases excluded). Counting releases, not minor
-- numbers, keeps the lag right across a major (17.11 -> 18.1 is 2 behind).
-- is_far_behind = 1 from 3 minors behind: outside the current release and the two before it, the range that gets
-- security fixes. Class: Orange (installations, hostnames, accounts).
CREATE VIEW IF NOT EXISTS rpt_version_lag_monthly
(
    ping_created_date_month   Date COMMENT 'calendar month',
    installation_id           String COMMENT 'md5(uuid|hostname)',
    instance_uuid             String COMMENT 'instance uuid',
    hostname                  String COMMENT 'hostname (Orange)',
    dim_crm_account_id        String COMMENT 'CRM account of the installation''s subscription; empty when unknown',
    latest_subscription_id    String COMMENT 'subscription of the installation''s license; empty when none',
    installation_type         LowCardinality(String) COMMENT 'omnibus-gitlab, gitlab-helm-chart, docker, ...',
    ping_edition              LowCardinality(String) COMMENT 'CE or EE',
    product_tier              LowCardinality(String) COMMENT 'Free, Starter, Premium, Ultimate',
    active_user_count         Nullable(Int64) COMMENT 'active users of the last ping',
    version                   String COMMENT 'version of the last ping of the month',
    major_minor_version_id    UInt32 COMMENT 'major * 100 + minor',
    latest_major_minor_version String COMMENT 'newest major.minor available by the end of the month',
    minors_behind             UInt64 COMMENT 'major.minor releases newer than the installation''s, available by month end',
    is_far_behind             UInt8 COMMENT '1 when minors_behind >= 3 (outside the security-fix window)',
    lag_basis                 String COMMENT 'releases (dim_app_release) or pings (versions reported by any installation)'
)
AS WITH
    (SELECT count() FROM dim_app_release) > 0 AS has_releases,
    available AS
    (
        SELECT toUInt32(major) * 100 + minor AS version_id, toStartOfMonth(min(release_date)) AS first_month
        FROM dim_app_release FINAL
        GROUP BY version_id
        UNION ALL
        SELECT major_minor_version_id, min(ping_created_date_month)
        FROM dim_ping_instance
        WHERE (SELECT count() FROM dim_app_release) = 0 AND version_is_prerelease = 0
        GROUP BY major_minor_version_id
    ),
    by_month AS
    (
        SELECT m.ping_created_date_month AS month, groupArray(a.version_id) AS versions
        FROM (SELECT DISTINCT ping_created_date_month FROM dim_ping_instance) AS m
        CROSS JOIN available AS a
        WHERE a.first_month <= m.ping_created_date_month
        GROUP BY month
    )
SELECT
    p.ping_created_date_month AS ping_created_date_month,
    p.installation_id AS installation_id,
    p.instance_uuid AS instance_uuid,
    p.hostname AS hostname,
    s.dim_crm_account_id AS dim_crm_account_id,
    s.dim_subscription_id AS latest_subscription_id,
    p.installation_type AS installation_type,
    p.ping_edition AS ping_edition,
    p.product_tier AS product_tier,
    p.active_user_count AS active_user_count,
    p.version AS version,
    p.major_minor_version_id AS major_minor_version_id,
    concat(toString(intDiv(arrayMax(v.versions), 100)), '.', toString(arrayMax(v.versions) % 100))
        AS latest_major_minor_version,
    toUInt64(arrayCount(x -> x > p.major_minor_version_id, v.versions)) AS minors_behind,
    toUInt8(minors_behind >= 3) AS is_far_behind,
    if(has_releases, 'releases', 'pings') AS lag_basis
FROM (SELECT * FROM dim_ping_instance WHERE is_last_ping_of_month = 1) AS p
INNER JOIN by_month AS v ON p.ping_created_date_month = v.month
LEFT JOIN (SELECT ping_id, dim_subscription_id, dim_crm_account_id FROM prep_ping_subscription) AS s
    ON p.ping_id = s.ping_id
COMMENT 'Orange. Grain: one row per installation x month. How many major.minor releases newer than the installation''s last ping of the month were available by month end (dim_app_release, else versions any installation reported). is_far_behind from 3: outside the security-fix window.';

-- rpt_version_lag_account_monthly: the same per CRM account. Grain: one row per dim_crm_account_id x month
-- (installations without an account are left out). Class: Orange (accounts).
CREATE VIEW IF NOT EXISTS rpt_version_lag_account_monthly
(
    ping_created_date_month    Date COMMENT 'calendar month',
    dim_crm_account_id         String COMMENT 'CRM account',
    account_name               String COMMENT 'CRM account name (Orange); empty when dim_crm_account lacks it',
    installations              UInt64 COMMENT 'installations of the account that pinged that month',
    far_behind_installations   UInt64 COMMENT 'of those, installations 3 or more minors behind',
    max_minors_behind          UInt64 COMMENT 'the account''s worst lag',
    oldest_version             String COMMENT 'version of its installation furthest behind'
)
AS SELECT
    l.ping_created_date_month AS ping_created_date_month,
    l.dim_crm_account_id AS dim_crm_account_id,
    any(a.account_name) AS account_name,
    count() AS installations,
    countIf(l.is_far_behind = 1) AS far_behind_installations,
    max(l.minors_behind) AS max_minors_behind,
    argMax(l.version, (l.minors_behind, l.installation_id)) AS oldest_version
FROM rpt_version_lag_monthly AS l
LEFT JOIN (SELECT dim_crm_account_id, account_name FROM dim_crm_account FINAL) AS a
    ON l.dim_crm_account_id = a.dim_crm_account_id
WHERE l.dim_crm_account_id != ''
GROUP BY ping_created_date_month, dim_crm_account_id
COMMENT 'Orange. Grain: one row per CRM account x month. Per CRM account: installations that pinged, how many are 3 or more minor releases behind, the worst lag and the oldest version.';

-- rpt_installation_types_monthly: how installations are deployed, over time.
-- Grain: one row per month x installation_type x ping_edition. Class: public (counts only).
CREATE VIEW IF NOT EXISTS rpt_installation_types_monthly
(
    ping_created_date_month Date COMMENT 'calendar month',
    installation_type       LowCardinality(String) COMMENT 'omnibus-gitlab, gitlab-helm-chart, docker, source, ...',
    ping_edition            LowCardinality(String) COMMENT 'CE or EE',
    installations           UInt64 COMMENT 'installations whose last ping of the month has this type',
    paid_installations      UInt64 COMMENT 'of those, on a paid tier',
    active_users            Int64 COMMENT 'sum of their active user counts',
    share_of_installations  Float64 COMMENT 'installations / all installations that month'
)
AS SELECT
    ping_created_date_month,
    installation_type,
    ping_edition,
    count() AS installations,
    countIf(product_tier != 'Free') AS paid_installations,
    toInt64(sum(ifNull(active_user_count, 0))) AS active_users,
    installations / sum(installations) OVER (PARTITION BY ping_created_date_month) AS share_of_installations
FROM dim_ping_instance
WHERE is_last_ping_of_month = 1
GROUP BY ping_created_date_month, installation_type, ping_edition
COMMENT 'Public. Grain: one row per month x installation_type x ping_edition. Installations by installation type and edition (last ping of the month), paid ones, their active users and share of the month''s installations.';

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

-- rpt_stage_adoption_account_monthly: stage adoption per CRM account. Grain: one row per dim_crm_account_id x
-- month x product_stage adopted by at least one of its installations. Class: Orange (accounts).
CREATE VIEW IF NOT EXISTS rpt_stage_adoption_account_monthly
(
    ping_created_date_month Date COMMENT 'calendar month',
    dim_crm_account_id      String COMMENT 'CRM account',
    account_name            String COMMENT 'CRM account name (Orange)',
    product_stage           LowCardinality(String) COMMENT 'the adopted stage',
    adopting_installations  UInt64 COMMENT 'installations of the account that adopted the stage',
    account_installations   UInt64 COMMENT 'installations of the account that pinged that month'
)
AS SELECT
    a.ping_created_date_month AS ping_created_date_month,
    a.dim_crm_account_id AS dim_crm_account_id,
    any(n.account_name) AS account_name,
    a.product_stage AS product_stage,
    uniqExact(a.installation_id) AS adopting_installations,
    any(t.installations) AS account_installations
FROM rpt_stage_adoption_monthly AS a
INNER JOIN
(
    SELECT p.ping_created_date_month AS ping_created_date_month, s.dim_crm_account_id AS dim_crm_account_id,
           uniqExact(p.installation_id) AS installations
    FROM dim_ping_instance AS p
    INNER JOIN prep_ping_subscription AS s ON p.ping_id = s.ping_id
    WHERE p.is_last_ping_of_month = 1 AND s.dim_crm_account_id != ''
    GROUP BY ping_created_date_month, dim_crm_account_id
) AS t ON a.ping_created_date_month = t.ping_created_date_month AND a.dim_crm_account_id = t.dim_crm_account_id
LEFT JOIN (SELECT dim_crm_account_id, account_name FROM dim_crm_account FINAL) AS n
    ON a.dim_crm_account_id = n.dim_crm_account_id
GROUP BY ping_created_date_month, dim_crm_account_id, product_stage
COMMENT 'Orange. Grain: one row per CRM account x month x adopted stage.';

-- rpt_active_user_changes_monthly: month-over-month change of each installation's active users (the
-- active_user_count of its last ping of the month) against its last ping of the previous calendar month.
-- Grain: one row per installation x month. A month right after a month without pings has no change (NULL).
-- is_significant_drop: down by 20 % or more. Class: Orange (per installation).
CREATE VIEW IF NOT EXISTS rpt_active_user_changes_monthly
(
    ping_created_date_month     Date COMMENT 'calendar month',
    installation_id             String COMMENT 'md5(uuid|hostname)',
    hostname                    String COMMENT 'hostname (Orange)',
    dim_crm_account_id          String COMMENT 'CRM account; empty when unknown',
    product_tier                LowCardinality(String) COMMENT 'Free, Starter, Premium, Ultimate',
    active_user_count           Nullable(Int64) COMMENT 'active users of the last ping of the month',
    previous_active_user_count  Nullable(Int64) COMMENT 'the same for the previous calendar month; NULL if it has no ping',
    active_user_change          Nullable(Int64) COMMENT 'active_user_count - previous_active_user_count',
    active_user_change_pct      Nullable(Float64) COMMENT 'change / previous * 100; NULL when previous is NULL or 0',
    is_drop                     UInt8 COMMENT '1 when active users went down',
    is_significant_drop         UInt8 COMMENT '1 when they went down by 20 % or more'
)
AS SELECT
    ping_created_date_month, installation_id, hostname, dim_crm_account_id, product_tier, active_user_count,
    previous_active_user_count,
    active_user_count - previous_active_user_count AS active_user_change,
    if(previous_active_user_count = 0, NULL, active_user_change * 100 / previous_active_user_count)
        AS active_user_change_pct,
    toUInt8(ifNull(active_user_change < 0, 0)) AS is_drop,
    toUInt8(ifNull(active_user_change * 5 <= -previous_active_user_count AND active_user_change < 0, 0))
        AS is_significant_drop
FROM
(
    SELECT
        p.ping_created_date_month AS ping_created_date_month,
        p.installation_id AS installation_id,
        p.hostname AS hostname,
        s.dim_crm_account_id AS dim_crm_account_id,
        p.product_tier AS product_tier,
        p.active_user_count AS active_user_count,
        if(lagInFrame(toNullable(p.ping_created_date_month), 1, NULL) OVER w = addMonths(p.ping_created_date_month, -1),
           lagInFrame(p.active_user_count, 1, NULL) OVER w, NULL) AS previous_active_user_count
    FROM (SELECT * FROM dim_ping_instance WHERE is_last_ping_of_month = 1) AS p
    LEFT JOIN (SELECT ping_id, dim_crm_account_id FROM prep_ping_subscription) AS s ON p.ping_id = s.ping_id
    WINDOW w AS (PARTITION BY p.installation_id ORDER BY p.ping_created_date_month
                 ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)
)
COMMENT 'Orange. Grain: one row per installation x month. Active users of the last ping of the month against the previous calendar month''s last ping: change, percent, drop and significant drop (20 % or more).';
