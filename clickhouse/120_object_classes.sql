-- Every table and view carries its data class as the first word(s) of its COMMENT: the one definition that the
-- catalog, the warehouse service's per-role access check and the server's grants (121) are derived from. These
-- objects had none (dim_installation and prep_behavior_event_scope were recreated without one).
ALTER TABLE dim_installation MODIFY COMMENT 'Orange. Grain: installation_id x instance_uuid x hostname. First and last ping, latest version, edition and installation type as aggregate states (read with argMaxMerge ... GROUP BY).';
ALTER TABLE prep_behavior_event_scope MODIFY COMMENT 'Orange. Grain: one row per Snowplow event x scope it counts for (namespace, instance, saas), with the user hash.';
ALTER TABLE schema_migrations MODIFY COMMENT 'Public. Grain: one row per applied migration (version, name, checksum).';
