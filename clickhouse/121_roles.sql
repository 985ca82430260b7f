-- server-only
-- Roles and grants on a ClickHouse server (README "Roles"). The migration runner applies this file only where the
-- warehouse has an access storage it can write (system.user_directories other than users_xml): never on the embedded
-- engine, whose warehouse service enforces the same grants itself (streams/warehouse_service/access.py).
-- Derived from each object's data class (the first word(s) of its COMMENT) by
-- streams/warehouse_service/access.py `role_grants`; tests/test_roles_grants.py checks that these statements and
-- the service give the same answers.
--   analyst          : Public objects (definitions, aggregates and reports that name no customer, no money).
--   customer_success : Public and Orange objects, and its mart without the Yellow columns (catalog.YELLOW_COLUMNS).
--   finance          : Public and Yellow objects.
--   admin            : everything in this database.   writer: the workers (ingestion, recomputes, migrations' data).
-- Table functions need CREATE TEMPORARY TABLE (admin and writer only) and, for files, URLs and other servers, a
-- source grant nobody has here (the warehouse service refuses those to every user).
-- Users are not created here (their passwords are no migration's business):
--   CREATE USER alice IDENTIFIED WITH sha256_hash BY '<hex>' DEFAULT ROLE analyst; GRANT analyst TO alice;
-- Views run as `denomas_view_definer` (SQL SECURITY DEFINER), so SELECT on a view needs the grant on the view only,
-- as on the warehouse service; that user cannot log in (HOST NONE) and may only read this database.
-- Needs ClickHouse 24.4+ (ALTER TABLE ... MODIFY SQL SECURITY) and a migrating user with access management.
CREATE ROLE IF NOT EXISTS analyst;
CREATE ROLE IF NOT EXISTS customer_success;
CREATE ROLE IF NOT EXISTS finance;
CREATE ROLE IF NOT EXISTS admin;
CREATE ROLE IF NOT EXISTS writer;
CREATE USER IF NOT EXISTS denomas_view_definer NOT IDENTIFIED HOST NONE;
GRANT SELECT ON * TO denomas_view_definer;
GRANT ALL ON * TO admin;
GRANT CREATE TEMPORARY TABLE ON *.* TO admin, writer;
GRANT SELECT, INSERT, ALTER TABLE, CREATE TABLE, CREATE VIEW, DROP TABLE, DROP VIEW, TRUNCATE, OPTIMIZE, SHOW TABLES
    ON * TO writer;
GRANT SELECT ON agg_behavior_day_status TO analyst;
GRANT SELECT ON agg_event_metric_refresh TO analyst;
GRANT SELECT ON check_results TO analyst;
GRANT SELECT ON dim_app_release TO analyst;
GRANT SELECT ON dim_event_metric TO analyst;
GRANT SELECT ON dim_ping_metric TO analyst;
GRANT SELECT ON erasure_log TO analyst;
GRANT SELECT ON prep_metric_xmau_type TO analyst;
GRANT SELECT ON rpt_installation_types_monthly TO analyst;
GRANT SELECT ON rpt_license_match_rate TO analyst;
GRANT SELECT ON rpt_ping_metric_first_last_versions TO analyst;
GRANT SELECT ON schema_migrations TO analyst;
GRANT SELECT ON agg_behavior_active_daily TO customer_success;
GRANT SELECT ON agg_behavior_day_status TO customer_success;
GRANT SELECT ON agg_behavior_event_daily TO customer_success;
GRANT SELECT ON agg_event_metric_daily TO customer_success;
GRANT SELECT ON agg_event_metric_refresh TO customer_success;
GRANT SELECT ON alert_delivery TO customer_success;
GRANT SELECT ON alert_scope_state TO customer_success;
GRANT SELECT ON alerts TO customer_success;
GRANT SELECT ON check_results TO customer_success;
GRANT SELECT ON dim_app_release TO customer_success;
GRANT SELECT ON dim_billing_account TO customer_success;
GRANT SELECT ON dim_crm_account TO customer_success;
GRANT SELECT ON dim_event_metric TO customer_success;
GRANT SELECT ON dim_installation TO customer_success;
GRANT SELECT ON dim_license_account_mapping TO customer_success;
GRANT SELECT ON dim_namespace TO customer_success;
GRANT SELECT ON dim_ping_instance TO customer_success;
GRANT SELECT ON dim_ping_metric TO customer_success;
GRANT SELECT ON erasure_list TO customer_success;
GRANT SELECT ON erasure_log TO customer_success;
GRANT SELECT ON erasure_pending TO customer_success;
GRANT SELECT ON fct_behavior_structured_event TO customer_success;
GRANT SELECT ON fct_ping_error TO customer_success;
GRANT SELECT ON fct_ping_instance_metric TO customer_success;
GRANT SELECT ON fct_ping_instance_metric_28_day TO customer_success;
GRANT SELECT ON fct_ping_instance_metric_7_day TO customer_success;
GRANT SELECT ON fct_ping_instance_metric_all_time TO customer_success;
GRANT SELECT ON fct_ping_instance_metric_monthly TO customer_success;
GRANT SELECT ON fct_ping_instance_metric_none_null TO customer_success;
GRANT SELECT ON fct_ping_metric_timing TO customer_success;
GRANT SELECT ON fct_version_check TO customer_success;
GRANT SELECT ON mart_ping_instance_metric_monthly TO customer_success;
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
    ON mart_product_usage_paid_user_metrics_monthly TO customer_success;
GRANT SELECT ON mart_saas_usage_namespace_monthly TO customer_success;
GRANT SELECT ON prep_behavior_event_scope TO customer_success;
GRANT SELECT ON prep_license_match TO customer_success;
GRANT SELECT ON prep_metric_xmau_type TO customer_success;
GRANT SELECT ON prep_ping_subscription TO customer_success;
GRANT SELECT ON prep_seat_link_subscription TO customer_success;
GRANT SELECT ON raw_dead_letter TO customer_success;
GRANT SELECT ON raw_service_ping TO customer_success;
GRANT SELECT ON raw_service_ping_part TO customer_success;
GRANT SELECT ON raw_snowplow_bad_row TO customer_success;
GRANT SELECT ON rpt_active_user_changes_monthly TO customer_success;
GRANT SELECT ON rpt_installation_types_monthly TO customer_success;
GRANT SELECT ON rpt_license_match_rate TO customer_success;
GRANT SELECT ON rpt_ping_metric_first_last_versions TO customer_success;
GRANT SELECT ON rpt_stage_adoption_account_monthly TO customer_success;
GRANT SELECT ON rpt_stage_adoption_monthly TO customer_success;
GRANT SELECT ON rpt_topology_monthly TO customer_success;
GRANT SELECT ON rpt_version_lag_account_monthly TO customer_success;
GRANT SELECT ON rpt_version_lag_monthly TO customer_success;
GRANT SELECT ON schema_migrations TO customer_success;
GRANT SELECT ON agg_behavior_day_status TO finance;
GRANT SELECT ON agg_event_metric_refresh TO finance;
GRANT SELECT ON check_results TO finance;
GRANT SELECT ON dim_app_release TO finance;
GRANT SELECT ON dim_event_metric TO finance;
GRANT SELECT ON dim_license TO finance;
GRANT SELECT ON dim_ping_metric TO finance;
GRANT SELECT ON dim_subscription TO finance;
GRANT SELECT ON erasure_log TO finance;
GRANT SELECT ON prep_license_by_hash TO finance;
GRANT SELECT ON prep_metric_xmau_type TO finance;
GRANT SELECT ON prep_ping_subscription_population_monthly TO finance;
GRANT SELECT ON prep_subscription_account TO finance;
GRANT SELECT ON rpt_installation_types_monthly TO finance;
GRANT SELECT ON rpt_license_match_rate TO finance;
GRANT SELECT ON rpt_ping_metric_estimate_factors_monthly TO finance;
GRANT SELECT ON rpt_ping_metric_first_last_versions TO finance;
GRANT SELECT ON rpt_ping_metric_totals_w_estimates_monthly TO finance;
GRANT SELECT ON rpt_ping_subscriptions_on_versions_counts_monthly TO finance;
GRANT SELECT ON rpt_ping_subscriptions_reported_counts_monthly TO finance;
GRANT SELECT ON rpt_xmau_monthly TO finance;
GRANT SELECT ON rpt_xmau_self_managed_monthly TO finance;
GRANT SELECT ON schema_migrations TO finance;
ALTER TABLE dim_installation MODIFY SQL SECURITY DEFINER DEFINER = denomas_view_definer;
ALTER TABLE dim_ping_instance MODIFY SQL SECURITY DEFINER DEFINER = denomas_view_definer;
ALTER TABLE fct_ping_instance_metric_28_day MODIFY SQL SECURITY DEFINER DEFINER = denomas_view_definer;
ALTER TABLE fct_ping_instance_metric_7_day MODIFY SQL SECURITY DEFINER DEFINER = denomas_view_definer;
ALTER TABLE fct_ping_instance_metric_all_time MODIFY SQL SECURITY DEFINER DEFINER = denomas_view_definer;
ALTER TABLE fct_ping_instance_metric_monthly MODIFY SQL SECURITY DEFINER DEFINER = denomas_view_definer;
ALTER TABLE fct_ping_instance_metric_none_null MODIFY SQL SECURITY DEFINER DEFINER = denomas_view_definer;
ALTER TABLE mart_ping_instance_metric_monthly MODIFY SQL SECURITY DEFINER DEFINER = denomas_view_definer;
ALTER TABLE mart_product_usage_paid_user_metrics_monthly MODIFY SQL SECURITY DEFINER DEFINER = denomas_view_definer;
ALTER TABLE mart_saas_usage_namespace_monthly MODIFY SQL SECURITY DEFINER DEFINER = denomas_view_definer;
ALTER TABLE prep_behavior_event_scope MODIFY SQL SECURITY DEFINER DEFINER = denomas_view_definer;
ALTER TABLE prep_license_by_hash MODIFY SQL SECURITY DEFINER DEFINER = denomas_view_definer;
ALTER TABLE prep_license_match MODIFY SQL SECURITY DEFINER DEFINER = denomas_view_definer;
ALTER TABLE prep_metric_xmau_type MODIFY SQL SECURITY DEFINER DEFINER = denomas_view_definer;
ALTER TABLE prep_ping_subscription MODIFY SQL SECURITY DEFINER DEFINER = denomas_view_definer;
ALTER TABLE prep_ping_subscription_population_monthly MODIFY SQL SECURITY DEFINER DEFINER = denomas_view_definer;
ALTER TABLE prep_seat_link_subscription MODIFY SQL SECURITY DEFINER DEFINER = denomas_view_definer;
ALTER TABLE prep_subscription_account MODIFY SQL SECURITY DEFINER DEFINER = denomas_view_definer;
ALTER TABLE raw_snowplow_bad_row MODIFY SQL SECURITY DEFINER DEFINER = denomas_view_definer;
ALTER TABLE rpt_active_user_changes_monthly MODIFY SQL SECURITY DEFINER DEFINER = denomas_view_definer;
ALTER TABLE rpt_installation_types_monthly MODIFY SQL SECURITY DEFINER DEFINER = denomas_view_definer;
ALTER TABLE rpt_license_match_rate MODIFY SQL SECURITY DEFINER DEFINER = denomas_view_definer;
ALTER TABLE rpt_ping_latest_subscriptions_monthly MODIFY SQL SECURITY DEFINER DEFINER = denomas_view_definer;
ALTER TABLE rpt_ping_metric_estimate_factors_monthly MODIFY SQL SECURITY DEFINER DEFINER = denomas_view_definer;
ALTER TABLE rpt_ping_metric_first_last_versions MODIFY SQL SECURITY DEFINER DEFINER = denomas_view_definer;
ALTER TABLE rpt_ping_metric_totals_w_estimates_monthly MODIFY SQL SECURITY DEFINER DEFINER = denomas_view_definer;
ALTER TABLE rpt_ping_subscriptions_on_versions_counts_monthly MODIFY SQL SECURITY DEFINER DEFINER = denomas_view_definer;
ALTER TABLE rpt_ping_subscriptions_reported_counts_monthly MODIFY SQL SECURITY DEFINER DEFINER = denomas_view_definer;
ALTER TABLE rpt_stage_adoption_account_monthly MODIFY SQL SECURITY DEFINER DEFINER = denomas_view_definer;
ALTER TABLE rpt_stage_adoption_monthly MODIFY SQL SECURITY DEFINER DEFINER = denomas_view_definer;
ALTER TABLE rpt_topology_monthly MODIFY SQL SECURITY DEFINER DEFINER = denomas_view_definer;
ALTER TABLE rpt_version_lag_account_monthly MODIFY SQL SECURITY DEFINER DEFINER = denomas_view_definer;
ALTER TABLE rpt_version_lag_monthly MODIFY SQL SECURITY DEFINER DEFINER = denomas_view_definer;
ALTER TABLE rpt_xmau_monthly MODIFY SQL SECURITY DEFINER DEFINER = denomas_view_definer;
ALTER TABLE rpt_xmau_self_managed_monthly MODIFY SQL SECURITY DEFINER DEFINER = denomas_view_definer;
