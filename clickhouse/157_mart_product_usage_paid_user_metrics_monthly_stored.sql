-- The rows of the view it is named after, stored per month (clickhouse/150 says how and why).
CREATE TABLE IF NOT EXISTS mart_product_usage_paid_user_metrics_monthly_stored ENGINE = MergeTree
PARTITION BY toYYYYMM(snapshot_month) ORDER BY (snapshot_month, dim_subscription_id, primary_key)
COMMENT 'Orange/Yellow. Grain: snapshot_month x dim_subscription_id x installation_id (primary_key). The rows of mart_product_usage_paid_user_metrics_monthly, recomputed from it per month whose inputs changed (streams/warehouse/reports.py).'
EMPTY AS SELECT * FROM mart_product_usage_paid_user_metrics_monthly;
