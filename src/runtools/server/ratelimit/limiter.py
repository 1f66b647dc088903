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
from typing import Any, NamedTuple, NoReturn

from runtools.server.auth.principal import Principal
from runtools.server.errors import RateLimited
from runtools.server.ratelimit.counters import Counter, LocalCounter
from runtools.server.ratelimit.policy import credential_bucket, per_minute

WINDOW_SECONDS = 60
STATE_KEY = "rate_limit"


class Decision(NamedTuple):
    """One request's verdict. A tuple: built on every authenticated request,
    and a frozen dataclass costs three times as much to make."""

    limit: int
    remaining: int
    reset: int
    allowed: bool

    @classmethod
    def of(cls, count: int, limit: int, window_start: int) -> Decision:
        """The verdict on the ``count``-th request of the window starting at ``window_start``."""
        return cls(limit, max(0, limit - count), window_start + WINDOW_SECONDS, count <= limit)

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"x-ratelimit-limit", b"%d" % self.limit),
            (b"x-ratelimit-remaining", b"%d" % self.remaining),
            (b"x-ratelimit-reset", b"%d" % self.reset),
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
        # Counts kept in this process can be taken without an await (``admit_here``).
        self._local = counter if enabled and isinstance(counter, LocalCounter) else None
        self._address_limit = address_limit
        self._enabled = enabled
        self._time = wall_clock
        self._on_refusal = on_refusal

    def admit_here(self, principal: Principal, state: MutableMapping[str, Any]) -> bool:
        """``admit_principal`` without an await when counts live in this process.

        False when the count is shared (Redis): then ``admit_principal`` must run.
        True without counting when rate limits are off.
        """
        if self._local is None:
            return not self._enabled
        start = _window_start(self._time())
        count = self._local.increment_now(credential_bucket(principal), start)
        state[STATE_KEY] = decision = Decision.of(count, per_minute(principal), start)
        if not decision.allowed:
            self._refuse(decision, "credential")
        return True

    async def admit_principal(self, principal: Principal, state: MutableMapping[str, Any]) -> None:
        """Count a request by an authenticated caller; 429 past its limit."""
        if not self.admit_here(principal, state):
            decision = await self.check(credential_bucket(principal), per_minute(principal))
            self._settle(decision, state, "credential")

    async def admit_address(self, address: str | None, state: MutableMapping[str, Any]) -> None:
        """Count an unauthenticated request by client address; 429 past the limit."""
        if self._enabled:
            limit = self._address_limit
            self._settle(await self.check(f"ip:{address or 'unknown'}", limit), state, "address")

    async def check(self, bucket: str, limit: int) -> Decision:
        start = _window_start(self._time())
        count = await self._counter.increment(bucket, start, WINDOW_SECONDS + 1, block_for(limit))
        return Decision.of(count, limit, start)

    def _settle(self, decision: Decision, state: MutableMapping[str, Any], kind: str) -> None:
        state[STATE_KEY] = decision
        if not decision.allowed:
            self._refuse(decision, kind)

    def _refuse(self, decision: Decision, kind: str) -> NoReturn:
        if self._on_refusal is not None:
            self._on_refusal(kind)
        retry_after = max(1, math.ceil(decision.reset - self._time()))
        raise RateLimited(
            f"Rate limit of {decision.limit} requests per minute exceeded; retry in {retry_after}s",
            retry_after=retry_after,
        )


def _window_start(now: float) -> int:
    return int(now // WINDOW_SECONDS) * WINDOW_SECONDS


def block_for(limit: int) -> int:
    """How many counts a node may reserve at once from a shared counter (see BlockCounter)."""
    return 1 if limit < 100 else min(100, limit // 50)
