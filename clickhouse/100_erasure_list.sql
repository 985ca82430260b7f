-- Erasure of a user, a SaaS namespace or a self-managed instance (streams/erase.py, README "Erasure").
-- erasure_list: what the agents must never store again, consulted by every sink before it writes (a replay of the
-- raw topics must not bring an erased subject back). A subject is kept only as a digest under the erasure key
-- (blake2b-128 keyed with a key derived from DENOMAS_HASH_KEY, of "kind:value": value = the user's keyed hash, the
-- namespace id, the instance uuid, a host name). Without the secret an entry can be neither tested against a
-- candidate id nor joined to the user_hash values of other tables, exports or backups.
-- Grain: kind x subject_digest. Class: Orange (pseudonymous subjects).
CREATE TABLE IF NOT EXISTS erasure_list
(
    kind           LowCardinality(String) COMMENT 'user, namespace, instance or host',
    subject_digest String COMMENT 'hex blake2b-128 of kind:value under the erasure key; never the id or its user_hash',
    listed_at      DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(listed_at)
ORDER BY (kind, subject_digest)
COMMENT 'Orange. Grain: one row per erased subject (kind, digest). Consulted by the sinks before they store.';
