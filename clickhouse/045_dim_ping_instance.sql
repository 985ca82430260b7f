-- dim_ping_instance: every valid Service Ping with the reference model's derived flags (EDM dim_ping_instance).
-- Grain: one row per ping (ping_id).
-- The flag every monthly model depends on: is_last_ping_of_month = the latest recorded_at per installation
-- (uuid + hostname) per calendar month (UTC) of recorded_at, ties broken by the highest ping_id.
-- Plain view, not a table: it reads fct_ping_instance FINAL, so a late or redelivered ping moves the flag at
-- once and the answer is exact before merges (the reference needs delete+insert hooks for the same effect).
-- Class: Orange (hostname, license plan per installation).
CREATE VIEW IF NOT EXISTS dim_ping_instance
(
    ping_id                   UInt64 COMMENT 'id of the ping (hash of instance uuid + recorded_at)',
    installation_id           String COMMENT 'md5(uuid|hostname): an installation is uuid + hostname',
    instance_uuid             String COMMENT 'instance uuid the ping carried',
    hostname                  String COMMENT 'hostname the ping carried (Orange)',
    recorded_at               DateTime64(3, 'UTC') COMMENT 'when the instance built the ping',
    ping_created_date_month   Date COMMENT 'first day of the UTC calendar month of recorded_at',
    ping_created_date_week    Date COMMENT 'Monday of the UTC week of recorded_at',
    version                   String COMMENT 'version string as sent, e.g. 18.1.2-ee',
    major_version             UInt16 COMMENT 'major part of the version',
    minor_version             UInt16 COMMENT 'minor part of the version',
    patch_version             UInt16 COMMENT 'patch part of the version',
    major_minor_version       String COMMENT 'major.minor, e.g. 18.1',
    major_minor_version_id    UInt32 COMMENT 'major * 100 + minor: orders versions (reference major_minor_version_id)',
    version_is_prerelease     UInt8 COMMENT '1 for pre-release builds (e.g. 18.2.0-pre)',
    edition                   LowCardinality(String) COMMENT 'edition as sent: CE, EE, EES, EEP, EEU, EE Free',
    ping_edition              LowCardinality(String) COMMENT 'main edition: CE or EE (reference ping_edition)',
    product_tier              LowCardinality(String) COMMENT 'Free, Starter, Premium, Ultimate (an expired license counts as Free)',
    ping_edition_product_tier String COMMENT 'ping_edition - product_tier, e.g. EE - Premium',
    installation_type         LowCardinality(String) COMMENT 'omnibus-gitlab, gitlab-helm-chart, docker, source, ...',
    active_user_count         Nullable(Int64) COMMENT 'active users the instance reported (reference instance_user_count)',
    historical_max_users      Nullable(Int64) COMMENT 'highest active user count the license has seen',
    license_user_count        Nullable(Int64) COMMENT 'seats of the license the ping carried (Yellow)',
    license_subscription_id   String COMMENT 'subscription id the license carried; empty for trials and unlicensed instances',
    license_plan              LowCardinality(String) COMMENT 'license plan: starter, premium, ultimate, ...',
    is_trial                  UInt8 COMMENT '1 when recorded_at is before license_trial_ends_on',
    is_last_ping_of_month     UInt8 COMMENT '1 for the latest ping of the installation in its calendar month (ties: highest ping_id)',
    is_last_ping_of_week      UInt8 COMMENT '1 for the latest ping of the installation in its Monday-based week'
)
AS SELECT
    ping_id,
    installation_id,
    instance_uuid,
    hostname,
    recorded_at,
    toStartOfMonth(recorded_at) AS ping_created_date_month,
    toMonday(recorded_at) AS ping_created_date_week,
    version,
    major_version,
    minor_version,
    patch_version,
    concat(toString(major_version), '.', toString(minor_version)) AS major_minor_version,
    toUInt32(major_version * 100 + minor_version) AS major_minor_version_id,
    CAST(prerelease != '' AS UInt8) AS version_is_prerelease,
    edition,
    main_edition AS ping_edition,
    product_tier,
    concat(main_edition, ' - ', product_tier) AS ping_edition_product_tier,
    installation_type,
    active_user_count,
    historical_max_users,
    license_user_count,
    license_subscription_id,
    license_plan,
    toUInt8(ifNull(toDate(recorded_at) < license_trial_ends_on, 0)) AS is_trial,
    toUInt8(row_number() OVER (PARTITION BY installation_id, toStartOfMonth(recorded_at)
                               ORDER BY recorded_at DESC, ping_id DESC) = 1) AS is_last_ping_of_month,
    toUInt8(row_number() OVER (PARTITION BY installation_id, toMonday(recorded_at)
                               ORDER BY recorded_at DESC, ping_id DESC) = 1) AS is_last_ping_of_week
FROM fct_ping_instance FINAL
COMMENT 'Orange. Grain: one row per ping. Valid pings with version, edition and tier. is_last_ping_of_month: the latest recorded_at of the installation (uuid + hostname) in its UTC calendar month, ties to the highest ping_id: the ping every monthly number uses.';
