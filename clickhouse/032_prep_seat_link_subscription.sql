-- prep_seat_link_subscription: license -> subscription -> CRM account for Seat Link reports, by the same rule
-- as prep_ping_subscription (031), except that a Seat Link report names no subscription itself:
--   the license by license_md5, else license_sha256; its subscription, else the account mapping's;
--   the subscription's CRM account, else its billing account's, else the mapping's.
-- Grain: one row per Seat Link report (seat_link_id of fct_seat_link). Class: Orange.
CREATE VIEW IF NOT EXISTS prep_seat_link_subscription
AS SELECT
    seat_link_id,
    installation_id,
    report_timestamp,
    report_date,
    license_md5,
    license_sha256,
    toUInt8(license_md5 != '' OR license_sha256 != '') AS has_license,
    dim_license_id,
    r.dim_subscription_id AS dim_subscription_id,
    subscription_source,
    toUInt8(r.dim_subscription_id != '') AS is_license_mapped_to_subscription,
    toUInt8(sa.dim_subscription_id != '') AS is_subscription_found,
    if(sa.dim_crm_account_id != '', sa.dim_crm_account_id, mapping_account) AS dim_crm_account_id,
    toUInt8(dim_crm_account_id IN (SELECT dim_crm_account_id FROM dim_crm_account FINAL)) AS is_account_found
FROM
(
    SELECT
        s.seat_link_id AS seat_link_id,
        s.installation_id AS installation_id,
        s.report_timestamp AS report_timestamp,
        s.report_date AS report_date,
        s.license_md5 AS license_md5,
        s.license_sha256 AS license_sha256,
        if(l5.dim_license_id != '', l5.dim_license_id, l2.dim_license_id) AS dim_license_id,
        if(l5.dim_subscription_id != '', l5.dim_subscription_id, l2.dim_subscription_id) AS license_subscription,
        if(m5.dim_subscription_id != '', m5.dim_subscription_id, m2.dim_subscription_id) AS mapping_subscription,
        if(m5.dim_crm_account_id != '', m5.dim_crm_account_id, m2.dim_crm_account_id) AS mapping_account,
        if(license_subscription != '', license_subscription, mapping_subscription) AS dim_subscription_id,
        multiIf(license_subscription != '', 'license', mapping_subscription != '', 'mapping', '') AS subscription_source
    FROM
    (
        SELECT seat_link_id, installation_id, report_timestamp, report_date, license_md5, license_sha256
        FROM fct_seat_link FINAL
    ) AS s
    LEFT JOIN prep_license_by_hash AS l5 ON s.license_md5 = l5.license_hash
    LEFT JOIN prep_license_by_hash AS l2 ON s.license_sha256 = l2.license_hash
    LEFT JOIN
    (
        SELECT license_hash, dim_subscription_id, dim_crm_account_id FROM dim_license_account_mapping FINAL
    ) AS m5 ON s.license_md5 = m5.license_hash
    LEFT JOIN
    (
        SELECT license_hash, dim_subscription_id, dim_crm_account_id FROM dim_license_account_mapping FINAL
    ) AS m2 ON s.license_sha256 = m2.license_hash
) AS r
LEFT JOIN prep_subscription_account AS sa ON r.dim_subscription_id = sa.dim_subscription_id
COMMENT 'Orange. Grain: one row per Seat Link report: its license, subscription and CRM account (md5 OR sha256).';
