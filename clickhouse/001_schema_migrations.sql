-- schema_migrations: the migration runner's own record (streams/warehouse.py creates it before the first migration,
-- so this file only gives it its data class).
ALTER TABLE schema_migrations MODIFY COMMENT 'Public. Grain: one row per applied migration (version, name, checksum).';
