"""SSH public keys as users paste them: parsed, judged and fingerprinted.

A key is one ``authorized_keys``-style line, ``TYPE BASE64 [COMMENT]``,
parsed by ``cryptography``. Accepted: ``ssh-ed25519``,
``ecdsa-sha2-nistp256/384/521`` and ``ssh-rsa`` of at least
``MIN_RSA_BITS``. The fingerprint is what ``ssh-keygen -lf`` prints:
``SHA256:`` and the unpadded base64 of the SHA-256 of the key blob.

A private key pasted by mistake is recognised before anything else and
refused with ``PrivateKeyPasted``, whose message never quotes it; nothing
of it may be stored or logged by the caller either.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

__all__ = [
    "ACCEPTED_TYPES",
    "MAX_COMMENT",
    "MAX_PUBLIC_KEY",
    "MIN_RSA_BITS",
    "BadPublicKey",
    "PrivateKeyPasted",
    "PublicKey",
    "fingerprint_of",
    "parse_public_key",
]

MIN_RSA_BITS = 3072
#: Characters of a pasted key line (a 16384-bit RSA key fits with room to spare).
MAX_PUBLIC_KEY = 16384
MAX_COMMENT = 255
ACCEPTED_TYPES = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
)
_CURVES = {
    "ecdsa-sha2-nistp256": "secp256r1",
    "ecdsa-sha2-nistp384": "secp384r1",
    "ecdsa-sha2-nistp521": "secp521r1",
}
# PEM and OpenSSH private keys ("-----BEGIN ... PRIVATE KEY-----"), PuTTY's .ppk.
_PRIVATE_MARKERS = re.compile(r"PRIVATE KEY|PuTTY-User-Key-File", re.IGNORECASE)
_ACCEPTED = ", ".join(ACCEPTED_TYPES[:-1]) + f" or {ACCEPTED_TYPES[-1]} (>= {MIN_RSA_BITS} bits)"


class BadPublicKey(ValueError):
    """Not an SSH public key this service accepts; the message says why and what is."""


class PrivateKeyPasted(BadPublicKey):
    def __init__(self) -> None:
        super().__init__(
            "This is a private key, which must never leave your machine: paste the public "
            "key instead (the .pub file, e.g. ~/.ssh/id_ed25519.pub). Nothing was stored."
        )


@dataclass(frozen=True)
class PublicKey:
    key_type: str
    #: The key's base64 blob, as in ``authorized_keys``.
    blob: str
    comment: str | None
    fingerprint: str

    @property
    def openssh(self) -> str:
        """``TYPE BASE64``, without the comment."""
        return f"{self.key_type} {self.blob}"


def fingerprint_of(blob: bytes) -> str:
    digest = hashlib.sha256(blob).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def parse_public_key(text: str) -> PublicKey:
    """The key in ``text`` (one line), or ``BadPublicKey`` saying what is wrong."""
    if _PRIVATE_MARKERS.search(text):
        raise PrivateKeyPasted()
    line = text.strip()
    if not line:
        raise BadPublicKey("publicKey is empty: paste the contents of a .pub file")
    if "\n" in line or "\r" in line:
        raise BadPublicKey("publicKey must be one line: TYPE BASE64 [COMMENT]")
    parts = line.split(None, 2)
    key_type = parts[0]
    if key_type not in ACCEPTED_TYPES:
        raise BadPublicKey(
            f"Unsupported key type {key_type[:40]!r}: use {_ACCEPTED} "
            "(authorized_keys options before the type are not accepted)"
        )
    if len(parts) < 2:
        raise BadPublicKey("publicKey has no key data after its type")
    blob = _decoded(parts[1])
    if _blob_type(blob) != key_type:
        raise BadPublicKey(f"The key data is not a {key_type} key")
    try:
        key = serialization.load_ssh_public_key(f"{key_type} {parts[1]}".encode("ascii"))
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise BadPublicKey(f"The key data is not a valid {key_type} key") from exc
    _check_strength(key_type, key)
    comment = parts[2].strip() if len(parts) > 2 else None
    if comment is not None and len(comment) > MAX_COMMENT:
        raise BadPublicKey(f"The key's comment is longer than {MAX_COMMENT} characters")
    canonical = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    canonical_blob = canonical.split()[1].decode("ascii")
    return PublicKey(
        key_type=key_type,
        blob=canonical_blob,
        comment=comment or None,
        fingerprint=fingerprint_of(base64.b64decode(canonical_blob)),
    )


def _decoded(data: str) -> bytes:
    try:
        return base64.b64decode(data.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeError, ValueError) as exc:
        raise BadPublicKey("The key data is not valid base64") from exc


def _blob_type(blob: bytes) -> str | None:
    """The type string a key blob starts with (an SSH ``string``), None if unreadable."""
    if len(blob) < 4:
        return None
    (length,) = struct.unpack(">I", blob[:4])
    if length > 64 or len(blob) < 4 + length:
        return None
    try:
        return blob[4 : 4 + length].decode("ascii")
    except UnicodeDecodeError:
        return None


def _check_strength(key_type: str, key: object) -> None:
    if key_type == "ssh-rsa":
        assert isinstance(key, rsa.RSAPublicKey)
        if key.key_size < MIN_RSA_BITS:
            raise BadPublicKey(
                f"RSA keys need at least {MIN_RSA_BITS} bits; this one has {key.key_size}. "
                "Make one with: ssh-keygen -t ed25519"
            )
    elif key_type == "ssh-ed25519":
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise BadPublicKey("The key data is not a valid ssh-ed25519 key")
    elif not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != _CURVES[key_type]:
        raise BadPublicKey(f"The key data is not a valid {key_type} key")
