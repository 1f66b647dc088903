"""Sealing a stored response so only the holder of its Idempotency-Key can open it.

The AES-256-GCM key is derived with HKDF-SHA256 from the ``Idempotency-Key``
(never stored) and a service secret, bound to the record's lookup hash; the
lookup hash is also the associated data, so a sealed body cannot be moved
to another record. The database alone holds neither input key.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_INFO = b"runtools/idempotency-response/v1|"
_NONCE_BYTES = 12


class SealBroken(Exception):
    """The sealed response does not open with this key (wrong key, or tampered)."""


def _key(idempotency_key: str, service_secret: bytes, lookup_hash: str) -> bytes:
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=service_secret,
        info=_INFO + lookup_hash.encode(),
    )
    return hkdf.derive(idempotency_key.encode())


def seal(idempotency_key: str, service_secret: bytes, lookup_hash: str, plaintext: bytes) -> str:
    nonce = os.urandom(_NONCE_BYTES)
    key = _key(idempotency_key, service_secret, lookup_hash)
    ciphertext = AESGCM(key).encrypt(nonce, plaintext, lookup_hash.encode())
    return base64.b64encode(nonce + ciphertext).decode()


def unseal(idempotency_key: str, service_secret: bytes, lookup_hash: str, sealed: str) -> bytes:
    raw = base64.b64decode(sealed)
    key = _key(idempotency_key, service_secret, lookup_hash)
    try:
        return AESGCM(key).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], lookup_hash.encode())
    except InvalidTag as exc:
        raise SealBroken() from exc
