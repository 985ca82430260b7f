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
COMMENT 'Public. Grain: one row per stored report x month. The inputs'' fingerprint each stored month was recomputed from (streams/warehouse/reports.py); operational.';
