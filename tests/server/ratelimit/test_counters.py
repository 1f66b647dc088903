"""Counters: atomic and shared in real Redis, per process otherwise, failing over between."""

from __future__ import annotations

import asyncio
import secrets
import threading
from pathlib import Path
from typing import Any

import pytest

from runtools.server.domain.errors import RateLimited
from runtools.server.ratelimit.counters import (
    BlockCounter,
    FailoverCounter,
    LocalCounter,
    RedisCounter,
)
from runtools.server.ratelimit.limiter import Decision, RateLimiter, block_for
from support.private_services import PrivateRedis

LOCAL_REDIS = "redis://127.0.0.1:6379/0"


def test_redis_counts_are_shared_and_atomic_under_concurrency() -> None:
    prefix = f"t_{secrets.token_hex(6)}"
    # A generous timeout: opening a pool's worth of connections at once on a busy machine.
    node_a = RedisCounter(LOCAL_REDIS, prefix, timeout=5)
    node_b = RedisCounter(LOCAL_REDIS, prefix, timeout=5)

    async def run() -> list[int]:
        return await asyncio.gather(*(c.increment("key_1", 600, 61) for c in [node_a, node_b] * 50))

    counts = asyncio.run(run())
    assert sorted(counts) == list(range(1, 101))


def test_a_new_window_starts_from_zero() -> None:
    counter = LocalCounter()
    assert asyncio.run(counter.increment("k", 0, 61)) == 1
    assert asyncio.run(counter.increment("k", 0, 61)) == 2
    assert asyncio.run(counter.increment("k", 60, 61)) == 1


def test_local_counts_lose_nothing_when_threads_race() -> None:
    counter = LocalCounter()
    seen: list[list[int]] = [[] for _ in range(8)]

    def hammer(mine: list[int]) -> None:
        for i in range(5000):
            mine.append(counter.increment_now("shared", 600))
            counter.increment_now(f"other-{i}", 600)  # new windows opened meanwhile

    threads = [threading.Thread(target=hammer, args=(mine,)) for mine in seen]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Every request got its own position: none counted twice, none lost.
    assert sorted(n for mine in seen for n in mine) == list(range(1, 40_001))


def test_limiter_decision_names_limit_remaining_and_reset() -> None:
    limiter = RateLimiter(LocalCounter(), address_limit=2, wall_clock=lambda: 1_000_010.5)

    async def three() -> list[Decision]:
        return [await limiter.check("b", 2) for _ in range(3)]

    first, second, third = asyncio.run(three())
    assert (first.remaining, second.remaining, third.remaining) == (1, 0, 0)
    assert not third.allowed
    assert second.allowed
    assert first.reset == 1_000_020  # the next whole minute


def test_a_refusal_asks_to_retry_when_the_window_ends() -> None:
    limiter = RateLimiter(LocalCounter(), address_limit=2, wall_clock=lambda: 1_000_010.5)
    state: dict[str, Any] = {}

    async def three() -> None:
        for _ in range(3):
            await limiter.admit_address("203.0.113.9", state)

    with pytest.raises(RateLimited) as refused:
        asyncio.run(three())
    assert refused.value.retry_after == 10  # 9.5 s to the next minute, rounded up
    assert (b"x-ratelimit-remaining", b"0") in state["rate_limit_headers"]


def test_redis_down_falls_back_to_local_counts_and_recovers(tmp_path: Path) -> None:
    server = PrivateRedis(tmp_path / "redis").start()
    now = [0.0]
    counter = FailoverCounter(
        RedisCounter(server.url, "t", timeout=0.2), LocalCounter(), monotonic=lambda: now[0]
    )

    async def hit() -> int:
        return await counter.increment("k", 0, 61)

    try:
        assert asyncio.run(hit()) == 1
        assert asyncio.run(hit()) == 2
        server.stop()
        assert asyncio.run(hit()) == 1  # per node from here on, no error for the caller
        assert counter.degraded
        assert asyncio.run(hit()) == 2
        server.start()  # empty: a fresh server
        now[0] = 10.0  # past the retry interval
        assert asyncio.run(hit()) == 1
        assert not counter.degraded
    finally:
        server.stop()


class CountedRedis(RedisCounter):
    """The real Redis counter, counting its round trips."""

    trips = 0

    async def increment(self, key: str, window_start: int, ttl: int, block: int = 1) -> int:
        self.trips += 1
        return await super().increment(key, window_start, ttl, block)


def test_blocks_give_every_request_a_distinct_position_with_few_round_trips() -> None:
    prefix = f"t_{secrets.token_hex(6)}"
    shared = [CountedRedis(LOCAL_REDIS, prefix, timeout=5) for _ in range(2)]
    node_a, node_b = (BlockCounter(s) for s in shared)

    async def run() -> list[int]:
        # 16 requests at a time per node, as from 16 open connections.
        positions: list[int] = []
        for _ in range(5):
            calls = [n.increment("key_1", 600, 61, 10) for n in [node_a, node_b] * 16]
            positions += await asyncio.gather(*calls)
        return positions

    positions = asyncio.run(run())
    assert len(positions) == len(set(positions)) == 160  # no position given twice
    # Each node wastes at most the block it holds when the window ends: a
    # limit of N admits at most N requests, and at least N - 2 blocks' worth.
    assert max(positions) <= 160 + 2 * 10
    assert sum(s.trips for s in shared) <= 160 // 10 + 2  # not one trip per request


def test_a_limit_is_never_exceeded_across_nodes() -> None:
    prefix = f"t_{secrets.token_hex(6)}"
    nodes = [BlockCounter(RedisCounter(LOCAL_REDIS, prefix, timeout=5)) for _ in range(3)]
    limit = 250  # blocks of 5

    async def run() -> list[int]:
        calls = [n.increment("key_1", 600, 61, block_for(limit)) for n in nodes * 100]
        return await asyncio.gather(*calls)

    admitted = [p for p in asyncio.run(run()) if p <= limit]
    assert limit - 3 * block_for(limit) <= len(admitted) <= limit


def test_blocks_are_one_below_a_hundred_a_minute_and_two_percent_above() -> None:
    assert [block_for(n) for n in (1, 60, 99, 100, 300, 1000, 10**9)] == [1, 1, 1, 2, 6, 20, 100]
