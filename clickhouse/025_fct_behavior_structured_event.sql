-- fct_behavior_structured_event: every Snowplow event that passed validation, enriched (structured events,
-- self-describing events, page views, ...; event_type tells which).
-- Grain: one row per event_id (the tracker's eid). The sink drops exact duplicates (same event_id and
-- event_fingerprint) before inserting, so materialized views on this table never see a copy; an event_id that
-- comes back with different content is not stored but dead-lettered (bad row event_id_conflict). A batch
-- redelivered after a crash between insert and commit is skipped by the same check; an identical leftover copy
-- collapses (ReplacingMergeTree; read with FINAL to be exact before merges).
-- derived_tstamp follows Snowplow: collector_tstamp - (dvce_sent_tstamp - dvce_created_tstamp), a true_tstamp
-- wins, never after collector_tstamp; behavior_date is its UTC day.
-- No IP address is stored: it becomes geo_* and is dropped. User ids are stored only as keyed hashes (user_hash).
-- Class: Orange (user hashes, namespace/project ids, host names, IP-derived location, page URLs).
CREATE TABLE IF NOT EXISTS fct_behavior_structured_event
(
    event_id                     String COMMENT 'UUID text: the tracker eid (derived from the receipt when missing)',
    app_id                       LowCardinality(String),
    platform                     LowCardinality(String),
    event_type                   LowCardinality(String) COMMENT 'struct, unstruct, page_view, page_ping, transaction, transaction_item',
    event_category               LowCardinality(String),
    event_action                 LowCardinality(String),
    event_label                  String,
    event_property               String,
    event_value                  Nullable(Float64),
    event_schema                 String COMMENT 'iglu URI of a self-describing event; empty for other events',
    event_data                   String COMMENT 'JSON data of a self-describing event; empty for other events',
    collector_tstamp             DateTime64(3, 'UTC'),
    dvce_created_tstamp          Nullable(DateTime64(3, 'UTC')),
    dvce_sent_tstamp             Nullable(DateTime64(3, 'UTC')),
    true_tstamp                  Nullable(DateTime64(3, 'UTC')),
    derived_tstamp               DateTime64(3, 'UTC'),
    behavior_date                Date COMMENT 'UTC day of derived_tstamp',
    user_hash                    UInt64 COMMENT 'keyed blake2b hash of the user id (DENOMAS_HASH_KEY); 0 = anonymous',
    namespace_id                 UInt64 COMMENT '0 = none',
    ultimate_parent_namespace_id UInt64 COMMENT '0 = none',
    project_id                   UInt64 COMMENT '0 = none',
    plan                         LowCardinality(String),
    environment                  LowCardinality(String),
    source                       LowCardinality(String),
    realm                        LowCardinality(String),
    deployment_type              LowCardinality(String),
    instance_id                  String COMMENT 'instance uuid (self-managed backend events)',
    host_name                    String,
    instance_version             String,
    context_extra                String COMMENT 'JSON of the standard context extra object; empty when absent',
    contexts                     String COMMENT 'JSON array of the other entities (self-describing JSONs); empty when none',
    geo_country                  LowCardinality(String) COMMENT 'ISO country; ZZ = private/local address; empty = unknown',
    geo_region                   String,
    geo_city                     String,
    ua_family                    LowCardinality(String),
    -- the user agent parsed with the uap-core rules (streams/enrich/useragent.py), next to the coarse ua_family:
    -- families are 'Other' when the rules do not know the agent, '' when the event had none; versions are dotted
    ua_name                      LowCardinality(String) DEFAULT ''
        COMMENT 'uap-core user agent family: Chrome, Chrome Mobile, Mobile Safari, Googlebot, curl, ...',
    ua_version                   String DEFAULT '' COMMENT 'user agent version, e.g. 131.0.2903.86',
    os_family                    LowCardinality(String) DEFAULT '' COMMENT 'Windows, Mac OS X, iOS, Android, ...',
    os_version                   String DEFAULT '',
    device_family                LowCardinality(String) DEFAULT '' COMMENT 'iPhone, Mac, K, ...; Spider = a crawler or bot',
    device_brand                 LowCardinality(String) DEFAULT '',
    device_model                 String DEFAULT '',
    tracker_version              LowCardinality(String),
    name_tracker                 LowCardinality(String),
    page_url                     String,
    page_title                   String,
    page_referrer                String,
    event_fingerprint            UInt64 COMMENT 'hash of the event parameters without stm/eid/nuid/cv: equal = exact duplicate',
    ingested_at                  DateTime64(3, 'UTC'),
    -- where the event came from on the raw topic: the collector's request record that held it (one record per request
    -- and user), so the completeness check (streams/checks/completeness.py) finds every raw Snowplow offset that
    -- landed by position; -1 where a replay does not know it (the check then reads such records back)
    kafka_partition              Int32 DEFAULT -1 COMMENT 'partition of usage.raw.snowplow the event arrived on; -1 = unknown',
    kafka_offset                 Int64 DEFAULT -1 COMMENT 'offset of its request record on that partition; -1 = unknown',
    INDEX event_id_bloom event_id TYPE bloom_filter GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(behavior_date)
ORDER BY (behavior_date, event_type, event_category, event_action, event_id)
COMMENT 'Orange. Grain: one row per Snowplow event (event_id), exact duplicates dropped before insert.';
