"""Keyed hashes of user ids: the warehouse keeps `user_hash`, never the id itself.

The key comes from DENOMAS_HASH_KEY. Without it a fixed development key is used and a warning is
logged once: hashes made with a public key can be reversed for small id spaces, so production must
set its own secret. The same key must be used by every process that hashes (collector and worker).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os

log = logging.getLogger(__name__)

HASH_KEY_ENV = "DENOMAS_HASH_KEY"
_DEV_KEY = b"denomas-usage-development-hash-key"


@functools.cache
def hash_key() -> bytes:
    value = os.environ.get(HASH_KEY_ENV, "")
    if not value:
        log.warning("%s is not set: user ids are hashed with the public development key; set a secret "
                    "in production", HASH_KEY_ENV)
        return _DEV_KEY
    key = value.encode()
    return key if len(key) <= 64 else hashlib.blake2b(key, digest_size=64).digest()  # blake2b keys are <= 64 bytes


def user_hash(user_id: str | int | None, key: bytes | None = None) -> int:
    """A 64-bit keyed hash (blake2b MAC) of a user id; 0 means anonymous. 42 and "42" hash alike."""
    if user_id is None or isinstance(user_id, bool):
        return 0
    text = str(user_id).strip()
    if not text:
        return 0
    digest = hashlib.blake2b(text.encode(), key=key if key is not None else hash_key(), digest_size=8).digest()
    return int.from_bytes(digest, "big") or 1
