-- The heavy reports as tables (issue 14: a dashboard page answers in under 300 ms at 100x the sample's volume).
-- Each <view>_stored holds exactly the rows of its view, which stays the one definition: streams/reports.py
-- recomputes a month's rows with INSERT INTO a staging copy SELECT * FROM <view> WHERE <month> IN (...) and swaps the
-- month's partition in (ALTER TABLE ... REPLACE PARTITION: atomic, so a reader never sees a month half written or
-- twice, and a refresh killed anywhere leaves the previous rows). Which months: those whose inputs changed since their
-- last refresh (rpt_refresh_state keeps a fingerprint of each month's inputs), and for reports that look across
-- months (lag, previous month, first versions) the months they reach. Same columns and types as the view
-- (EMPTY AS SELECT), partitioned by month. Each table has its view's data class.
CREATE TABLE IF NOT EXISTS rpt_xmau_monthly_stored ENGINE = MergeTree PARTITION BY toYYYYMM(month)
ORDER BY (month, delivery, xmau_type, metrics_path) EMPTY AS SELECT * FROM rpt_xmau_monthly;
ALTER TABLE rpt_xmau_monthly_stored MODIFY COMMENT 'Yellow. Grain: one row per month x delivery x xmau_type x metrics_path. The rows of rpt_xmau_monthly, recomputed from it per month whose inputs changed (streams/reports.py).';

CREATE TABLE IF NOT EXISTS rpt_version_lag_monthly_stored ENGINE = MergeTree
PARTITION BY toYYYYMM(ping_created_date_month) ORDER BY (ping_created_date_month, installation_id)
EMPTY AS SELECT * FROM rpt_version_lag_monthly;
ALTER TABLE rpt_version_lag_monthly_stored MODIFY COMMENT 'Orange. Grain: one row per installation x month. The rows of rpt_version_lag_monthly, recomputed from it per month whose inputs changed (streams/reports.py).';

CREATE TABLE IF NOT EXISTS rpt_version_lag_account_monthly_stored ENGINE = MergeTree
PARTITION BY toYYYYMM(ping_created_date_month) ORDER BY (ping_created_date_month, dim_crm_account_id)
EMPTY AS SELECT * FROM rpt_version_lag_account_monthly;
ALTER TABLE rpt_version_lag_account_monthly_stored MODIFY COMMENT 'Orange. Grain: one row per CRM account x month. The rows of rpt_version_lag_account_monthly, recomputed from it per month whose inputs changed (streams/reports.py).';

CREATE TABLE IF NOT EXISTS rpt_installation_types_monthly_stored ENGINE = MergeTree
PARTITION BY toYYYYMM(ping_created_date_month) ORDER BY (ping_created_date_month, installation_type, ping_edition)
EMPTY AS SELECT * FROM rpt_installation_types_monthly;
ALTER TABLE rpt_installation_types_monthly_stored MODIFY COMMENT 'Public. Grain: one row per month x installation_type x ping_edition. The rows of rpt_installation_types_monthly, recomputed from it per month whose inputs changed (streams/reports.py).';

CREATE TABLE IF NOT EXISTS rpt_topology_monthly_stored ENGINE = MergeTree
PARTITION BY toYYYYMM(ping_created_date_month) ORDER BY (ping_created_date_month, installation_id)
EMPTY AS SELECT * FROM rpt_topology_monthly;
ALTER TABLE rpt_topology_monthly_stored MODIFY COMMENT 'Orange. Grain: one row per installation x month. The rows of rpt_topology_monthly, recomputed from it per month whose inputs changed (streams/reports.py).';

CREATE TABLE IF NOT EXISTS rpt_stage_adoption_monthly_stored ENGINE = MergeTree
PARTITION BY toYYYYMM(ping_created_date_month) ORDER BY (ping_created_date_month, installation_id, product_stage)
EMPTY AS SELECT * FROM rpt_stage_adoption_monthly;
ALTER TABLE rpt_stage_adoption_monthly_stored MODIFY COMMENT 'Orange. Grain: one row per installation x month x adopted stage. The rows of rpt_stage_adoption_monthly, recomputed from it per month whose inputs changed (streams/reports.py).';

CREATE TABLE IF NOT EXISTS rpt_stage_adoption_account_monthly_stored ENGINE = MergeTree
PARTITION BY toYYYYMM(ping_created_date_month) ORDER BY (ping_created_date_month, dim_crm_account_id, product_stage)
EMPTY AS SELECT * FROM rpt_stage_adoption_account_monthly;
ALTER TABLE rpt_stage_adoption_account_monthly_stored MODIFY COMMENT 'Orange. Grain: one row per CRM account x month x adopted stage. The rows of rpt_stage_adoption_account_monthly, recomputed from it per month whose inputs changed (streams/reports.py).';

CREATE TABLE IF NOT EXISTS mart_product_usage_paid_user_metrics_monthly_stored ENGINE = MergeTree
PARTITION BY toYYYYMM(snapshot_month) ORDER BY (snapshot_month, dim_subscription_id, primary_key)
EMPTY AS SELECT * FROM mart_product_usage_paid_user_metrics_monthly;
ALTER TABLE mart_product_usage_paid_user_metrics_monthly_stored MODIFY COMMENT 'Orange/Yellow. Grain: snapshot_month x dim_subscription_id x installation_id (primary_key). The rows of mart_product_usage_paid_user_metrics_monthly, recomputed from it per month whose inputs changed (streams/reports.py).';

-- What each stored month was computed from: a fingerprint of its inputs taken before the recompute read them. A month
-- whose inputs' fingerprint differs (new pings or Seat Links of the month, changed reference data, a month that became
-- complete) is recomputed; the newest row per report and month wins.
CREATE TABLE IF NOT EXISTS rpt_refresh_state
(
    report       LowCardinality(String) COMMENT 'the stored report table',
    month        Date COMMENT 'calendar month',
    fingerprint  UInt64 COMMENT 'hash of the inputs the month was last recomputed from',
    refreshed_at DateTime64(3, 'UTC') COMMENT 'when that recompute finished'
)
ENGINE = ReplacingMergeTree(refreshed_at)
ORDER BY (report, month)
COMMENT 'Public. Grain: one row per stored report x month. The inputs'' fingerprint each stored month was recomputed from (streams/reports.py); operational.';
