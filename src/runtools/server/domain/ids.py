"""Identifiers: a type prefix, then a time-ordered, random, base62 body.

Ordering ids lexicographically orders them by creation time, which is what
cursor pagination sorts on. Ids are not secrets; they only need to be unique
and unguessable enough that existence cannot be probed.
"""

from __future__ import annotations

import secrets
import time

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def base62(number: int, width: int) -> str:
    """Encode ``number`` in base62, left-padded with zeros to ``width``."""
    digits = []
    while number:
        number, rem = divmod(number, 62)
        digits.append(BASE62[rem])
    return "".join(reversed(digits)).rjust(width, "0")


def random_base62(length: int) -> str:
    """``length`` uniformly random base62 characters.

    One draw from the OS generator, reduced modulo 62**length: the 64 extra
    bits make the modulo bias below 2**-64. Drawing per character (one
    ``secrets.choice`` each) cost ~1 µs a character, on every request's id.
    """
    space = 62**length
    return base62(secrets.randbits(space.bit_length() + 64) % space, length)


def new_id(prefix: str) -> str:
    """``prefix_`` + 8 chars of milliseconds since the epoch + 14 random chars."""
    return f"{prefix}_{base62(time.time_ns() // 1_000_000, 8)}{random_base62(14)}"


def new_request_id() -> str:
    return f"req_{random_base62(24)}"
