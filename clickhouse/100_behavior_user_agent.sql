-- The user agent parsed with the uap-core rules (streams/enrich/useragent.py), next to the coarse ua_family.
-- Families are 'Other' when the rules do not know the agent, '' when the event had none; versions are dotted
-- (131.0.2903.86), '' when unknown. Rows written before this migration keep '' everywhere (no re-parse).
ALTER TABLE fct_behavior_structured_event
    ADD COLUMN IF NOT EXISTS ua_name LowCardinality(String) DEFAULT ''
        COMMENT 'uap-core user agent family: Chrome, Chrome Mobile, Mobile Safari, Googlebot, curl, ...' AFTER ua_family,
    ADD COLUMN IF NOT EXISTS ua_version String DEFAULT '' COMMENT 'user agent version, e.g. 131.0.2903.86'
        AFTER ua_name,
    ADD COLUMN IF NOT EXISTS os_family LowCardinality(String) DEFAULT '' COMMENT 'Windows, Mac OS X, iOS, Android, ...'
        AFTER ua_version,
    ADD COLUMN IF NOT EXISTS os_version String DEFAULT '' AFTER os_family,
    ADD COLUMN IF NOT EXISTS device_family LowCardinality(String) DEFAULT ''
        COMMENT 'iPhone, Mac, K, ...; Spider = a crawler or bot' AFTER os_version,
    ADD COLUMN IF NOT EXISTS device_brand LowCardinality(String) DEFAULT '' AFTER device_family,
    ADD COLUMN IF NOT EXISTS device_model String DEFAULT '' AFTER device_brand;
