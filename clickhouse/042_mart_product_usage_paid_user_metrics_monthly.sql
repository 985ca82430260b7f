-- mart_product_usage_paid_user_metrics_monthly: the customer-success mart (reference model section 5, the
-- Self-Managed part): per paid subscription, installation and month, the latest Service Ping of the month and the
-- latest Seat Link report of the month, with seat counts, license utilization and key stage metrics.
--
-- Grain and primary key: snapshot_month x dim_subscription_id x installation_id (uuid + hostname), as the
-- reference's primary_key (month, subscription, uuid, hostname). primary_key = md5 of the three, hex.
-- Universe: subscriptions that exist in dim_subscription and were matched by a ping (prep_ping_subscription,
-- license md5 OR sha256) or by a Seat Link report (prep_seat_link_subscription) in that month.
--   * one row per installation that sent a licensed ping for the subscription in the month: its latest ping
--     (max recorded_at, then ping_id);
--   * a subscription-month with Seat Link reports but no ping gets one row, installation taken from the report.
--   * the subscription-month's latest Seat Link report (max report_timestamp, then seat_link_id) is joined to each
--     of its rows (as the reference joins Seat Link on subscription x month).
-- Seat columns (reference wave 1):
--   license_user_count   = subscription seats (Zuora quantity) if > 0, else the ping's, else the Seat Link's;
--                          license_user_count_source says which ('Subscription', 'Service Ping', 'Seat Link').
--   billable_user_count  = the ping's license_billable_users, else (no ping) the Seat Link's billable users.
--   active_user_count    = the ping's active_user_count (the reference takes it from the ping, not Seat Link).
--   max_historical_user_count = the ping's historical_max_users, else the Seat Link's.
--   license_utilization  = billable_user_count / license_user_count (0 when the seat count is 0; NULL if unknown).
-- Metric columns: the latest ping's metric_value for these metrics_paths; NULL when the ping did not report the
-- metric or reported an error marker (the reference turns those into 0; NULL keeps "unknown" apart from zero):
--   umau_28_days_user                                      usage_activity_by_stage_monthly.manage.events
--   action_monthly_active_users_project_repo_28_days_user  usage_activity_by_stage_monthly.create.action_monthly_active_users_project_repo
--   merge_requests_28_days_user                            usage_activity_by_stage_monthly.create.merge_requests
--   issues_28_days_user                                    usage_activity_by_stage_monthly.plan.issues
--   epics_28_days_user                                     usage_activity_by_stage_monthly.plan.epics
--   ci_pipelines_28_days_user                              usage_activity_by_stage_monthly.verify.ci_pipelines
--   ci_builds_28_days_user                                 usage_activity_by_stage_monthly.verify.ci_builds
--   deployments_28_days_user                               usage_activity_by_stage_monthly.release.deployments
--   releases_28_days_user                                  usage_activity_by_stage_monthly.release.releases
--   user_unique_users_all_secure_scanners_28_days_user     usage_activity_by_stage_monthly.secure.user_unique_users_all_secure_scanners
--   user_sast_jobs_28_days_user                            usage_activity_by_stage_monthly.secure.user_sast_jobs
--   user_packages_28_days_user                             redis_hll_counters.user_packages.user_packages_total_unique_counts_monthly
--   merge_requests_28_days_event                           counts_monthly.merge_requests
--   deployments_28_days_event                              counts_monthly.deployments
--   ci_builds_all_time_event                               counts.ci_builds
--   ci_internal_pipelines_all_time_event                   counts.ci_internal_pipelines
--   ci_runners_all_time_event                              counts.ci_runners
--   issues_all_time_event                                  counts.issues
--   merge_requests_all_time_event                          counts.merge_requests
--   projects_all_time_event                                counts.projects
--   gitlab_shared_runners_enabled                          gitlab_shared_runners_enabled
--   container_registry_enabled                             container_registry_enabled
-- A view over FINAL/argMax reads: exact before background merges. Class: Orange (hostnames, accounts) and
-- Yellow (seats, subscriptions).
CREATE VIEW IF NOT EXISTS mart_product_usage_paid_user_metrics_monthly
AS WITH
latest_ping AS
(
    SELECT
        toStartOfMonth(recorded_at) AS month,
        dim_subscription_id AS subscription_id,
        installation_id AS installation,
        argMax(ping_id, (recorded_at, ping_id)) AS latest_ping_id,
        argMax(dim_crm_account_id, (recorded_at, ping_id)) AS account_id
    FROM prep_ping_subscription
    WHERE has_license = 1 AND is_subscription_found = 1
    GROUP BY month, subscription_id, installation
),
latest_seat AS
(
    SELECT
        toStartOfMonth(report_date) AS month,
        dim_subscription_id AS subscription_id,
        argMax(seat_link_id, (report_timestamp, seat_link_id)) AS latest_seat_link_id,
        argMax(dim_crm_account_id, (report_timestamp, seat_link_id)) AS account_id
    FROM prep_seat_link_subscription
    WHERE has_license = 1 AND is_subscription_found = 1
    GROUP BY month, subscription_id
),
row_keys AS
(
    SELECT month, subscription_id, installation, latest_ping_id, account_id FROM latest_ping
    UNION ALL
    SELECT month, subscription_id, '' AS installation, toUInt64(0) AS latest_ping_id, account_id FROM latest_seat
    WHERE (month, subscription_id) NOT IN (SELECT month, subscription_id FROM latest_ping)
)
SELECT
    lower(hex(MD5(concat(toString(k.month), '|', k.subscription_id, '|',
                         if(k.latest_ping_id != 0, k.installation, sl.installation_id))))) AS primary_key,
    k.month AS snapshot_month,
    k.subscription_id AS dim_subscription_id,
    sa.subscription_name AS subscription_name,
    sa.subscription_status AS subscription_status,
    sa.product_tier AS subscription_product_tier,
    sa.term_start_date AS term_start_date,
    sa.term_end_date AS term_end_date,
    sa.dim_billing_account_id AS dim_billing_account_id,
    k.account_id AS dim_crm_account_id,
    acc.account_name AS account_name,
    if(k.latest_ping_id != 0, k.installation, sl.installation_id) AS installation_id,
    if(k.latest_ping_id != 0, p.instance_uuid, sl.instance_uuid) AS instance_uuid,
    if(k.latest_ping_id != 0, p.hostname, sl.hostname) AS hostname,
    if(k.latest_ping_id != 0, k.latest_ping_id, NULL) AS ping_id,
    if(k.latest_ping_id != 0, p.recorded_at, NULL) AS ping_created_at,
    p.version AS version,
    if(k.latest_ping_id != 0, concat(toString(p.major_version), '.', toString(p.minor_version), '.',
                                     toString(p.patch_version)), '') AS cleaned_version,
    p.edition AS edition,
    p.product_tier AS ping_product_tier,
    if(ls.latest_seat_link_id != 0, ls.latest_seat_link_id, NULL) AS seat_link_id,
    if(ls.latest_seat_link_id != 0, sl.report_date, NULL) AS seat_link_report_date,
    coalesce(if(sa.seats > 0, sa.seats, NULL), p.license_user_count, sl.license_user_count) AS license_user_count,
    multiIf(sa.seats > 0, 'Subscription', p.license_user_count IS NOT NULL, 'Service Ping',
            sl.license_user_count IS NOT NULL, 'Seat Link', '') AS license_user_count_source,
    coalesce(p.license_billable_users, sl.active_user_count) AS billable_user_count,
    p.active_user_count AS active_user_count,
    coalesce(p.historical_max_users, sl.max_historical_user_count) AS max_historical_user_count,
    if(license_user_count = 0, 0, billable_user_count / license_user_count) AS license_utilization,
    sl.active_user_count AS seat_link_billable_user_count,
    m.umau_28_days_user AS umau_28_days_user,
    m.action_monthly_active_users_project_repo_28_days_user AS action_monthly_active_users_project_repo_28_days_user,
    m.merge_requests_28_days_user AS merge_requests_28_days_user,
    m.issues_28_days_user AS issues_28_days_user,
    m.epics_28_days_user AS epics_28_days_user,
    m.ci_pipelines_28_days_user AS ci_pipelines_28_days_user,
    m.ci_builds_28_days_user AS ci_builds_28_days_user,
    m.deployments_28_days_user AS deployments_28_days_user,
    m.releases_28_days_user AS releases_28_days_user,
    m.user_unique_users_all_secure_scanners_28_days_user AS user_unique_users_all_secure_scanners_28_days_user,
    m.user_sast_jobs_28_days_user AS user_sast_jobs_28_days_user,
    m.user_packages_28_days_user AS user_packages_28_days_user,
    m.merge_requests_28_days_event AS merge_requests_28_days_event,
    m.deployments_28_days_event AS deployments_28_days_event,
    m.ci_builds_all_time_event AS ci_builds_all_time_event,
    m.ci_internal_pipelines_all_time_event AS ci_internal_pipelines_all_time_event,
    m.ci_runners_all_time_event AS ci_runners_all_time_event,
    m.issues_all_time_event AS issues_all_time_event,
    m.merge_requests_all_time_event AS merge_requests_all_time_event,
    m.projects_all_time_event AS projects_all_time_event,
    m.gitlab_shared_runners_enabled AS gitlab_shared_runners_enabled,
    m.container_registry_enabled AS container_registry_enabled
