-- fct_version_check: every Version Check request (GET /check.json, and the /check.svg, /check.png badges
-- older admin pages load), with the severity the collector answered.
-- Grain: one row per check (check_id = hash of the collector's request id; a redelivered record
-- replaces itself). ReplacingMergeTree; read with FINAL.
-- Class: Orange (host of the instance).
CREATE TABLE IF NOT EXISTS fct_version_check
(
    check_id        UInt64,
    checked_at      DateTime64(3, 'UTC'),
    version         String COMMENT 'as sent in gitlab_info',
    major_version   UInt16,
    minor_version   UInt16,
    patch_version   UInt16,
    prerelease      LowCardinality(String),
    edition         LowCardinality(String) COMMENT 'EE for an -ee version, else gitlab_info edition, else CE',
    host            String COMMENT 'host of the Referer header; empty without one',
    severity        LowCardinality(String) COMMENT 'answered: success, warning, danger',
    latest_version  String COMMENT 'answered',
    request_format  LowCardinality(String) COMMENT 'json, svg or png'
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(checked_at)
ORDER BY (host, checked_at, check_id)
COMMENT 'Orange. Grain: one row per Version Check request.';
