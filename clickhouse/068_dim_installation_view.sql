-- dim_installation: one row per installation (uuid + hostname), folded from its pings at query time.
-- It was an AggregatingMergeTree fed by a materialized view, which a worker killed between the ping insert and the
-- view's insert left without the installation (issue 10); a view over fct_ping_instance (one row per ping) is exact
-- by construction and cheap. Columns keep their aggregate-state shape, so readers still use
-- min/max/argMaxMerge ... GROUP BY.
-- Grain: installation_id x instance_uuid x hostname.
-- Class: Orange (hostnames).
DROP VIEW IF EXISTS dim_installation_mv;
DROP TABLE IF EXISTS dim_installation;

CREATE VIEW IF NOT EXISTS dim_installation AS
SELECT installation_id, instance_uuid, hostname,
       min(recorded_at) AS first_ping_at, max(recorded_at) AS last_ping_at,
       argMaxState(version, recorded_at) AS latest_version,
       argMaxState(toString(edition), recorded_at) AS latest_edition,
       argMaxState(toString(installation_type), recorded_at) AS latest_installation_type
FROM fct_ping_instance FINAL
GROUP BY installation_id, instance_uuid, hostname;
