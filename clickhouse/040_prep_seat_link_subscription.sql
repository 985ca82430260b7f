-- prep_seat_link_subscription: each Seat Link report's license, subscription and CRM account, by the rule of
-- prep_license_match (a Seat Link report names no subscription itself: license md5, else sha256 -> subscription,
-- else the account mapping's). Grain: one row per Seat Link report (seat_link_id of fct_seat_link). Class: Orange.
CREATE VIEW IF NOT EXISTS prep_seat_link_subscription
AS SELECT record_id AS seat_link_id, installation_id, recorded_at AS report_timestamp, record_date AS report_date,
       * EXCEPT (source, record_id, installation_id, recorded_at, record_date)
FROM prep_license_match
WHERE source = 'seat_link'
COMMENT 'Orange. Grain: one row per Seat Link report: its license, subscription and CRM account (md5 OR sha256).';
