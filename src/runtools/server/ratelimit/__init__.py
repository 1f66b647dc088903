"""Request rate limits: per credential, and per client address on public routes that ask for it."""

from __future__ import annotations

import time
from collections.abc import Callable

from runtools.server.ratelimit.counters import FailoverCounter, LocalCounter
from runtools.server.ratelimit.limiter import RateLimiter
from runtools.server.settings import Settings

__all__ = ["RateLimiter", "build_rate_limiter"]


def build_rate_limiter(
    settings: Settings,
    *,
    wall_clock: Callable[[], float] = time.time,
    on_refusal: Callable[[str], None] | None = None,
) -> RateLimiter:
    """Counters in Redis (falling back to this process) when configured, in process otherwise.

    Windows are the epoch minutes of ``wall_clock`` (the runtime's clock: a
    test's frozen clock holds a window open for as long as the test runs).
    """
    counter: FailoverCounter | LocalCounter = LocalCounter()
    if settings.redis_url is not None:
        from runtools.server.ratelimit.counters import BlockCounter, RedisCounter

        shared = BlockCounter(RedisCounter(settings.redis_url, settings.namespace))
        counter = FailoverCounter(shared, LocalCounter())
    return RateLimiter(
        counter,
        address_limit=settings.ip_rate_limit_per_minute,
        enabled=settings.rate_limits,
        wall_clock=wall_clock,
        on_refusal=on_refusal,
    )
