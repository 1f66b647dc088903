"""Request rate limits: per credential, and per client address on public routes that ask for it."""

from __future__ import annotations

from collections.abc import Callable

from runtools.server.ratelimit.counters import FailoverCounter, LocalCounter
from runtools.server.ratelimit.limiter import RateLimiter
from runtools.server.settings import Settings

__all__ = ["RateLimiter", "build_rate_limiter"]


def build_rate_limiter(
    settings: Settings, *, on_refusal: Callable[[str], None] | None = None
) -> RateLimiter:
    """Counters in Redis (falling back to this process) when configured, in process otherwise."""
    counter: FailoverCounter | LocalCounter = LocalCounter()
    if settings.redis_url is not None:
        from runtools.server.ratelimit.counters import BlockCounter, RedisCounter

        shared = BlockCounter(RedisCounter(settings.redis_url, settings.namespace))
        counter = FailoverCounter(shared, LocalCounter())
    return RateLimiter(
        counter,
        address_limit=settings.ip_rate_limit_per_minute,
        enabled=settings.rate_limits,
        on_refusal=on_refusal,
    )
