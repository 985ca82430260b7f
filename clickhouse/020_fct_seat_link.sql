-- fct_seat_link: every daily Seat Link report instances send to /api/v1/seat_links, all payload generations
-- (12.9 date form .. 18.1 unique_instance_id) normalized to one shape.
-- Grain: one row per report. seat_link_id = hash of license sha256 + report timestamp (or date) + instance uuid,
-- so a report sent twice (Sidekiq retry, manual sync) is one row: the sink skips stored ids and the engine
-- collapses leftovers (ReplacingMergeTree; read with FINAL).
-- Class: Orange (hostname, instance ids), Yellow (seat counts). The license key itself is never stored: the
-- collector replaces it by its md5/sha256 before anything is published.
CREATE TABLE IF NOT EXISTS fct_seat_link
(
    seat_link_id              UInt64,
    license_md5               String COMMENT 'md5 of the license key (normalized as the product does), as pings report it',
    license_sha256            String COMMENT 'sha256 of the license key (normalized as the product does), as pings report it',
    instance_uuid             String COMMENT 'instance_id (14.x+), = Service Ping uuid; empty for older clients',
    unique_instance_id        String COMMENT '18.1+: global anonymous instance id',
    hostname                  String,
    installation_id           String COMMENT 'md5(uuid|hostname) as fct_ping_instance; empty without uuid',
    gitlab_version            String,
    report_timestamp          DateTime64(3, 'UTC') COMMENT 'timestamp (13.x+) or midnight UTC of date (12.9)',
    report_date               Date,
    active_user_count         Nullable(Int64) COMMENT 'billable users: billable_users_count, or active_users (12.9/13.0)',
    max_historical_user_count Nullable(Int64),
    license_user_count        Nullable(Int64) COMMENT 'only when the client sends it',
    add_on_metrics            String COMMENT 'JSON array of {add_on_type, purchased_seats, assigned_seats}',
    payload_generation        LowCardinality(String) COMMENT '12.9, 13.x, 14.x, add_on_metrics, 18.1+',
    received_at               DateTime64(3, 'UTC'),
    payload                   String CODEC(ZSTD(3)) COMMENT 'the report as published: original JSON, key replaced by hashes'
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(report_date)
ORDER BY (license_sha256, report_date, seat_link_id)
COMMENT 'Orange/Yellow. Grain: one row per Seat Link report (license x report timestamp x instance).';
