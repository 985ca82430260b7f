-- The heavy reports as tables (issue 14: a dashboard page answers in under 300 ms at 100x the sample's volume).
-- Each <view>_stored holds exactly the rows of its view, which stays the one definition: streams/warehouse/reports.py
-- recomputes a month's rows with INSERT INTO a staging copy SELECT * FROM <view> WHERE <month> IN (...) and swaps the
-- month's partition in (ALTER TABLE ... REPLACE PARTITION: atomic, so a reader never sees a month half written or
-- twice, and a refresh killed anywhere leaves the previous rows). Which months: those whose inputs changed since their
-- last refresh (rpt_refresh_state keeps a fingerprint of each month's inputs), and for reports that look across
-- months (lag, previous month, first versions) the months they reach. Same columns and types as the view
-- (EMPTY AS SELECT), partitioned by month. Each table has its view's data class.
CREATE TABLE IF NOT EXISTS rpt_xmau_monthly_stored ENGINE = MergeTree PARTITION BY toYYYYMM(month)
ORDER BY (month, delivery, xmau_type, metrics_path)
COMMENT 'Yellow. Grain: one row per month x delivery x xmau_type x metrics_path. The rows of rpt_xmau_monthly, recomputed from it per month whose inputs changed (streams/warehouse/reports.py).'
EMPTY AS SELECT * FROM rpt_xmau_monthly;
