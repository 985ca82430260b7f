-- The rows of the view it is named after, stored per month (clickhouse/150 says how and why).
CREATE TABLE IF NOT EXISTS rpt_installation_types_monthly_stored ENGINE = MergeTree
PARTITION BY toYYYYMM(ping_created_date_month) ORDER BY (ping_created_date_month, installation_type, ping_edition)
COMMENT 'Public. Grain: one row per month x installation_type x ping_edition. The rows of rpt_installation_types_monthly, recomputed from it per month whose inputs changed (streams/warehouse/reports.py).'
EMPTY AS SELECT * FROM rpt_installation_types_monthly;
