"""Password hashing: Argon2id with the library's current recommended parameters."""

from __future__ import annotations

from argon2 import PasswordHasher

from runtools.server.domain.errors import InvalidRequest

MIN_LENGTH = 12
MAX_LENGTH = 1024


def hash_password(password: str) -> str:
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise InvalidRequest(f"Passwords must be {MIN_LENGTH}-{MAX_LENGTH} characters long")
    hashed: str = PasswordHasher().hash(password)
    return hashed
