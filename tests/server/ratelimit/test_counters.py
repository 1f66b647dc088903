"""Counters: atomic and shared in real Redis, per process otherwise, failing over between."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

from runtools.server.ratelimit.counters import FailoverCounter, LocalCounter, RedisCounter
from runtools.server.ratelimit.limiter import Decision, RateLimiter
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


def test_limiter_decision_names_limit_remaining_and_reset() -> None:
    limiter = RateLimiter(LocalCounter(), address_limit=2, wall_clock=lambda: 1_000_010.5)

    async def three() -> list[Decision]:
        return [await limiter.check("b", 2) for _ in range(3)]

    first, second, third = asyncio.run(three())
    assert (first.remaining, second.remaining, third.remaining) == (1, 0, 0)
    assert not third.allowed and second.allowed
    assert first.reset == 1_000_020  # the next whole minute
    assert third.retry_after == 10


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
