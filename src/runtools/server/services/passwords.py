"""Passwords: the one rule for hashing and checking them (Argon2id, argon2-cffi's parameters).

Every password the service stores or checks goes through here: sign-up,
changing a password, operators creating users, signing in. Nothing else
holds a hasher, so there is one set of parameters and one length rule.
What must not live here: looking users up, or counting wrong guesses
(``services.throttle``).
"""

from __future__ import annotations

import secrets
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from runtools.server.domain.errors import InvalidRequest

MIN_LENGTH = 12
MAX_LENGTH = 1024

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise InvalidRequest(f"Passwords must be {MIN_LENGTH}-{MAX_LENGTH} characters long")
    hashed: str = _hasher.hash(password)
    return hashed


def password_matches(stored: str | None, password: str) -> bool:
    """Whether ``password`` is the one ``stored`` was made from; never for no stored hash.

    With no stored hash (an unknown email, a user without a password) the
    password is checked against a dummy hash all the same, so the answer
    takes as long as for a wrong password: timing does not tell whether an
    account exists.
    """
    try:
        _hasher.verify(stored or dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return False
    return stored is not None


@cache
def dummy_hash() -> str:
    """The hash checked against when there is none; made once per process.

    Call it when a service starts, so the first unknown email does not pay
    for making it (and so take longer than a wrong password).
    """
    hashed: str = _hasher.hash(secrets.token_urlsafe(16))
    return hashed
