"""Fixed-window request counters: in process, in Redis, and Redis with a local fallback.

A counter answers one question: "count one more request in window ``key``;
how many so far?" Redis counts atomically for every node (one round trip:
a Lua INCRBY that sets the expiry on first use). ``BlockCounter`` spares the
round trip for busy credentials: a node reserves a block of consecutive
counts at once and hands them out itself. When Redis cannot answer,
``FailoverCounter`` counts in this process (limits then hold per node) and
tries Redis again after ``retry_seconds``: recovery needs no restart.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Protocol

logger = logging.getLogger("runtools.ratelimit")


class CounterUnavailable(Exception):
    """The shared counter store did not answer."""


class Counter(Protocol):
    async def increment(self, key: str, window_start: int, ttl: int, block: int = 1) -> int:
        """Count one request; ``block`` is how many counts a shared counter may reserve."""
        ...

    def reserved(self, key: str, window_start: int) -> Iterator[int] | None:
        """The positions reserved for ``key`` and not handed out yet, if any.

        Shared, not copied: a position taken from it by anyone is gone for all.
        """
        ...

    async def reachable(self) -> bool:
        """Whether the store the counts live in answers now (always, in process)."""
        ...


class LocalCounter:
    """Per-process counts; memory bounded by evicting past windows first, then everything.

    A count is one ``next()`` on an ``itertools.count``, atomic without a lock;
    the lock is taken only to open a key's new window.
    """

    def __init__(self, *, max_keys: int = 100_000) -> None:
        self._counts: dict[str, tuple[int, Iterator[int]]] = {}  # key -> (window start, counter)
        self._max = max_keys
        self._lock = threading.Lock()

    async def increment(self, key: str, window_start: int, ttl: int, block: int = 1) -> int:
        return self.increment_now(key, window_start)

    def reserved(self, key: str, window_start: int) -> Iterator[int] | None:
        return None  # nothing is reserved: every count is taken here

    async def reachable(self) -> bool:
        return True

    def increment_now(self, key: str, window_start: int) -> int:
        slot = self._counts.get(key)
        if slot is None or slot[0] != window_start:
            slot = self._open(key, window_start)
        return next(slot[1])

    def _open(self, key: str, window_start: int) -> tuple[int, Iterator[int]]:
        with self._lock:
            slot = self._counts.get(key)
            if slot is None or slot[0] != window_start:  # not opened meanwhile
                slot = self._counts[key] = (window_start, itertools.count(1))
                if len(self._counts) > self._max:
                    self._evict(window_start)
            return slot

    def _evict(self, window_start: int) -> None:
        stale = [k for k, (start, _) in self._counts.items() if start != window_start]
        for key in stale:
            del self._counts[key]
        if len(self._counts) > self._max:
            self._counts.clear()


_INCREMENT = """
local count = redis.call('INCRBY', KEYS[1], ARGV[2])
if count == tonumber(ARGV[2]) then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""


class RedisCounter:
    """Counts shared by every node. One client per event loop (clients bind to their loop)."""

    def __init__(self, url: str, prefix: str, *, timeout: float = 0.25) -> None:
        self._url = url
        self._prefix = prefix
        self._timeout = timeout
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, object] = (
            weakref.WeakKeyDictionary()
        )

    def _script(self) -> object:
        import redis.asyncio

        loop = asyncio.get_running_loop()
        script = self._clients.get(loop)
        if script is None:
            # Blocking pool: a burst beyond the pool waits (briefly) instead of failing over.
            pool = redis.asyncio.BlockingConnectionPool.from_url(
                self._url,
                max_connections=64,
                timeout=self._timeout,
                socket_timeout=self._timeout,
                socket_connect_timeout=self._timeout,
            )
            client = redis.asyncio.Redis(connection_pool=pool)
            script = client.register_script(_INCREMENT)
            self._clients[loop] = script
        return script

    async def increment(self, key: str, window_start: int, ttl: int, block: int = 1) -> int:
        """Add ``block`` to the window's count atomically; returns the new total."""
        import redis

        script = self._script()
        try:
            redis_key = f"{self._prefix}:rl:{key}:{window_start}"
            count = await script(keys=[redis_key], args=[ttl, block])  # type: ignore[operator]
        except (TimeoutError, redis.RedisError, OSError) as exc:
            raise CounterUnavailable(type(exc).__name__) from exc
        return int(count)

    def reserved(self, key: str, window_start: int) -> Iterator[int] | None:
        return None  # every count is one round trip

    async def reachable(self) -> bool:
        """One PING within the counter's timeout."""
        import redis

        client = self._script().registered_client  # type: ignore[attr-defined]
        try:
            return bool(await client.ping())
        except (TimeoutError, redis.RedisError, OSError):
            return False


