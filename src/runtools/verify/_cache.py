"""``KeyCache``: the hub's answers about API keys, kept briefly and boundedly.

Keyed by the credential's SHA-256 digest (the cache never holds a secret),
at most ``size`` entries (least recently used go first), each for at most
``ttl`` seconds (a refusal for ``negative_ttl``). ``ttl`` is the bound on
how long a key revoked at the hub still works here.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple

from runtools.verify._principal import VerifiedPrincipal


class _Entry(NamedTuple):
    principal: VerifiedPrincipal | None  # None: the hub refused the credential
    expires: float


def digest(credential: str) -> str:
    return hashlib.sha256(credential.encode("utf-8", "surrogatepass")).hexdigest()


class KeyCache:
    def __init__(
        self, *, ttl: float, negative_ttl: float, size: int, monotonic: Callable[[], float]
    ) -> None:
        if size < 1 or ttl < 0 or negative_ttl < 0:
            raise ValueError("cache size must be positive and its lifetimes not negative")
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._size = size
        self._monotonic = monotonic

    def get(self, key: str) -> tuple[bool, VerifiedPrincipal | None]:
        """``(found, principal)``; a cached refusal is ``(True, None)``."""
        entry = self._entries.get(key)
        if entry is None:
            return False, None
        if entry.expires <= self._monotonic():
            del self._entries[key]
            return False, None
        self._entries.move_to_end(key)
        return True, entry.principal

    def put(self, key: str, principal: VerifiedPrincipal | None) -> None:
        ttl = self._ttl if principal is not None else self._negative_ttl
        self._entries[key] = _Entry(principal, self._monotonic() + ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
