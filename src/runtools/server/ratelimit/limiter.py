"""``RateLimiter``: count a request against its bucket and decide, with the headers to send.

Windows are fixed, one minute long, aligned to the epoch minute, so
``X-RateLimit-Reset`` is the same instant on every node. The decision is
left in the request's ASGI state (``rate_limit``) for the middleware to
turn into headers, on success and on the 429 alike.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, MutableMapping
from typing import Any, NamedTuple

from runtools.server.auth.principal import Principal
from runtools.server.errors import RateLimited
from runtools.server.ratelimit.counters import Counter
from runtools.server.ratelimit.policy import credential_bucket, per_minute

WINDOW_SECONDS = 60
STATE_KEY = "rate_limit"


class Decision(NamedTuple):
    """One request's verdict. A tuple: built on every authenticated request,
    and a frozen dataclass costs three times as much to make."""

    limit: int
    remaining: int
    reset: int
    retry_after: int
    allowed: bool

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"x-ratelimit-limit", str(self.limit).encode()),
            (b"x-ratelimit-remaining", str(self.remaining).encode()),
            (b"x-ratelimit-reset", str(self.reset).encode()),
        ]


class RateLimiter:
    def __init__(
        self,
        counter: Counter,
        *,
        address_limit: int,
        enabled: bool = True,
        wall_clock: Callable[[], float] = time.time,
        on_refusal: Callable[[str], None] | None = None,
    ) -> None:
        self._counter = counter
        self._address_limit = address_limit
        self._enabled = enabled
        self._time = wall_clock
        self._on_refusal = on_refusal

    async def admit_principal(self, principal: Principal, state: MutableMapping[str, Any]) -> None:
        """Count a request by an authenticated caller; 429 past its limit."""
        if self._enabled:
            await self._admit(
                credential_bucket(principal), per_minute(principal), state, "credential"
            )

    async def admit_address(self, address: str | None, state: MutableMapping[str, Any]) -> None:
        """Count an unauthenticated request by client address; 429 past the limit."""
        if self._enabled:
            await self._admit(f"ip:{address or 'unknown'}", self._address_limit, state, "address")

    async def check(self, bucket: str, limit: int) -> Decision:
        now = self._time()
        start = int(now // WINDOW_SECONDS) * WINDOW_SECONDS
        reset = start + WINDOW_SECONDS
        count = await self._counter.increment(bucket, start, WINDOW_SECONDS + 1)
        return Decision(
            limit, max(0, limit - count), reset, max(1, math.ceil(reset - now)), count <= limit
        )

    async def _admit(
        self, bucket: str, limit: int, state: MutableMapping[str, Any], kind: str
    ) -> None:
        decision = await self.check(bucket, limit)
        state[STATE_KEY] = decision
        if not decision.allowed:
            if self._on_refusal is not None:
                self._on_refusal(kind)
            raise RateLimited(
                f"Rate limit of {limit} requests per minute exceeded; "
                f"retry in {decision.retry_after}s",
                retry_after=decision.retry_after,
            )
