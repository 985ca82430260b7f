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
import re

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


# A pseudonymized id in records we publish: the keyed hash in a form no tracker sends, so a record that passes an
# agent again (a replay, a record another producer copied) is recognised and never hashed twice.
PSEUDONYM_PREFIX = "uh64:"
_PSEUDONYM = re.compile(re.escape(PSEUDONYM_PREFIX) + "[0-9a-f]{16}")


def parse_pseudonym(value: object) -> int | None:
    """The hash a pseudonym carries, None when `value` is not one."""
    if not isinstance(value, str) or not _PSEUDONYM.fullmatch(value):
        return None
    return int(value[len(PSEUDONYM_PREFIX):], 16)


def pseudonym(user_id: str | int | None, key: bytes | None = None) -> str:
    """`user_id` as published: "uh64:<16 hex digits of user_hash>"; a pseudonym stays as it is; "" for none."""
    if parse_pseudonym(user_id) is not None:
        return str(user_id)
    hashed = user_hash(user_id, key)
    return f"{PSEUDONYM_PREFIX}{hashed:016x}" if hashed else ""


def hashed_user(value: str | int | None, key: bytes | None = None) -> int:
    """user_hash of a user id that may already have been pseudonymized: the same number either way."""
    parsed = parse_pseudonym(value)
    return parsed if parsed is not None else user_hash(value, key)