FROM row_keys AS k
LEFT JOIN latest_seat AS ls ON k.month = ls.month AND k.subscription_id = ls.subscription_id
LEFT JOIN prep_subscription_account AS sa ON k.subscription_id = sa.dim_subscription_id
LEFT JOIN
(
    SELECT dim_crm_account_id, account_name FROM dim_crm_account FINAL
) AS acc ON k.account_id = acc.dim_crm_account_id
LEFT JOIN
(
    SELECT ping_id, instance_uuid, hostname, recorded_at, version, major_version, minor_version, patch_version,
           edition, product_tier, active_user_count, historical_max_users, license_user_count, license_billable_users
    FROM fct_ping_instance FINAL
    WHERE ping_id IN (SELECT latest_ping_id FROM latest_ping)
) AS p ON k.latest_ping_id = p.ping_id
LEFT JOIN
(
    SELECT seat_link_id, installation_id, instance_uuid, hostname, report_date, active_user_count,
           max_historical_user_count, license_user_count
    FROM fct_seat_link FINAL
    WHERE seat_link_id IN (SELECT latest_seat_link_id FROM latest_seat)
) AS sl ON ls.latest_seat_link_id = sl.seat_link_id
LEFT JOIN
(
    SELECT
        ping_id,
        maxIf(metric_value, metrics_path = 'usage_activity_by_stage_monthly.manage.events') AS umau_28_days_user,
        maxIf(metric_value, metrics_path = 'usage_activity_by_stage_monthly.create.action_monthly_active_users_project_repo') AS action_monthly_active_users_project_repo_28_days_user,
        maxIf(metric_value, metrics_path = 'usage_activity_by_stage_monthly.create.merge_requests') AS merge_requests_28_days_user,
        maxIf(metric_value, metrics_path = 'usage_activity_by_stage_monthly.plan.issues') AS issues_28_days_user,
        maxIf(metric_value, metrics_path = 'usage_activity_by_stage_monthly.plan.epics') AS epics_28_days_user,
        maxIf(metric_value, metrics_path = 'usage_activity_by_stage_monthly.verify.ci_pipelines') AS ci_pipelines_28_days_user,
        maxIf(metric_value, metrics_path = 'usage_activity_by_stage_monthly.verify.ci_builds') AS ci_builds_28_days_user,
        maxIf(metric_value, metrics_path = 'usage_activity_by_stage_monthly.release.deployments') AS deployments_28_days_user,
        maxIf(metric_value, metrics_path = 'usage_activity_by_stage_monthly.release.releases') AS releases_28_days_user,
        maxIf(metric_value, metrics_path = 'usage_activity_by_stage_monthly.secure.user_unique_users_all_secure_scanners') AS user_unique_users_all_secure_scanners_28_days_user,
        maxIf(metric_value, metrics_path = 'usage_activity_by_stage_monthly.secure.user_sast_jobs') AS user_sast_jobs_28_days_user,
        maxIf(metric_value, metrics_path = 'redis_hll_counters.user_packages.user_packages_total_unique_counts_monthly') AS user_packages_28_days_user,
        maxIf(metric_value, metrics_path = 'counts_monthly.merge_requests') AS merge_requests_28_days_event,
        maxIf(metric_value, metrics_path = 'counts_monthly.deployments') AS deployments_28_days_event,
        maxIf(metric_value, metrics_path = 'counts.ci_builds') AS ci_builds_all_time_event,
        maxIf(metric_value, metrics_path = 'counts.ci_internal_pipelines') AS ci_internal_pipelines_all_time_event,
        maxIf(metric_value, metrics_path = 'counts.ci_runners') AS ci_runners_all_time_event,
        maxIf(metric_value, metrics_path = 'counts.issues') AS issues_all_time_event,
        maxIf(metric_value, metrics_path = 'counts.merge_requests') AS merge_requests_all_time_event,
        maxIf(metric_value, metrics_path = 'counts.projects') AS projects_all_time_event,
        maxIf(metric_value, metrics_path = 'gitlab_shared_runners_enabled') AS gitlab_shared_runners_enabled,
        maxIf(metric_value, metrics_path = 'container_registry_enabled') AS container_registry_enabled
    FROM fct_ping_instance_metric FINAL
    WHERE ping_id IN (SELECT latest_ping_id FROM latest_ping)
      AND metrics_path IN
        (
            'usage_activity_by_stage_monthly.manage.events',
            'usage_activity_by_stage_monthly.create.action_monthly_active_users_project_repo',
            'usage_activity_by_stage_monthly.create.merge_requests',
            'usage_activity_by_stage_monthly.plan.issues',
            'usage_activity_by_stage_monthly.plan.epics',
            'usage_activity_by_stage_monthly.verify.ci_pipelines',
            'usage_activity_by_stage_monthly.verify.ci_builds',
            'usage_activity_by_stage_monthly.release.deployments',
            'usage_activity_by_stage_monthly.release.releases',
            'usage_activity_by_stage_monthly.secure.user_unique_users_all_secure_scanners',
            'usage_activity_by_stage_monthly.secure.user_sast_jobs',
            'redis_hll_counters.user_packages.user_packages_total_unique_counts_monthly',
            'counts_monthly.merge_requests',
            'counts_monthly.deployments',
            'counts.ci_builds',
            'counts.ci_internal_pipelines',
            'counts.ci_runners',
            'counts.issues',
            'counts.merge_requests',
            'counts.projects',
            'gitlab_shared_runners_enabled',
            'container_registry_enabled'
        )
    GROUP BY ping_id
) AS m ON k.latest_ping_id = m.ping_id
COMMENT 'Orange/Yellow. Grain: snapshot_month x dim_subscription_id x installation_id (primary_key).';
