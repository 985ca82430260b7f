-- The rows of the view it is named after, stored per month (clickhouse/150 says how and why).
CREATE TABLE IF NOT EXISTS rpt_stage_adoption_account_monthly_stored ENGINE = MergeTree
PARTITION BY toYYYYMM(ping_created_date_month) ORDER BY (ping_created_date_month, dim_crm_account_id, product_stage)
COMMENT 'Orange. Grain: one row per CRM account x month x adopted stage. The rows of rpt_stage_adoption_account_monthly, recomputed from it per month whose inputs changed (streams/warehouse/reports.py).'
EMPTY AS SELECT * FROM rpt_stage_adoption_account_monthly;
