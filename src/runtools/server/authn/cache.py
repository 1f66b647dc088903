"""A bounded, in-process cache of verified credentials — and of misses.

Keyed by the credential's SHA-256 digest, so a lookup costs one dict access
and the cache never holds a secret. Entries live at most ``ttl`` seconds
(``negative_ttl`` for misses) as a safety net; revocation events drop them
at once. Misses are cached so a flood of well-formed but unknown keys cannot
hammer the store, and the LRU bound keeps that flood from growing memory.

Two guards keep revocation exact across nodes: ``epoch`` moves on every
invalidation, so a fill that read the store before a revocation landed is
not stored (``put(..., epoch=...)``); and ``limit_ttl`` shortens every
entry's life while revocation events may be missed (event link down).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, NamedTuple, TypeVar

V = TypeVar("V")


class Entry(NamedTuple, Generic[V]):
    """A verification (None: a cached miss) and when it expires, on ``monotonic``'s clock."""

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
        self._entries: OrderedDict[str, Entry[V]] = OrderedDict()
        self._max = max_entries
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._full_ttl = (ttl, negative_ttl)
        self.epoch = 0
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

    @property
    def entries(self) -> dict[str, Entry[V]]:
        """The entries themselves, read (never written) by the steady path.

        A live view: every invalidation changes this same dict. The steady
        path counts its own hits; ``hits`` and ``misses`` here count ``get``.
        """
        return self._entries

    @property
    def monotonic(self) -> Callable[[], float]:
        """The clock ``Entry.expires`` is on."""
        return self._monotonic

    def put(self, digest: str, value: V | None, *, epoch: int | None = None) -> None:
        """Store a verification; skipped if anything was invalidated since ``epoch``."""
        ttl = self._ttl if value is not None else self._negative_ttl
        with self._lock:
            if epoch is not None and epoch != self.epoch:
                return
            self._entries[digest] = Entry(value, self._monotonic() + ttl)
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
            self.epoch += 1
        return len(doomed)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.epoch += 1

    def limit_ttl(self, seconds: float | None) -> None:
        """Cap entry lifetimes at ``seconds`` (None: back to full), forgetting every entry."""
        ttl, negative_ttl = self._full_ttl
        with self._lock:
            if seconds is None:
                self._ttl, self._negative_ttl = ttl, negative_ttl
            else:
                self._ttl, self._negative_ttl = min(ttl, seconds), min(negative_ttl, seconds)
            self._entries.clear()
            self.epoch += 1

    def __len__(self) -> int:
        return len(self._entries)
