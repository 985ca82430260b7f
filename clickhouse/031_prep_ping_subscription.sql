-- License -> subscription -> CRM account matching (reference model 2.7 and 2.10), for pings.
-- The rule (the same as streams/enrich/reference.py ReferenceLookup):
--   1. the license is found by license_md5, else by license_sha256 (dim_license);
--   2. the subscription is the license's own, else the account mapping's (matched by either hash), else the
--      subscription id the instance reported (license_subscription_id);
--   3. the account is the subscription's CRM account, else its billing account's, else the mapping's.
-- "found" means the id exists in the dim_ table (FINAL: deleted rows do not count).

-- prep_license_by_hash. Grain: one row per license hash (md5 or sha256) known to dim_license. Class: Yellow.
CREATE VIEW IF NOT EXISTS prep_license_by_hash
AS SELECT
    license_hash,
    argMax(license_id, (version, license_id)) AS dim_license_id,
    argMax(subscription_id, (version, license_id)) AS dim_subscription_id
FROM
(
    SELECT license_md5 AS license_hash, dim_license_id AS license_id, dim_subscription_id AS subscription_id,
           updated_at AS version
    FROM dim_license FINAL WHERE license_md5 != ''
    UNION ALL
    SELECT license_sha256 AS license_hash, dim_license_id AS license_id, dim_subscription_id AS subscription_id,
           updated_at AS version
    FROM dim_license FINAL WHERE license_sha256 != ''
)
GROUP BY license_hash
COMMENT 'Yellow. Grain: one row per license hash (md5 or sha256) of dim_license.';
-- prep_subscription_account. Grain: one row per dim_subscription_id, with its resolved CRM account. Yellow.
CREATE VIEW IF NOT EXISTS prep_subscription_account
AS SELECT
    s.dim_subscription_id AS dim_subscription_id,
    s.subscription_name AS subscription_name,
    s.subscription_status AS subscription_status,
    s.product_tier AS product_tier,
    s.seats AS seats,
    s.term_start_date AS term_start_date,
    s.term_end_date AS term_end_date,
    s.dim_billing_account_id AS dim_billing_account_id,
    if(s.dim_crm_account_id != '', s.dim_crm_account_id, b.dim_crm_account_id) AS dim_crm_account_id
FROM dim_subscription AS s FINAL
LEFT JOIN
(
    SELECT dim_billing_account_id, dim_crm_account_id FROM dim_billing_account FINAL
    WHERE dim_billing_account_id != ''
) AS b ON s.dim_billing_account_id = b.dim_billing_account_id
COMMENT 'Yellow. Grain: one row per subscription, CRM account resolved through the billing account if needed.';
-- prep_ping_subscription. Grain: one row per ping (ping_id of fct_ping_instance). Class: Orange.
CREATE VIEW IF NOT EXISTS prep_ping_subscription
AS SELECT
    ping_id,
    installation_id,
    recorded_at,
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
        p.ping_id AS ping_id,
        p.installation_id AS installation_id,
        p.recorded_at AS recorded_at,
        p.license_md5 AS license_md5,
        p.license_sha256 AS license_sha256,
        if(l5.dim_license_id != '', l5.dim_license_id, l2.dim_license_id) AS dim_license_id,
        if(l5.dim_subscription_id != '', l5.dim_subscription_id, l2.dim_subscription_id) AS license_subscription,
        if(m5.dim_subscription_id != '', m5.dim_subscription_id, m2.dim_subscription_id) AS mapping_subscription,
        if(m5.dim_crm_account_id != '', m5.dim_crm_account_id, m2.dim_crm_account_id) AS mapping_account,
        multiIf(license_subscription != '', license_subscription, mapping_subscription != '', mapping_subscription,
                p.license_subscription_id) AS dim_subscription_id,
        multiIf(license_subscription != '', 'license', mapping_subscription != '', 'mapping',
                p.license_subscription_id != '', 'reported', '') AS subscription_source
    FROM
    (
        SELECT ping_id, installation_id, recorded_at, license_md5, license_sha256, license_subscription_id
        FROM fct_ping_instance FINAL
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
COMMENT 'Orange. Grain: one row per ping: its license, subscription and CRM account (md5 OR sha256 match).';
