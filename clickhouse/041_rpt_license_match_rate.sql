-- rpt_license_match_rate: how many pings and Seat Link reports found their license, subscription and CRM
-- account, per month (of recorded_at / report_date). Rates are over the records that carry a license hash.
-- Grain: one row per month x source ('service_ping' | 'seat_link'). Class: public (counts only).
CREATE VIEW IF NOT EXISTS rpt_license_match_rate
AS SELECT
    month,
    source,
    count() AS records,
    countIf(has_lic = 1) AS with_license,
    countIf(lic = 1) AS license_found,
    countIf(mapped = 1) AS mapped_to_subscription,
    countIf(sub = 1) AS subscription_found,
    countIf(acc = 1) AS account_found,
    if(with_license = 0, 0, subscription_found / with_license) AS subscription_match_rate,
    if(with_license = 0, 0, account_found / with_license) AS account_match_rate
FROM
(
    SELECT toStartOfMonth(record_date) AS month, source, has_license AS has_lic,
           toUInt8(dim_license_id != '') AS lic, is_license_mapped_to_subscription AS mapped,
           is_subscription_found AS sub, is_account_found AS acc
    FROM prep_license_match
)
GROUP BY month, source
COMMENT 'public. Grain: one row per month x source; license/subscription/account match counts and rates.';
