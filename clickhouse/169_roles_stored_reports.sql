-- server-only
-- Grants on the stored reports (150-158), by their data class (as 121 derives them, README "Roles"): the same as their
-- views'. customer_success reads the stored customer-success mart without its Yellow columns, as the view.
GRANT SELECT ON rpt_installation_types_monthly_stored TO analyst;
GRANT SELECT ON rpt_refresh_state TO analyst;
GRANT SELECT ON rpt_installation_types_monthly_stored TO customer_success;
GRANT SELECT ON rpt_refresh_state TO customer_success;
GRANT SELECT ON rpt_version_lag_monthly_stored TO customer_success;
GRANT SELECT ON rpt_version_lag_account_monthly_stored TO customer_success;
GRANT SELECT ON rpt_topology_monthly_stored TO customer_success;
GRANT SELECT ON rpt_stage_adoption_monthly_stored TO customer_success;
GRANT SELECT ON rpt_stage_adoption_account_monthly_stored TO customer_success;
GRANT SELECT(primary_key, snapshot_month, dim_subscription_id, subscription_name, subscription_product_tier,
    dim_billing_account_id, dim_crm_account_id, account_name, installation_id, instance_uuid, hostname, ping_id,
    ping_created_at, version, cleaned_version, edition, ping_product_tier, seat_link_id, seat_link_report_date,
    active_user_count, umau_28_days_user, action_monthly_active_users_project_repo_28_days_user,
    merge_requests_28_days_user, issues_28_days_user, epics_28_days_user, ci_pipelines_28_days_user,
    ci_builds_28_days_user, deployments_28_days_user, releases_28_days_user,
    user_unique_users_all_secure_scanners_28_days_user, user_sast_jobs_28_days_user, user_packages_28_days_user,
    merge_requests_28_days_event, deployments_28_days_event, ci_builds_all_time_event,
    ci_internal_pipelines_all_time_event, ci_runners_all_time_event, issues_all_time_event,
    merge_requests_all_time_event, projects_all_time_event, gitlab_shared_runners_enabled,
    container_registry_enabled)
    ON mart_product_usage_paid_user_metrics_monthly_stored TO customer_success;
GRANT SELECT ON rpt_installation_types_monthly_stored TO finance;
GRANT SELECT ON rpt_refresh_state TO finance;
GRANT SELECT ON rpt_xmau_monthly_stored TO finance;
