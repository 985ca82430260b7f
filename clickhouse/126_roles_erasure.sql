-- server-only
-- Grants on the erasure tables of 125, by their data class (as 121 derives them, README "Roles"):
-- erasure_log is Public (nothing identifies a subject); erasure_list and erasure_pending are Orange (pseudonymous).
GRANT SELECT ON erasure_log TO analyst;
GRANT SELECT ON erasure_log TO customer_success;
GRANT SELECT ON erasure_list TO customer_success;
GRANT SELECT ON erasure_pending TO customer_success;
GRANT SELECT ON erasure_log TO finance;
