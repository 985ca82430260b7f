-- The rows of the view it is named after, stored per month (clickhouse/150 says how and why).
CREATE TABLE IF NOT EXISTS rpt_topology_monthly_stored ENGINE = MergeTree
PARTITION BY toYYYYMM(ping_created_date_month) ORDER BY (ping_created_date_month, installation_id)
COMMENT 'Orange. Grain: one row per installation x month. The rows of rpt_topology_monthly, recomputed from it per month whose inputs changed (streams/warehouse/reports.py).'
EMPTY AS SELECT * FROM rpt_topology_monthly;