class BlockCounter:
    """Shared counts reserved in blocks: one Redis round trip per block, not per request.

    Every request takes one count, a position in its window; a position at
    or under the limit admits it. A node reserves ``block`` consecutive
    positions with one atomic INCRBY and hands them out in order, so the
    positions of all nodes stay distinct and a limit is never exceeded.
    Positions a node reserved but did not use before its window ends are
    lost: other nodes can only be refused early, by at most one block per
    node. The limiter asks for blocks of 1 below 100 requests a minute (every
    request asks Redis, as without blocks) and at most 2% of the limit above.
    """

    def __init__(self, shared: RedisCounter, *, max_keys: int = 100_000) -> None:
        self._shared = shared
        self._max = max_keys
        # key -> (window start, the positions left): an iterator, so that the meter
        # it is also handed to (``reserved``) and this counter never give one twice.
        self._reserved: dict[str, tuple[int, Iterator[int]]] = {}
        # One reservation in flight per key: concurrent requests wait for it
        # instead of each reserving (and stranding) a block of their own.
        self._reserving: dict[str, asyncio.Event] = {}

    async def increment(self, key: str, window_start: int, ttl: int, block: int = 1) -> int:
        if block <= 1:
            return await self._shared.increment(key, window_start, ttl)
        while True:
            held = self._reserved.get(key)
            if held is not None and held[0] == window_start:
                position = next(held[1], None)
                if position is not None:
                    return position
            reserving = self._reserving.get(key)
            if reserving is None:
                break
            await reserving.wait()
        self._reserving[key] = done = asyncio.Event()
        try:
            total = await self._shared.increment(key, window_start, ttl, block)
        finally:
            del self._reserving[key]
            done.set()
        if len(self._reserved) >= self._max:
            self._reserved = {k: v for k, v in self._reserved.items() if v[0] == window_start}
        self._reserved[key] = (window_start, iter(range(total - block + 2, total + 1)))
        return total - block + 1

    def reserved(self, key: str, window_start: int) -> Iterator[int] | None:
        held = self._reserved.get(key)
        return held[1] if held is not None and held[0] == window_start else None

    async def reachable(self) -> bool:
        return await self._shared.reachable()


class FailoverCounter:
    def __init__(
        self,
        shared: Counter,
        local: LocalCounter,
        *,
        retry_seconds: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._shared = shared
        self._local = local
        self._retry = retry_seconds
        self._monotonic = monotonic
        self._shared_down_until: float | None = None

    @property
    def degraded(self) -> bool:
        return self._shared_down_until is not None

    async def increment(self, key: str, window_start: int, ttl: int, block: int = 1) -> int:
        down_until = self._shared_down_until
        if down_until is None or self._monotonic() >= down_until:
            try:
                count = await self._shared.increment(key, window_start, ttl, block)
            except CounterUnavailable as exc:
                if down_until is None:
                    logger.warning(
                        "shared rate-limit counters unavailable (%s); counting per node", exc
                    )
                self._shared_down_until = self._monotonic() + self._retry
            else:
                if down_until is not None:
                    logger.warning("shared rate-limit counters are back")
                    self._shared_down_until = None
                return count
        return self._local.increment_now(key, window_start)

    def reserved(self, key: str, window_start: int) -> Iterator[int] | None:
        if self._shared_down_until is not None:
            return None
        return self._shared.reserved(key, window_start)

    async def reachable(self) -> bool:
        """Whether the shared counts answer (the local fallback always does)."""
        return await self._shared.reachable()
