"""Opaque secrets: refresh tokens, device codes, user codes and invitation tokens.

Refresh tokens carry their own prefix (``rtr_``), distinct from API keys, so
one can never be mistaken for the other. All are stored as SHA-256 digests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Any, Protocol

REFRESH_PREFIX = "rtr_"
INVITATION_PREFIX = "rt_inv_"
#: RFC 8628 §6.1: no vowels (no words), no look-alikes.
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_refresh_token() -> str:
    """256 random bits."""
    return REFRESH_PREFIX + secrets.token_urlsafe(32)


def successor_refresh_token(presented: str, key: bytes) -> str:
    """The one successor of a refresh token, derivable only with the server's key.

    Deriving it (rather than drawing it) lets concurrent refreshes of one token
    all receive the same successor within the grace period, without the
    plaintext successor ever being stored.
    """
    mac = hmac.new(key, presented.encode(), hashlib.sha256).digest()
    return REFRESH_PREFIX + base64.urlsafe_b64encode(mac).decode().rstrip("=")


def new_invitation_token() -> str:
    """256 random bits, with a prefix of its own (never mistaken for a key)."""
    return INVITATION_PREFIX + secrets.token_urlsafe(32)


def looks_like_refresh_token(token: str) -> bool:
    return token.startswith(REFRESH_PREFIX)


def new_device_code() -> str:
    """256 random bits (RFC 8628 asks for enough entropy to resist guessing)."""
    return secrets.token_urlsafe(32)


def new_user_code() -> str:
    return "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))


def display_user_code(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


def normalize_user_code(typed: str) -> str | None:
    """Accept any case, with or without the dash or spaces; None if it cannot be a code."""
    cleaned = "".join(ch for ch in typed.upper() if ch not in "- ")
    if len(cleaned) != USER_CODE_LENGTH or any(ch not in USER_CODE_ALPHABET for ch in cleaned):
        return None
    return cleaned


class TokenSigner(Protocol):
    """Signs access-token claims with the newest signing key (``authn.signing.Keyring``)."""

    def sign(self, claims: dict[str, Any]) -> str: ...
