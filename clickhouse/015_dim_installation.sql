-- dim_installation: one row per installation (uuid + hostname), folded from its pings at query time. A view over
-- fct_ping_instance (one row per ping) is exact by construction and cheap; a table fed by a materialized view would
-- miss an installation whenever a worker died between the ping insert and the view's insert (issue 10). Columns
-- have the aggregate-state shape, so readers use min/max/argMaxMerge ... GROUP BY.
-- Grain: installation_id x instance_uuid x hostname. Class: Orange (hostnames).
CREATE VIEW IF NOT EXISTS dim_installation AS
SELECT installation_id, instance_uuid, hostname,
       min(recorded_at) AS first_ping_at, max(recorded_at) AS last_ping_at,
       argMaxState(version, recorded_at) AS latest_version,
       argMaxState(toString(edition), recorded_at) AS latest_edition,
       argMaxState(toString(installation_type), recorded_at) AS latest_installation_type
FROM fct_ping_instance FINAL
GROUP BY installation_id, instance_uuid, hostname
COMMENT 'Orange. Grain: installation_id x instance_uuid x hostname. First and last ping, latest version, edition and installation type as aggregate states (read with argMaxMerge ... GROUP BY).';
