-- prep_ping_subscription: each ping's license, subscription and CRM account, by the rule of prep_license_match
-- (license md5, else sha256 -> subscription, else the account mapping's, else the id the instance reported).
-- Grain: one row per ping (ping_id of fct_ping_instance). Class: Orange.
CREATE VIEW IF NOT EXISTS prep_ping_subscription
AS SELECT record_id AS ping_id, installation_id, recorded_at,
       * EXCEPT (source, record_id, installation_id, recorded_at, record_date)
FROM prep_license_match
WHERE source = 'service_ping'
COMMENT 'Orange. Grain: one row per ping: its license, subscription and CRM account (md5 OR sha256 match).';
