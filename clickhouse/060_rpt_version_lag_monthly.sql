-- Use-case reports for product and customer success, all from the installations' last ping of each month
-- (dim_ping_instance.is_last_ping_of_month). Plain views: exact for whatever has landed, nothing to refresh.
-- Accounts come from prep_ping_subscription (license md5 OR sha256 -> subscription -> CRM account); an
-- installation without a mapped account has dim_crm_account_id = ''.

-- rpt_version_lag_monthly: how far each installation is behind the newest version.
-- Grain: one row per installation x month.
-- minors_behind = how many major.minor releases newer than the installation's were available by the end of the
-- month: from dim_app_release (release_date <= last day of the month) when it lists any release, otherwise the
-- major.minor versions any installation reported by then (pre-releases excluded). Counting releases, not minor
-- numbers, keeps the lag right across a major (17.11 -> 18.1 is 2 behind).
-- is_far_behind = 1 from 3 minors behind: outside the current release and the two before it, the range that gets
-- security fixes. Class: Orange (installations, hostnames, accounts).
CREATE VIEW IF NOT EXISTS rpt_version_lag_monthly
(
    ping_created_date_month   Date COMMENT 'calendar month',
    installation_id           String COMMENT 'md5(uuid|hostname)',
    instance_uuid             String COMMENT 'instance uuid',
    hostname                  String COMMENT 'hostname (Orange)',
    dim_crm_account_id        String COMMENT 'CRM account of the installation''s subscription; empty when unknown',
    latest_subscription_id    String COMMENT 'subscription of the installation''s license; empty when none',
    installation_type         LowCardinality(String) COMMENT 'omnibus-gitlab, gitlab-helm-chart, docker, ...',
    ping_edition              LowCardinality(String) COMMENT 'CE or EE',
    product_tier              LowCardinality(String) COMMENT 'Free, Starter, Premium, Ultimate',
    active_user_count         Nullable(Int64) COMMENT 'active users of the last ping',
    version                   String COMMENT 'version of the last ping of the month',
    major_minor_version_id    UInt32 COMMENT 'major * 100 + minor',
    latest_major_minor_version String COMMENT 'newest major.minor available by the end of the month',
    minors_behind             UInt64 COMMENT 'major.minor releases newer than the installation''s, available by month end',
    is_far_behind             UInt8 COMMENT '1 when minors_behind >= 3 (outside the security-fix window)',
    lag_basis                 String COMMENT 'releases (dim_app_release) or pings (versions reported by any installation)'
)
AS WITH
    (SELECT count() FROM dim_app_release) > 0 AS has_releases,
    available AS
    (
        SELECT toUInt32(major) * 100 + minor AS version_id, toStartOfMonth(min(release_date)) AS first_month
        FROM dim_app_release FINAL
        GROUP BY version_id
        UNION ALL
        SELECT major_minor_version_id, min(ping_created_date_month)
        FROM dim_ping_instance
        WHERE (SELECT count() FROM dim_app_release) = 0 AND version_is_prerelease = 0
        GROUP BY major_minor_version_id
    ),
    by_month AS
    (
        SELECT m.ping_created_date_month AS month, groupArray(a.version_id) AS versions
        FROM (SELECT DISTINCT ping_created_date_month FROM dim_ping_instance) AS m
        CROSS JOIN available AS a
        WHERE a.first_month <= m.ping_created_date_month
        GROUP BY month
    )
SELECT
    p.ping_created_date_month AS ping_created_date_month,
    p.installation_id AS installation_id,
    p.instance_uuid AS instance_uuid,
    p.hostname AS hostname,
    s.dim_crm_account_id AS dim_crm_account_id,
    s.dim_subscription_id AS latest_subscription_id,
    p.installation_type AS installation_type,
    p.ping_edition AS ping_edition,
    p.product_tier AS product_tier,
    p.active_user_count AS active_user_count,
    p.version AS version,
    p.major_minor_version_id AS major_minor_version_id,
    concat(toString(intDiv(arrayMax(v.versions), 100)), '.', toString(arrayMax(v.versions) % 100))
        AS latest_major_minor_version,
    toUInt64(arrayCount(x -> x > p.major_minor_version_id, v.versions)) AS minors_behind,
    toUInt8(minors_behind >= 3) AS is_far_behind,
    if(has_releases, 'releases', 'pings') AS lag_basis
FROM (SELECT * FROM dim_ping_instance WHERE is_last_ping_of_month = 1) AS p
INNER JOIN by_month AS v ON p.ping_created_date_month = v.month
LEFT JOIN (SELECT ping_id, dim_subscription_id, dim_crm_account_id FROM prep_ping_subscription) AS s
    ON p.ping_id = s.ping_id
COMMENT 'Orange. Grain: one row per installation x month. How many major.minor releases newer than the installation''s last ping of the month were available by month end (dim_app_release, else versions any installation reported). is_far_behind from 3: outside the security-fix window.';
