"""API key format: ``rt_live_`` / ``rt_test_`` + 32 base62 + 6 base62 CRC32.

The checksum (GitHub's scheme) lets a malformed or mistyped key be refused
before any lookup, and lets secret scanners recognise ours. Keys are stored
as SHA-256 digests: a key carries ~190 random bits, so a fast hash is enough
and lookups stay one indexed equality.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import zlib
from dataclasses import dataclass

from runtools.server.domain.ids import BASE62, base62

LIVE_PREFIX = "rt_live_"
TEST_PREFIX = "rt_test_"
RANDOM_LENGTH = 32
CHECKSUM_LENGTH = 6
KEY_LENGTH = len(LIVE_PREFIX) + RANDOM_LENGTH + CHECKSUM_LENGTH
DISPLAY_PREFIX_LENGTH = 12

_KEY_PATTERN = re.compile(r"^rt_(live|test)_[0-9A-Za-z]{38}$")


@dataclass(frozen=True)
class GeneratedKey:
    plaintext: str
    key_hash: str
    display_prefix: str


def looks_like_api_key(token: str) -> bool:
    """True for anything claiming to be one of our keys (checked or not)."""
    return token.startswith((LIVE_PREFIX, TEST_PREFIX))


def _checksum(body: str) -> str:
    return base62(zlib.crc32(body.encode()), CHECKSUM_LENGTH)


def generate_key(*, is_test: bool) -> GeneratedKey:
    prefix = TEST_PREFIX if is_test else LIVE_PREFIX
    body = prefix + "".join(secrets.choice(BASE62) for _ in range(RANDOM_LENGTH))
    plaintext = body + _checksum(body)
    return GeneratedKey(plaintext, hash_key(plaintext), plaintext[:DISPLAY_PREFIX_LENGTH])


def is_well_formed(token: str) -> bool:
    """Shape and checksum; costs no lookup."""
    if len(token) != KEY_LENGTH or _KEY_PATTERN.match(token) is None:
        return False
    body, checksum = token[:-CHECKSUM_LENGTH], token[-CHECKSUM_LENGTH:]
    return secrets.compare_digest(_checksum(body), checksum)


#: Copied, not constructed, per digest: a new OpenSSL context per request
#: measurably cost more than the hashing itself.
_SHA256 = hashlib.sha256()


def sha256_hex(data: bytes) -> str:
    """SHA-256, hex: how keys and tokens are stored and cached."""
    state = _SHA256.copy()
    state.update(data)
    return state.hexdigest()


def hash_key(token: str) -> str:
    return sha256_hex(token.encode())
