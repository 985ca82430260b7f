-- prep_license_by_hash: the license each license hash (md5 or sha256) names in dim_license; step 1 of the license
-- -> subscription -> account rule (prep_license_match). Grain: one row per license hash. Class: Yellow.
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
