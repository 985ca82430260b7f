-- prep_license_match: license -> subscription -> CRM account (reference model 2.7 and 2.10), the one definition of
-- the rule, for every record that carries a license: Service Pings and Seat Link reports (source).
--   1. the license is found by license_md5, else by license_sha256 (prep_license_by_hash);
--   2. the subscription is the license's own, else the account mapping's (matched by either hash), else the
--      subscription id the record reported itself (a ping's license_subscription_id; a Seat Link report names none);
--   3. the account is the subscription's CRM account, else its billing account's (prep_subscription_account), else
--      the mapping's.
-- "found" means the id exists in the dim_ table (FINAL: deleted rows do not count). Read it through
-- prep_ping_subscription and prep_seat_link_subscription, which name the columns after their fact.
-- (streams/enrich/reference.py ReferenceLookup restates the rule in Python for stream-time enrichment; tests keep
-- the two in agreement.)
-- Grain: one row per record (source x record_id). Class: Orange (installations, accounts).
CREATE VIEW IF NOT EXISTS prep_license_match
(
    source                            String COMMENT 'service_ping (fct_ping_instance) or seat_link (fct_seat_link)',
    record_id                         UInt64 COMMENT 'ping_id or seat_link_id',
    installation_id                   String COMMENT 'md5(uuid|hostname); empty for a Seat Link report without uuid',
    recorded_at                       DateTime64(3, 'UTC') COMMENT 'recorded_at of the ping, report_timestamp of the report',
    record_date                       Date COMMENT 'UTC day of recorded_at (ping), report_date (Seat Link)',
    license_md5                       String COMMENT 'md5 of the license key the record carried; empty when none',
    license_sha256                    String COMMENT 'sha256 of the license key the record carried; empty when none',
    has_license                       UInt8 COMMENT '1 when the record carried a license hash',
    dim_license_id                    String COMMENT 'license found by md5, else by sha256; empty when none',
    dim_subscription_id               String COMMENT 'the license''s subscription, else the mapping''s, else the one the record reported',
    subscription_source               String COMMENT 'license, mapping, reported, or empty when no subscription',
    is_license_mapped_to_subscription UInt8 COMMENT '1 when the license or the mapping names a subscription',
    is_subscription_found             UInt8 COMMENT '1 when that subscription is in dim_subscription',
    dim_crm_account_id                String COMMENT 'the subscription''s CRM account, else its billing account''s, else the mapping''s',
    is_account_found                  UInt8 COMMENT '1 when that account is in dim_crm_account'
)
AS SELECT
    source,
    record_id,
    installation_id,
    recorded_at,
    record_date,
    license_md5,
    license_sha256,
    toUInt8(license_md5 != '' OR license_sha256 != '') AS has_license,
    dim_license_id,
    r.dim_subscription_id AS dim_subscription_id,
    subscription_source,
    toUInt8(license_subscription != '' OR mapping_subscription != '') AS is_license_mapped_to_subscription,
    toUInt8(sa.dim_subscription_id != '') AS is_subscription_found,
    if(sa.dim_crm_account_id != '', sa.dim_crm_account_id, mapping_account) AS dim_crm_account_id,
    toUInt8(dim_crm_account_id IN (SELECT dim_crm_account_id FROM dim_crm_account FINAL)) AS is_account_found
FROM
(
    SELECT
        p.source AS source,
        p.record_id AS record_id,
        p.installation_id AS installation_id,
        p.recorded_at AS recorded_at,
        p.record_date AS record_date,
        p.license_md5 AS license_md5,
        p.license_sha256 AS license_sha256,
        if(l5.dim_license_id != '', l5.dim_license_id, l2.dim_license_id) AS dim_license_id,
        if(l5.dim_subscription_id != '', l5.dim_subscription_id, l2.dim_subscription_id) AS license_subscription,
        if(m5.dim_subscription_id != '', m5.dim_subscription_id, m2.dim_subscription_id) AS mapping_subscription,
        if(m5.dim_crm_account_id != '', m5.dim_crm_account_id, m2.dim_crm_account_id) AS mapping_account,
        multiIf(license_subscription != '', license_subscription, mapping_subscription != '', mapping_subscription,
                p.reported_subscription_id) AS dim_subscription_id,
        multiIf(license_subscription != '', 'license', mapping_subscription != '', 'mapping',
                p.reported_subscription_id != '', 'reported', '') AS subscription_source
    FROM
    (
        SELECT 'service_ping' AS source, ping_id AS record_id, installation_id, recorded_at,
               toDate(recorded_at) AS record_date, license_md5, license_sha256,
               license_subscription_id AS reported_subscription_id
        FROM fct_ping_instance FINAL
        UNION ALL
        SELECT 'seat_link' AS source, seat_link_id AS record_id, installation_id, report_timestamp AS recorded_at,
               report_date AS record_date, license_md5, license_sha256, '' AS reported_subscription_id
        FROM fct_seat_link FINAL
    ) AS p
    LEFT JOIN prep_license_by_hash AS l5 ON p.license_md5 = l5.license_hash
    LEFT JOIN prep_license_by_hash AS l2 ON p.license_sha256 = l2.license_hash
    LEFT JOIN
    (
        SELECT license_hash, dim_subscription_id, dim_crm_account_id FROM dim_license_account_mapping FINAL
    ) AS m5 ON p.license_md5 = m5.license_hash
    LEFT JOIN
    (
        SELECT license_hash, dim_subscription_id, dim_crm_account_id FROM dim_license_account_mapping FINAL
    ) AS m2 ON p.license_sha256 = m2.license_hash
) AS r
LEFT JOIN prep_subscription_account AS sa ON r.dim_subscription_id = sa.dim_subscription_id
COMMENT 'Orange. Grain: one row per record (source x record_id: a Service Ping or a Seat Link report). Its license, subscription and CRM account (license md5 OR sha256): the one license -> subscription -> account rule.';
