"""A bounded, in-process cache of verified credentials — and of misses.

Keyed by the credential's SHA-256 digest, so a lookup costs one dict access
and the cache never holds a secret. Entries live at most ``ttl`` seconds
(``negative_ttl`` for misses) as a safety net; revocation events drop them
at once. Misses are cached so a flood of well-formed but unknown keys cannot
hammer the store, and the LRU bound keeps that flood from growing memory.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class _Entry(Generic[V]):
    value: V | None
    expires: float


class VerificationCache(Generic[V]):
    def __init__(
        self,
        *,
        max_entries: int,
        ttl: float,
        negative_ttl: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries: OrderedDict[str, _Entry[V]] = OrderedDict()
        self._max = max_entries
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, digest: str) -> tuple[bool, V | None]:
        """``(found, value)``; a cached miss is ``(True, None)``."""
        entry = self._entries.get(digest)
        if entry is None or entry.expires <= self._monotonic():
            self.misses += 1
            return False, None
        self.hits += 1
        return True, entry.value

    def put(self, digest: str, value: V | None) -> None:
        ttl = self._ttl if value is not None else self._negative_ttl
        with self._lock:
            self._entries[digest] = _Entry(value, self._monotonic() + ttl)
            self._entries.move_to_end(digest)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def discard_where(self, predicate: Callable[[V], bool]) -> int:
        """Drop every positive entry matching ``predicate``; returns how many."""
        with self._lock:
            doomed = [
                digest
                for digest, entry in self._entries.items()
                if entry.value is not None and predicate(entry.value)
            ]
            for digest in doomed:
                del self._entries[digest]
        return len(doomed)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
