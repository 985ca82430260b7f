-- dim_installation became a view (068) without a COMMENT, so the catalog and the dashboard saw it as unclassified.
-- Class: Orange (hostnames), as every other per-installation object.
ALTER TABLE dim_installation MODIFY COMMENT 'Orange. Grain: one row per installation (installation_id x instance_uuid x hostname). Folded from its pings at query time; read with min/max/argMaxMerge.';
